"""Dropout risk: an explainable, calibrated logistic scorecard of what is known on a given day.

Pipeline: stored exams and attempts (CourseWork) -> history_from_course(...) -> StudentHistory
(plain data) -> features_at(history, day, class_means) -> RiskFeatures -> predict_risk(features)
-> RiskAssessment. The analysis pipeline and `veritas eval dropout` both enter at
history_from_course, so what is evaluated is what production computes. Coefficients, transforms, imputations and label
thresholds are read from dropout_model.json, written by scripts/fit_dropout.py; the method and
its out-of-sample figures are in docs/momentum-and-risk.md.

Days are whole days from the course start (day 0); negative days are before it. Demographics
are deliberately not inputs.
"""

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from typing import Any

from veritas.analysis.momentum import calculate_lmi

LABELS = ("safe", "at_risk", "high_risk")
# What each factor means, for teachers; "raises/lowers the risk" is added by explain().
FACTOR_WORDS = {
    "missed_share": "Work due so far that was not handed in",
    "score_vs_class": "Marks compared with the class average",
    "lowest_score_vs_class": "The weakest mark compared with the class average",
    "lmi": "The trend of recent marks",
    "mean_days_late": "How late work has been handed in",
    "days_since_activity": "Time since work was last handed in",
    "load": "The number of courses taken at the same time",
    "previous_attempts": "Earlier attempts at this course",
    "course_day": "How far the course has run",
    "course_prior": "How often students of this course withdraw from this point on",
}


@dataclass(frozen=True)
class AssessmentRecord:
    """One assessment of the student's course and what the student has done with it."""

    assessment_id: str
    due_day: int | None  # None: no fixed date (e.g. a final exam), so it never falls due
    weight: float  # share of the course grade on any scale; 0 is allowed
    submitted_day: int | None = None  # None: not submitted
    score: float | None = None  # percentage 0-100; None: not (yet) marked
    banked: bool = False  # result carried over from an earlier attempt at the course


@dataclass(frozen=True)
class StudentHistory:
    """Everything the risk model may use about one student in one course."""

    assessments: tuple[AssessmentRecord, ...]
    registration_day: int | None = None  # negative: registered before the course started
    load: float | None = None  # concurrent study load in full-course equivalents
    previous_attempts: int = 0  # earlier attempts at this same course


@dataclass(frozen=True)
class CourseWork:
    """One exam of a student's course as Veritas stores it, with the student's first
    completed attempt at it (if any)."""

    exam_id: str
    due_at: datetime | None
    weight: float
    completed_at: datetime | None = None  # None: not handed in (or no time recorded)
    percentage: float | None = None
    banked: bool = False


def course_day(moment: datetime | None, start: date) -> int | None:
    """The whole day of the course `moment` falls on (day 0 is `start`), in UTC."""
    if moment is None:
        return None
    return (moment.astimezone(UTC).date() - start).days


def history_from_course(
    work: Iterable[CourseWork], start: date, *, registration_day: int | None = None,
    load: float | None = None, previous_attempts: int = 0,
) -> StudentHistory:
    """The StudentHistory of stored exams and attempts, days counted from `start`."""
    return StudentHistory(
        assessments=tuple(
            AssessmentRecord(
                assessment_id=w.exam_id,
                due_day=course_day(w.due_at, start),
                weight=w.weight,
                # A result without a submission time cannot be placed before any cutoff.
                submitted_day=course_day(w.completed_at, start),
                score=w.percentage,
                banked=w.banked,
            )
            for w in work
        ),
        registration_day=registration_day,
        load=load,
        previous_attempts=previous_attempts,
    )


@dataclass(frozen=True)
class RiskFeatures:
    """The scorecard's inputs on one day; None means unknown and is imputed by the model."""

    missed_share: float | None  # weight share of due assessments not submitted; None: none due
    score_vs_class: float | None  # weighted mean of (own mark - class mean mark), points
    lowest_score_vs_class: float | None  # the worst single (own mark - class mean mark)
    lmi: float | None  # Learning Momentum Index of own marks, oldest first
    mean_days_late: float | None  # mean of max(0, submitted - due) over own submissions
    days_since_activity: float | None  # since the last submission; 0 while nothing is due
    load: float | None
    previous_attempts: float | None
    course_day: float | None  # the day scored: withdrawal gets rarer as a course goes on
    # How often students still registered on this day of this course go on to withdraw,
    # judged from its last presentation (course_prior); None: a new course, so all courses'.
    course_prior: float | None = None


@dataclass(frozen=True)
class RiskAssessment:
    """A dropout probability, its label, how clear-cut the label is and why."""

    probability: float
    label: str  # 'safe' | 'at_risk' | 'high_risk'
    confidence: float  # 0 at a label threshold, towards 1 far from both (see _confidence)
    top_factors: list[tuple[str, float]]  # (feature, log-odds vs average student), largest first


def compute_class_means(histories: Iterable[StudentHistory], day: int) -> dict[str, float]:
    """Return each assessment's mean mark over the class's marked submissions known by `day`."""
    marks: dict[str, list[float]] = defaultdict(list)
    for history in histories:
        for a in history.assessments:
            if a.score is not None and a.submitted_day is not None and a.submitted_day <= day:
                marks[a.assessment_id].append(a.score)
    return {key: sum(values) / len(values) for key, values in marks.items()}


def features_at(
    history: StudentHistory, day: int, class_means: Mapping[str, float] | None = None,
    course_prior: float | None = None,
) -> RiskFeatures:
    """Return the features known at the end of `day`, given compute_class_means(...) of that day
    and the course's prior withdrawal rate at that day (course_prior(...), None if new)."""
    start = max(0, history.registration_day or 0)
    handed_in = [
        (a, a.submitted_day)
        for a in history.assessments
        if a.submitted_day is not None and a.submitted_day <= day
    ]
    handed_in_ids = {a.assessment_id for a, _ in handed_in}
    # Work due before the student enrolled cannot have been missed by them.
    due = [a for a in history.assessments if a.due_day is not None and start <= a.due_day <= day]
    missed = [a for a in due if a.assessment_id not in handed_in_ids]
    marks = sorted(  # (submitted, due, mark, weight, id): oldest first, undated work last
        (on, _due_or_last(a), a.score, a.weight, a.assessment_id)
        for a, on in handed_in
        if a.score is not None
    )
    means = class_means or {}
    relative = [(weight, mark - means[key]) for _, _, mark, weight, key in marks if key in means]
    # Banked results prove the work exists but say nothing about this run's timing.
    own = [(a, on) for a, on in handed_in if not a.banked]
    late = [max(0, on - a.due_day) for a, on in own if a.due_day is not None]
    last_seen = max([start, *(on for _, on in own)])
    return RiskFeatures(
        missed_share=_weighted_share(missed, due) if due else None,
        score_vs_class=_weighted_mean(relative),
        lowest_score_vs_class=min((r for _, r in relative), default=None),
        lmi=calculate_lmi([mark for _, _, mark, _, _ in marks]).lmi,
        mean_days_late=sum(late) / len(late) if late else None,
        # Silence is expected until work falls due, so it only counts from then on.
        days_since_activity=float(max(0, day - last_seen)) if due else 0.0,
        load=history.load,
        previous_attempts=float(history.previous_attempts),
        course_day=float(day),
        course_prior=course_prior,
    )


def predict_risk(
    features: RiskFeatures, *, model: Mapping[str, Any] | None = None, shift: float = 0.0
) -> RiskAssessment:
    """Return the calibrated dropout risk of a student; model defaults to the shipped one.

    `shift` is the class's prior-shift correction (prior_shift), in log-odds; it is part of the
    course_prior factor, so the factors still add up to the linear predictor.
    """
    model = model or _model()
    contributions = [
        (name, _contribution(feature_value(features, name, model), spec)
         + (shift if name == "course_prior" else 0.0))
        for name, spec in model["features"].items()
    ]
    return _assessment(model, contributions)


def explain(
    assessment: RiskAssessment, *, model: Mapping[str, Any] | None = None, limit: int = 3
) -> dict[str, Any]:
    """The largest factors of a risk in plain words, and which model said so and how well it
    did on data it had not seen: what a teacher is shown beside the label."""
    model = model or _model()
    factors = [
        {"factor": name, "log_odds": round(value, 3),
         "in_words": f"{FACTOR_WORDS.get(name, name)} {'raises' if value > 0 else 'lowers'}"
                     " the risk"}
        for name, value in assessment.top_factors[:limit] if abs(value) >= 0.05
    ]
    return {"factors": factors, "model": model_card(model)}


def model_card(model: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The model's version and validity: the data it was fitted on, and its ROC-AUC by course
    day where it was tested on a presentation it had not learned from."""
    model = model or _model()
    validity = model.get("validity") or {}
    held_out = validity.get("held_out") or {}
    return {
        "version": model.get("version", "unversioned"),
        "fitted_on": validity.get("fitted_on") or (model.get("trained_on") or {}).get(
            "presentations"),
        "held_out": {key: held_out.get(key)
                     for key in ("fitted_on", "tested_on", "roc_auc", "within_module_auc")}
        if held_out else None,
    }


def course_prior(model: Mapping[str, Any] | None, course: str | None, day: float) -> float | None:
    """The share of a course's students still registered on `day` who withdrew later, in its
    last presentation the model knows; None for a course the model has not seen."""
    table = (model or _model())["course_priors"]
    rates = table["courses"].get(course or "", {}).get("rates")
    return _interpolate(table["days"], rates, day) if rates else None


def expected_withdrawal(
    model: Mapping[str, Any] | None, course: str | None, day: float,
    withdrawn_to_date: float | None,
) -> float:
    """The withdrawal rate to expect from `day` on among a class's registered students.

    A known course: its prior. A new course: all courses' rate at that day, moved in log-odds
    by `early_weight` times how far the class's own withdrawals since the start
    (`withdrawn_to_date`, a share of those registered on day 0) are above or below all
    courses' at the same day. Half-way (0.5): early withdrawals say something about later
    ones, but the prior presentations show they do not carry over one for one.
    """
    model = model or _model()
    known = course_prior(model, course, day)
    if known is not None:
        return known
    table = model["course_priors"]
    population = _interpolate(table["days"], table["population"], day)
    if withdrawn_to_date is None:
        return population
    usual = _interpolate(table["days"], table["population_withdrawn_to_date"], day)
    move = table["early_weight"] * (_logit(withdrawn_to_date) - _logit(usual))
    return _sigmoid(_logit(population) + move)


def prior_shift(
    features: Iterable[RiskFeatures], target: float, *, model: Mapping[str, Any] | None = None
) -> float:
    """The log-odds shift that makes a class's mean predicted risk equal `target`.

    A prior-shift correction (Saerens, Latinne and Decaestecker, 2002) applied to the
    intercept: the ranking inside the class is unchanged, its level follows the withdrawal
    rate expected for this course now (expected_withdrawal).
    """
    model = model or _model()
    logits = [math.log(r.probability / (1 - r.probability))
              for r in (predict_risk(f, model=model) for f in features)]
    if not logits:
        return 0.0
    target = min(max(target, _EDGE), 1 - _EDGE)
    low, high = -20.0, 20.0
    for _ in range(60):  # the mean is increasing in the shift: bisection to ~1e-17
        middle = (low + high) / 2
        if sum(_sigmoid(x + middle) for x in logits) / len(logits) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def transform_feature(value: float | None, spec: Mapping[str, Any]) -> float:
    """Return a feature value imputed, clipped and optionally log-scaled as the model spec says."""
    # Clip, log1p and logit are all non-decreasing: the sign of coef alone fixes the direction.
    x = spec["impute"] if value is None else float(value)
    low, high = spec["clip"]
    x = min(max(x, low), high)
    if spec.get("logit"):
        return _logit(x)
    return math.log1p(x - low) if spec["log"] else x


def _assessment(model: Mapping[str, Any], contributions: list[tuple[str, float]]) -> RiskAssessment:
    logit = model["intercept"] + sum(c for _, c in contributions)
    probability = 1 / (1 + math.exp(-logit))
    thresholds = model["thresholds"]
    if probability >= thresholds["high_risk"]:
        label = "high_risk"
    elif probability >= thresholds["at_risk"]:
        label = "at_risk"
    else:
        label = "safe"
    return RiskAssessment(
        probability=probability,
        label=label,
        confidence=_confidence(logit, thresholds.values()),
        top_factors=sorted(contributions, key=lambda c: abs(c[1]), reverse=True),
    )


def _contribution(value: float | None, spec: Mapping[str, Any]) -> float:
    # Standardised, so a contribution is the log-odds shift from the training-average student.
    return float(spec["coef"] * (transform_feature(value, spec) - spec["mean"]) / spec["scale"])


def _confidence(logit: float, thresholds: Iterable[float]) -> float:
    # tanh of the log-odds distance to the nearest threshold: 0.76 when the odds are a factor e off.
    distance = min(abs(logit - math.log(t / (1 - t))) for t in thresholds)
    return math.tanh(distance)


_EDGE = 1e-4  # rates are kept this far from 0 and 1 before taking log-odds


def _logit(p: float) -> float:
    p = min(max(p, _EDGE), 1 - _EDGE)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _interpolate(days: list[float], values: list[float], day: float) -> float:
    """Linear between the tabulated days, flat beyond the first and the last."""
    if day <= days[0]:
        return values[0]
    for (d0, v0), (d1, v1) in zip(zip(days, values), zip(days[1:], values[1:])):
        if day <= d1:
            return v0 + (v1 - v0) * (day - d0) / (d1 - d0)
    return values[-1]


def feature_value(features: RiskFeatures, name: str, model: Mapping[str, Any]) -> float | None:
    """The value of feature `name` as the model scores it: a missing course_prior is all
    courses' rate on that day; any other missing value stays None (the spec imputes it)."""
    value: float | None = getattr(features, name)
    if value is None and name == "course_prior":  # a new course: all courses' rate that day
        table = model["course_priors"]
        day = features.course_day if features.course_day is not None else table["days"][0]
        return _interpolate(table["days"], table["population"], day)
    return value


def _due_or_last(a: AssessmentRecord) -> float:
    return a.due_day if a.due_day is not None else math.inf


def _weighted_share(part: list[AssessmentRecord], whole: list[AssessmentRecord]) -> float:
    total = sum(a.weight for a in whole)
    if total <= 0:  # only unweighted work (practice quizzes) is due: count it instead
        return len(part) / len(whole)
    return sum(a.weight for a in part) / total


def _weighted_mean(pairs: list[tuple[float, float]]) -> float | None:
    if not pairs:
        return None
    total = sum(w for w, _ in pairs)
    if total <= 0:  # only unweighted work is marked: a plain mean
        return sum(v for _, v in pairs) / len(pairs)
    return sum(w * v for w, v in pairs) / total


@cache
def _model() -> dict[str, Any]:
    text = resources.files("veritas.analysis").joinpath("dropout_model.json").read_text()
    model: dict[str, Any] = json.loads(text)
    return model
