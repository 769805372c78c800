"""The scorecard's fit (dropout_fit), which scripts/fit_dropout.py and `veritas eval dropout`
share: an exact optimum that honours the sign bounds."""

from __future__ import annotations

import math
import random

import pytest

from veritas.analysis.dropout import RiskFeatures, predict_risk
from veritas.analysis.dropout_fit import fit


def _rows(n: int, seed: int = 7) -> list[tuple[RiskFeatures, bool]]:
    """Synthetic students: missing work raises the odds of leaving, good marks lower them and
    (against the scorecard's sign bound) rising momentum raises them."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        missed = rng.random() * 0.5
        marks = rng.gauss(0, 12)
        lmi = rng.uniform(-1, 1)
        logit = -3.5 + 6 * missed - 0.06 * marks + 0.8 * lmi
        features = RiskFeatures(
            missed_share=missed, score_vs_class=marks, lowest_score_vs_class=marks - 5,
            lmi=lmi, mean_days_late=rng.random() * 3, days_since_activity=rng.random() * 20,
            load=rng.choice([0.5, 1.0, 2.0]), previous_attempts=rng.choice([0, 0, 1]),
            course_day=rng.choice([30, 60, 90, 120]))
        rows.append((features, rng.random() < 1 / (1 + math.exp(-logit))))
    return rows


def test_fit_finds_the_signs_and_holds_the_bounds() -> None:
    rows = _rows(3000)
    model = fit(rows)
    coef = {name: spec["coef"] for name, spec in model["features"].items()}
    assert coef["missed_share"] > 0.5
    assert coef["score_vs_class"] + coef["lowest_score_vs_class"] < -0.3
    # The data says rising momentum raises risk; the bound keeps the scorecard from saying so.
    assert coef["lmi"] == 0.0
    # At the optimum the free intercept makes the mean prediction the training base rate.
    mean_p = sum(predict_risk(f, model=model).probability for f, _ in rows) / len(rows)
    assert mean_p == pytest.approx(sum(y for _, y in rows) / len(rows), abs=1e-5)
    assert 0 < model["thresholds"]["at_risk"] < model["thresholds"]["high_risk"] < 1


def test_fit_is_deterministic_and_refuses_one_class_data() -> None:
    rows = _rows(500, seed=3)
    assert fit(rows) == fit(list(rows))
    with pytest.raises(ValueError, match="withdrew and students who stayed"):
        fit([(f, False) for f, _ in rows])
