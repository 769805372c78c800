import json
import math
import random
from dataclasses import fields, replace
from datetime import UTC, date, datetime
from importlib import resources

import pytest

from veritas.analysis import classification
from veritas.analysis.dropout import (
    LABELS,
    AssessmentRecord,
    CourseWork,
    RiskFeatures,
    StudentHistory,
    compute_class_means,
    features_at,
    history_from_course,
    predict_risk,
)

TYPICAL = RiskFeatures(
    missed_share=0.0,
    score_vs_class=0.0,
    lowest_score_vs_class=-5.0,
    lmi=0.0,
    mean_days_late=0.5,
    days_since_activity=10.0,
    load=1.0,
    previous_attempts=0.0,
    course_day=60.0,
)


def shipped_model() -> dict:
    text = resources.files("veritas.analysis").joinpath("dropout_model.json").read_text()
    return json.loads(text)


def toy_model(coef: float = 1.0) -> dict:
    """A one-feature model: logit = -2 + coef * missed_share, thresholds at p = 0.2 and 0.5."""
    spec = {"coef": coef, "mean": 0.0, "scale": 1.0, "impute": 0.0, "clip": [0, 10], "log": False}
    return {
        "intercept": -2.0,
        "features": {"missed_share": spec},
        "thresholds": {"at_risk": 0.2, "high_risk": 0.5},
    }


def history() -> StudentHistory:
    return StudentHistory(
        assessments=(
            AssessmentRecord("a1", due_day=10, weight=20, submitted_day=12, score=60),
            AssessmentRecord("a2", due_day=20, weight=30),
            AssessmentRecord("a3", due_day=40, weight=50, submitted_day=35, score=80),
            AssessmentRecord("exam", due_day=None, weight=100),
        ),
        registration_day=-30,
        load=1.5,
        previous_attempts=1,
    )


# features_at


def test_features_use_only_what_is_known_by_the_day():
    f = features_at(history(), 30, {"a1": 70.0, "a3": 75.0})
    assert f.missed_share == pytest.approx(30 / 50)  # a2 missed; a3 not yet due
    assert f.score_vs_class == pytest.approx(-10)  # a3 was handed in after day 30
    assert f.lowest_score_vs_class == pytest.approx(-10)
    assert f.lmi is None
    assert f.mean_days_late == pytest.approx(2)
    assert f.days_since_activity == 18
    assert (f.load, f.previous_attempts, f.course_day) == (1.5, 1.0, 30.0)


def test_features_later_in_the_course():
    f = features_at(history(), 45, {"a1": 70.0, "a3": 75.0})
    assert f.missed_share == pytest.approx(30 / 100)
    assert f.score_vs_class == pytest.approx((20 * -10 + 50 * 5) / 70)
    assert f.lowest_score_vs_class == pytest.approx(-10)
    assert f.mean_days_late == pytest.approx(1)  # 2 days late, then early counts as 0
    assert f.days_since_activity == 10


def test_later_submissions_do_not_change_earlier_features():
    h = history()
    a1, a2, *rest = h.assessments
    later = replace(h, assessments=(a1, replace(a2, submitted_day=31, score=99), *rest))
    means = {"a1": 70.0, "a2": 50.0}
    assert features_at(later, 30, means) == features_at(h, 30, means)


def test_nothing_due_yet_means_no_missed_share_and_no_silence():
    f = features_at(history(), 5)
    assert f.missed_share is None
    assert f.days_since_activity == 0
    assert f.score_vs_class is None and f.mean_days_late is None


def test_without_class_means_scores_are_unknown():
    f = features_at(history(), 45)
    assert f.score_vs_class is None and f.lowest_score_vs_class is None
    assert f.lmi is None  # two marks are too few for momentum


def test_banked_work_counts_as_handed_in_but_not_as_activity():
    h = StudentHistory(
        assessments=(
            AssessmentRecord("a1", due_day=10, weight=50, submitted_day=-5, score=70, banked=True),
            AssessmentRecord("a2", due_day=20, weight=50),
        )
    )
    f = features_at(h, 30)
    assert f.missed_share == pytest.approx(0.5)
    assert f.mean_days_late is None
    assert f.days_since_activity == 30


def test_work_due_before_a_late_registration_is_not_missed():
    h = StudentHistory(
        assessments=(AssessmentRecord("a1", due_day=10, weight=50),), registration_day=15
    )
    assert features_at(h, 30).missed_share is None


def test_unweighted_work_is_counted():
    h = StudentHistory(
        assessments=(
            AssessmentRecord("q1", due_day=10, weight=0, submitted_day=9, score=50),
            AssessmentRecord("q2", due_day=12, weight=0),
        )
    )
    assert features_at(h, 30).missed_share == pytest.approx(0.5)


def test_class_means_use_marks_known_by_the_day():
    a = StudentHistory((AssessmentRecord("a1", 10, 1, submitted_day=10, score=60),))
    b = StudentHistory((AssessmentRecord("a1", 10, 1, submitted_day=20, score=80),))
    assert compute_class_means([a, b], 15) == {"a1": 60}
    assert compute_class_means([a, b], 20) == {"a1": 70}


# predict_risk


def test_risk_never_falls_as_more_work_is_missed():
    for base in (TYPICAL, replace(TYPICAL, course_day=120, score_vs_class=-20)):
        probabilities = [
            predict_risk(replace(base, missed_share=share / 20)).probability for share in range(21)
        ]
        assert probabilities == sorted(probabilities)
        assert probabilities[-1] > probabilities[0]


def test_risk_never_falls_with_longer_silence_or_lateness():
    for field in ("days_since_activity", "mean_days_late"):
        probabilities = [
            predict_risk(replace(TYPICAL, **{field: days})).probability for days in range(0, 200, 5)
        ]
        assert probabilities == sorted(probabilities)


def test_risk_never_rises_with_better_marks():
    probabilities = [
        predict_risk(replace(TYPICAL, score_vs_class=s, lowest_score_vs_class=s)).probability
        for s in range(-60, 41, 5)
    ]
    assert probabilities == sorted(probabilities, reverse=True)


def test_shipped_model_keeps_the_monotone_signs():
    coefs = {name: spec["coef"] for name, spec in shipped_model()["features"].items()}
    assert coefs["missed_share"] >= 0 and coefs["days_since_activity"] >= 0
    assert coefs["mean_days_late"] >= 0 and coefs["load"] >= 0
    assert coefs["score_vs_class"] <= 0 and coefs["lowest_score_vs_class"] <= 0
    assert coefs["lmi"] <= 0


def test_shipped_model_covers_exactly_the_risk_features():
    assert set(shipped_model()["features"]) == {f.name for f in fields(RiskFeatures)}


def test_labels_follow_the_thresholds():
    model = toy_model()
    # p = sigmoid(-2 + m): 0.119 at m=0, 0.269 at m=1, 0.731 at m=3.
    assert predict_risk(replace(TYPICAL, missed_share=0), model=model).label == "safe"
    assert predict_risk(replace(TYPICAL, missed_share=1), model=model).label == "at_risk"
    assert predict_risk(replace(TYPICAL, missed_share=3), model=model).label == "high_risk"
    thresholds = shipped_model()["thresholds"]
    for share in (0, 0.1, 0.25, 0.5):
        for day in (30, 120):
            r = predict_risk(replace(TYPICAL, missed_share=share, course_day=day))
            if r.probability >= thresholds["high_risk"]:
                expected = "high_risk"
            elif r.probability >= thresholds["at_risk"]:
                expected = "at_risk"
            else:
                expected = "safe"
            assert r.label == expected


def test_confidence_is_zero_at_a_threshold_and_grows_away_from_it():
    model = toy_model()
    at_threshold = -math.log(1 / 0.2 - 1) + 2  # missed_share giving p = 0.2 exactly
    confidence = predict_risk(replace(TYPICAL, missed_share=at_threshold), model=model).confidence
    assert confidence == pytest.approx(0, abs=1e-9)
    far = predict_risk(replace(TYPICAL, missed_share=10), model=model).confidence
    assert 0.9 < far <= 1


def test_top_factors_add_up_to_the_linear_predictor():
    model = shipped_model()
    features = replace(TYPICAL, missed_share=0.4, days_since_activity=40, lmi=-0.6)
    r = predict_risk(features)
    logit = math.log(r.probability / (1 - r.probability))
    assert sum(c for _, c in r.top_factors) == pytest.approx(logit - model["intercept"])
    sizes = [abs(c) for _, c in r.top_factors]
    assert sizes == sorted(sizes, reverse=True)
    assert {name for name, _ in r.top_factors} == set(model["features"])


def test_unknown_features_are_imputed():
    r = predict_risk(RiskFeatures(*[None] * len(fields(RiskFeatures))))
    assert 0 < r.probability < 1 and r.label in LABELS


# classification metrics


def test_roc_auc_hand_computed():
    assert classification.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1
    assert classification.roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0
    assert classification.roc_auc([0, 1, 0, 1], [0.5] * 4) == 0.5
    assert classification.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert classification.roc_auc([0, 1, 0], [0.3, 0.3, 0.1]) == pytest.approx(0.75)  # one tie, one win


def test_pr_auc_is_average_precision():
    assert classification.pr_auc([0, 1, 1], [0.1, 0.8, 0.9]) == 1
    assert classification.pr_auc([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert classification.pr_auc([1, 0, 1, 0], [0.5] * 4) == pytest.approx(0.5)


def test_brier():
    assert classification.brier([0, 1], [0.2, 0.6]) == pytest.approx(0.1)
    assert classification.brier([0, 1], [0, 1]) == 0


def test_precision_at_fraction():
    y = [1, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    p = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    assert classification.precision_at_fraction(y, p, 0.10) == 1
    assert classification.precision_at_fraction(y, p, 0.30) == pytest.approx(2 / 3)
    # All tied: the expected precision of a random pick, not whichever came first.
    assert classification.precision_at_fraction(y, [0.5] * 10, 0.10) == pytest.approx(0.2)


def test_subgroup_auc_gap_is_the_difference_of_the_two_aucs():
    y = [0, 0, 1, 1, 0, 1, 0, 1]
    p = [0.1, 0.4, 0.35, 0.8, 0.3, 0.2, 0.6, 0.9]
    member = [True] * 4 + [False] * 4
    gap, low, high = classification.subgroup_auc_gap(y, p, member)
    assert gap == pytest.approx(classification.roc_auc(y[:4], p[:4]) - classification.roc_auc(y, p))
    assert low < gap < high
    # The whole against itself: no gap and no uncertainty about it.
    assert classification.subgroup_auc_gap(y, p, [True] * 8) == (0, 0, 0)


def test_subgroup_auc_gap_interval_matches_a_bootstrap():
    rng = random.Random(0)
    y = [int(rng.random() < 0.2) for _ in range(600)]
    member = [rng.random() < 0.25 for _ in y]
    p = [rng.gauss(0.8 * label, 1) for label in y]
    gap, low, high = classification.subgroup_auc_gap(y, p, member)
    gaps = []
    while len(gaps) < 300:
        pick = [rng.randrange(len(y)) for _ in y]
        gy, gp = [y[i] for i in pick], [p[i] for i in pick]
        inside = [i for i in pick if member[i]]
        iy, ip = [y[i] for i in inside], [p[i] for i in inside]
        if 0 < sum(iy) < len(iy):
            gaps.append(classification.roc_auc(iy, ip) - classification.roc_auc(gy, gp))
    mean = sum(gaps) / len(gaps)
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / (len(gaps) - 1))
    assert (high - low) / 2 == pytest.approx(1.96 * sd, rel=0.2)


def test_metrics_refuse_degenerate_input():
    with pytest.raises(ValueError):
        classification.roc_auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError):
        classification.brier([0, 1], [0.5])


def test_history_from_stored_work_keeps_due_days_of_handed_in_exams() -> None:
    # What the analysis pipeline and the eval both build from stored exams and attempts: an
    # exam handed in keeps its due day, so on-time work is neither missed nor late.
    def at(day: int, hour: int = 0) -> datetime:
        return datetime(2026, 2, 1 + day, hour, tzinfo=UTC)

    work = [
        CourseWork("on-time", due_at=at(10), weight=2.0, completed_at=at(9, 15), percentage=80),
        CourseWork("late", due_at=at(12), weight=1.0, completed_at=at(15), percentage=60),
        CourseWork("missed", due_at=at(14), weight=1.0),
        CourseWork("later", due_at=at(25), weight=5.0),
        CourseWork("undated", due_at=None, weight=1.0, completed_at=at(11), percentage=70),
    ]
    history = history_from_course(work, date(2026, 2, 1), load=2.0)
    days = {a.assessment_id: (a.due_day, a.submitted_day) for a in history.assessments}
    assert days == {"on-time": (10, 9), "late": (12, 15), "missed": (14, None),
                    "later": (25, None), "undated": (None, 11)}
    on_day_11 = features_at(history, 11)
    assert on_day_11.missed_share == 0.0 and on_day_11.mean_days_late == 0.0
    on_day_20 = features_at(history, 20)
    assert on_day_20.missed_share == pytest.approx(1 / 4)  # "missed" of weights 2 + 1 + 1
    assert on_day_20.mean_days_late == pytest.approx(3 / 2)


def test_course_start_and_weight_come_from_exam_settings() -> None:
    from types import SimpleNamespace

    from pydantic import ValidationError

    from veritas.analysis.service import _course_start
    from veritas.exams.settings import exam_settings

    first = datetime(2026, 3, 9, 14, tzinfo=UTC)
    exams = [SimpleNamespace(id=1, metadata_={"course_start": "2026-02-01"}),
             SimpleNamespace(id=2, metadata_={"course_start": "2026-01-15"}),
             SimpleNamespace(id=3, metadata_={"course_start": 20260101}),  # not a date: ignored
             SimpleNamespace(id=4, metadata_=None)]
    assert _course_start(exams, first) == date(2026, 1, 15)
    assert _course_start([SimpleNamespace(id=5, metadata_={})], first) == date(2026, 3, 9)
    assert exam_settings({"weight": 20}).grade_weight == 20.0
    assert exam_settings({"weight": 0}).grade_weight == 0.0
    assert exam_settings(None).grade_weight == 1.0
    for bad in (-1, True, "20"):
        with pytest.raises(ValidationError):
            exam_settings({"weight": bad})


# course priors, the prior shift and what teachers are shown


def prior_model() -> dict:
    """The shipped scorecard with a small, known course_priors table."""
    return shipped_model() | {"course_priors": {
        "days": [30, 90], "population": [0.2, 0.1], "population_withdrawn_to_date": [0.05, 0.1],
        "early_weight": 0.5, "courses": {"KNOWN": {"presentation": "2013J", "rates": [0.3, 0.12]}},
    }}


def test_course_prior_comes_from_the_courses_last_presentation():
    from veritas.analysis.dropout import course_prior

    model = prior_model()
    assert course_prior(model, "KNOWN", 30) == pytest.approx(0.3)
    assert course_prior(model, "KNOWN", 60) == pytest.approx(0.21)  # linear between days
    assert course_prior(model, "KNOWN", 200) == pytest.approx(0.12)  # flat beyond the table
    assert course_prior(model, "NEW", 30) is None and course_prior(model, None, 30) is None


def test_a_new_course_follows_its_own_withdrawals_to_date_half_way():
    from veritas.analysis.dropout import expected_withdrawal

    model = prior_model()
    # A known course keeps its prior whatever its withdrawals so far.
    assert expected_withdrawal(model, "KNOWN", 30, 0.5) == pytest.approx(0.3)
    assert expected_withdrawal(model, "NEW", 30, None) == pytest.approx(0.2)
    assert expected_withdrawal(model, "NEW", 30, 0.05) == pytest.approx(0.2)  # as usual
    more = expected_withdrawal(model, "NEW", 30, 0.2)
    odds = lambda p: p / (1 - p)  # noqa: E731
    # Four and three quarter times the usual odds of leaving so far: sqrt of that on the rest.
    assert odds(more) / odds(0.2) == pytest.approx(math.sqrt(odds(0.2) / odds(0.05)))
    assert expected_withdrawal(model, "NEW", 30, 0.01) < 0.2 < more


def test_prior_shift_sets_the_class_mean_and_keeps_the_ranking():
    from veritas.analysis.dropout import prior_shift

    model = prior_model()
    cohort = [replace(TYPICAL, missed_share=m / 10, course_day=30, course_prior=0.3)
              for m in range(6)]
    shift = prior_shift(cohort, 0.25, model=model)
    shifted = [predict_risk(f, model=model, shift=shift).probability for f in cohort]
    assert sum(shifted) / len(shifted) == pytest.approx(0.25, abs=1e-9)
    plain = [predict_risk(f, model=model).probability for f in cohort]
    assert sorted(range(6), key=shifted.__getitem__) == sorted(range(6), key=plain.__getitem__)
    # The shift is part of the course factor, so the factors still add up.
    r = predict_risk(cohort[3], model=model, shift=shift)
    logit = math.log(r.probability / (1 - r.probability))
    assert sum(c for _, c in r.top_factors) == pytest.approx(logit - model["intercept"])
    assert prior_shift([], 0.25, model=model) == 0.0


def test_an_unknown_course_prior_is_all_courses_rate_on_that_day():
    model = prior_model()
    new = predict_risk(replace(TYPICAL, course_day=30, course_prior=None), model=model)
    same = predict_risk(replace(TYPICAL, course_day=30, course_prior=0.2), model=model)
    assert new.probability == pytest.approx(same.probability)
    riskier = predict_risk(replace(TYPICAL, course_day=30, course_prior=0.4), model=model)
    assert riskier.probability > new.probability


def test_teachers_get_factors_in_words_and_the_models_version_and_validity():
    from veritas.analysis.dropout import FACTOR_WORDS, explain, model_card

    model = shipped_model()
    assert set(FACTOR_WORDS) == set(model["features"])
    r = predict_risk(replace(TYPICAL, missed_share=0.5, days_since_activity=60))
    shown = explain(r)
    assert 1 <= len(shown["factors"]) <= 3
    first = shown["factors"][0]
    assert first["factor"] == r.top_factors[0][0]
    assert first["in_words"].startswith(FACTOR_WORDS[first["factor"]])
    assert first["in_words"].endswith("raises the risk" if first["log_odds"] > 0
                                      else "lowers the risk")
    card = model_card()
    assert card == shown["model"]
    assert card["version"] == model["version"] and card["version"].startswith("dropout-")
    assert card["fitted_on"] == model["trained_on"]["presentations"]
    held_out = card["held_out"]
    assert held_out["fitted_on"] == ["2013B"] and held_out["tested_on"] == ["2013J"]
    assert set(held_out["roc_auc"]) == {"30", "60", "90", "120"}
    assert all(0.5 < v < 1 for v in held_out["roc_auc"].values())


def test_shipped_model_carries_its_course_priors():
    table = shipped_model()["course_priors"]
    assert table["days"] == [30, 60, 90, 120]
    # Withdrawal gets rarer as a course goes on, for all courses and each known one.
    assert table["population"] == sorted(table["population"], reverse=True)
    assert set(table["courses"]) == {"AAA", "BBB", "DDD", "EEE", "FFF", "GGG"}
    assert {c["presentation"] for c in table["courses"].values()} == {"2013J"}


def test_within_group_auc_ignores_what_only_tells_groups_apart():
    y = [0, 0, 1, 1, 0, 0, 1, 1]
    group = ["a"] * 4 + ["b"] * 4
    # Group b scores higher across the board; inside each group the ranking is perfect.
    p = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    assert classification.within_group_auc(y, p, group) == 1
    assert classification.roc_auc(y, p) < 1
    # A score that is constant inside each group ranks nobody inside it.
    assert classification.within_group_auc(y, [0.1] * 4 + [0.9] * 4, group) == 0.5
    # Weighted by pairs: a has 2 x 2 pairs at AUC 1, c has 1 x 1 at AUC 0.
    assert classification.within_group_auc(y[:4] + [0, 1], p[:4] + [0.9, 0.1],
                                    group[:4] + ["c", "c"]) == pytest.approx(4 / 5)
    assert classification.within_group_auc([0, 1], [0.2, 0.1], ["a", "b"]) is None


def test_reliability_deciles():
    p = [i / 100 for i in range(100)]
    y = [int(i >= 90) for i in range(100)]
    table = classification.reliability(y, p)
    assert [n for n, _, _ in table] == [10] * 10
    assert table[0][1] == pytest.approx(0.045) and table[-1][1] == pytest.approx(0.945)
    assert [obs for _, _, obs in table] == [0.0] * 9 + [1.0]
    assert sum(n for n, _, _ in classification.reliability([0, 1, 0], [0.2, 0.5, 0.1])) == 3


def test_calibration_gap_interval_matches_a_bootstrap():
    rng = random.Random(1)
    y = [int(rng.random() < 0.2) for _ in range(800)]
    member = [rng.random() < 0.3 for _ in y]
    p = [0.15 for _ in y]
    gap, low, high = classification.calibration_gap(y, p, member)
    inside = [i for i, m in enumerate(member) if m]
    assert gap == pytest.approx(0.15 - sum(y[i] for i in inside) / len(inside))
    draws = []
    for _ in range(400):
        pick = [inside[rng.randrange(len(inside))] for _ in inside]
        draws.append(sum(p[i] - y[i] for i in pick) / len(pick))
    draws.sort()
    assert low == pytest.approx(draws[10], abs=0.01) and high == pytest.approx(draws[389], abs=0.01)
