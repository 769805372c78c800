"""The scorecard's fit (dropout_fit), which scripts/fit_dropout.py and `veritas eval dropout`
share: an exact optimum that honours the sign bounds."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from veritas.analysis.dropout import RiskFeatures, predict_risk
from veritas.analysis.dropout_fit import ClassRate, choose_thresholds, fit, prior_table


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


def test_a_course_prior_offset_makes_the_fit_rank_inside_courses() -> None:
    # Two courses: B loses students four times as often, and its students all carry a load of
    # 2 against A's 0.5. Inside each course load says nothing.
    rng = random.Random(11)
    base = _rows(1, seed=1)[0][0]
    rows = []
    for course_rate, load in ((0.1, 0.5), (0.4, 2.0)):
        for _ in range(1500):
            features = replace(base, load=load, course_day=30, course_prior=course_rate,
                               missed_share=rng.random() * 0.5)
            logit = math.log(course_rate / (1 - course_rate)) + 4 * (features.missed_share - 0.25)
            rows.append((features, rng.random() < 1 / (1 + math.exp(-logit))))
    offset = fit(rows)["features"]
    assert offset["course_prior"]["coef"] == 1.0 and offset["course_prior"]["scale"] == 1.0
    assert abs(offset["load"]["coef"]) < 0.1  # the course's rate is explained by its prior
    unknown = fit([(replace(f, course_prior=None), y) for f, y in rows])["features"]
    assert unknown["load"]["coef"] > 0.4  # without it, load stands in for the course


def test_at_risk_is_lowered_until_the_protected_group_is_caught_as_often() -> None:
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1]
    p = [0.9, 0.8, 0.7, 0.3, 0.6, 0.5, 0.2, 0.1, 0.1, 0.1, 0.35, 0.25]
    protected = [False] * 10 + [True, True]
    plain = choose_thresholds(y, p)
    assert plain["at_risk"] == pytest.approx(0.5)  # the base rate: 6 of 12
    # At 0.5, 3 of 6 withdrawals are flagged and none of the protected two: at_risk falls to
    # the score that flags half of theirs too.
    assert choose_thresholds(y, p, protected)["at_risk"] == pytest.approx(0.35)
    # A group already caught as often changes nothing.
    assert choose_thresholds(y, p, [True] + [False] * 11)["at_risk"] == pytest.approx(0.5)


def test_prior_table_keeps_each_courses_latest_presentation() -> None:
    classes = [ClassRate("A", "2013B", 30, 100, 20, 110, 10),
               ClassRate("A", "2013J", 30, 200, 30, 220, 20),
               ClassRate("B", "2013J", 30, 100, 10, 105, 5),
               ClassRate("A", "2013B", 60, 90, 10, 110, 20),
               ClassRate("A", "2013J", 60, 180, 18, 220, 40),
               ClassRate("B", "2013J", 60, 90, 9, 105, 15)]
    table = prior_table(classes)
    assert table["days"] == [30, 60]
    assert table["courses"]["A"] == {"presentation": "2013J", "rates": [0.15, 0.1]}
    assert table["courses"]["B"] == {"presentation": "2013J", "rates": [0.1, 0.1]}
    assert table["population"] == [pytest.approx(60 / 400, abs=1e-6), pytest.approx(37 / 360, abs=1e-6)]
    assert table["population_withdrawn_to_date"] == [pytest.approx(35 / 435, abs=1e-6),
                                                     pytest.approx(75 / 435, abs=1e-6)]
