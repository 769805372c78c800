"""Fitting the dropout scorecard: the shipped model's recipe, in plain Python.

scripts/fit_dropout.py writes dropout_model.json with `fit`, and `veritas eval dropout` uses
the same function to refit on the presentations it is told to train on, so an evaluation is
out of sample whatever data it is given. It is offline work (seconds to a minute for tens
of thousands of rows), never done at request time, and needs no numerical library: the
model has ten coefficients.

The fit is an L2-regularised logistic regression on standardised features with a sign bound
on each "more is worse" coefficient, solved exactly by Newton's method on the free
coefficients with an active set for the bounds (the objective is strictly convex, so the
optimum is unique and does not depend on the solver).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from veritas.analysis.dropout import RiskFeatures, feature_value, predict_risk, transform_feature

# The scorecard: each RiskFeatures field with its clip range, optional log1p, the sign its
# coefficient is constrained to (0 = free) and the value used when the feature is unknown.
# Unknown assessment features mean "no evidence yet", so they get the neutral value.
FEATURES: dict[str, dict[str, Any]] = {
    # Clipped at half: students who miss everything mostly stay registered and fail rather
    # than withdraw, so beyond half missed the risk is held flat instead of falling.
    "missed_share": {"clip": [0.0, 0.5], "log": False, "sign": 1, "impute": 0.0},
    "score_vs_class": {"clip": [-60.0, 40.0], "log": False, "sign": -1, "impute": 0.0},
    "lowest_score_vs_class": {"clip": [-60.0, 40.0], "log": False, "sign": -1, "impute": 0.0},
    "lmi": {"clip": [-1.0, 1.0], "log": False, "sign": -1, "impute": 0.0},
    "mean_days_late": {"clip": [0.0, 30.0], "log": True, "sign": 1, "impute": 0.0},
    "days_since_activity": {"clip": [0.0, 180.0], "log": True, "sign": 1, "impute": 0.0},
    "load": {"clip": [0.25, 4.0], "log": True, "sign": 1, "impute": "median"},
    "previous_attempts": {"clip": [0.0, 2.0], "log": False, "sign": 0, "impute": 0.0},
    "course_day": {"clip": [0.0, 270.0], "log": False, "sign": 0, "impute": "median"},
    # An offset, not a fitted coefficient: in training it is the row's own class's withdrawal
    # rate at the day, so the other coefficients learn to rank students inside a course, not
    # to tell courses apart; in scoring it is the course's last presentation (course_prior).
    "course_prior": {"clip": [0.001, 0.999], "log": False, "logit": True, "sign": 0,
                     "impute": "population", "offset": True},
}
TRAINING_CUTOFFS = (30, 60, 90, 120)  # one training row per registration per cutoff
L2 = 1.0  # on standardised coefficients; with tens of thousands of rows it only steadies the fit
HIGH_RISK_PRECISION = 1 / 3  # high_risk: the training rows at or above it withdrew 1 in 3 times
# How far a new course's own withdrawals so far move its expected rate, in log-odds per unit
# of log-odds (dropout.expected_withdrawal). Fitted across the nine 2013 classes it is 0.51 to
# 0.68 by day; 0.5 is the rounder, more cautious value, see docs/momentum-and-risk.md.
EARLY_WEIGHT = 0.5
VERSION = "dropout-2"  # the recipe: features, offset, prior shift; bump when any of them changes


@dataclass(frozen=True)
class ClassRate:
    """One class (a course's presentation) on one day: who was still registered and what
    became of them, and its withdrawals since the start (known on the day)."""

    course: str
    presentation: str  # ordered: a later presentation sorts after an earlier one
    day: int
    registered: int  # still registered at the end of the day
    withdrew: int  # of those, how many withdrew later: the label, training only
    at_start: int  # registered by the day and still registered on day 0
    gone: int  # of those, how many have unregistered since day 0, by the day
_TOLERANCE = 1e-9  # on the gradient of a bound coefficient, per training row
_DECREMENT = 1e-12  # Newton's predicted decrease, relative to the loss: converged below it


def fit(rows: Sequence[tuple[RiskFeatures, bool]],
        priors: dict[str, Any] | None = None,
        protected: Sequence[bool] | None = None) -> dict[str, Any]:
    """The model dict (dropout_model.json's layout, without `trained_on`) fitted to
    (features, withdrew) rows, with `priors` (prior_table) as its course_priors; without
    them, only all courses' rate by course day is known. `protected` marks the training rows
    of a group whose withdrawals at_risk must catch at least as often as everyone's
    (choose_thresholds); it is never an input of the scorecard."""
    if not rows or all(y for _, y in rows) or not any(y for _, y in rows):
        raise ValueError("fitting needs both students who withdrew and students who stayed")
    priors = priors or _population_only(rows)
    specs = {name: _resolved_spec(name, spec, rows) for name, spec in FEATURES.items()}
    placeholder = {"intercept": 0.0, "features": {}, "course_priors": priors}
    # Imputed as predict_risk imputes: an unknown course_prior is all courses' rate that day.
    x = [[transform_feature(feature_value(f, name, placeholder), spec) for name, spec in specs.items()]
         for f, _ in rows]
    n = len(x)
    mean = [sum(column) / n for column in zip(*x)]
    scale = [_spread(column, m) for column, m in zip(zip(*x), mean)]
    fitted = [i for i, spec in enumerate(specs.values()) if not spec.get("offset")]
    offsets = [i for i in range(len(specs)) if i not in fitted]
    z = [(1.0, *((row[i] - mean[i]) / scale[i] for i in fitted)) for row in x]
    offset = [sum(row[i] - mean[i] for i in offsets) for row in x]
    y = [1.0 if withdrew else 0.0 for _, withdrew in rows]
    signs = [0] + [spec["sign"] for spec in specs.values() if not spec.get("offset")]
    w = _solve(z, y, signs, offset)
    coef = dict(zip(fitted, w[1:]))
    model: dict[str, Any] = {
        "version": VERSION,
        "intercept": round(w[0], 6),
        "features": {
            name: {"coef": round(coef.get(i, 1.0), 6), "mean": round(mean[i], 6),
                   "scale": round(scale[i], 6) if i in coef else 1.0,
                   "impute": spec["impute"], "clip": spec["clip"], "log": spec["log"],
                   **({"logit": True} if spec.get("logit") else {}),
                   **({"offset": True} if spec.get("offset") else {})}
            for i, (name, spec) in enumerate(specs.items())
        },
        "course_priors": priors,
        "thresholds": {"at_risk": 0.5, "high_risk": 0.5},  # placeholders while scoring
    }
    p = [predict_risk(f, model=model).probability for f, _ in rows]
    model["thresholds"] = choose_thresholds(y, p, protected)
    return model


def choose_thresholds(y: Sequence[float], p: Sequence[float],
                      protected: Sequence[bool] | None = None) -> dict[str, float]:
    """at_risk = the training base rate, lowered if need be so that the protected rows'
    withdrawals are flagged at least as often as all withdrawals are; high_risk = the 1-in-3
    precision point.

    at_risk flags anyone predicted above the average withdrawal rate; high_risk is the lowest
    probability at which the training rows scoring at least that much withdrew at a rate of
    HIGH_RISK_PRECISION or more.
    """
    order = sorted(range(len(p)), key=lambda i: -p[i])
    high, withdrew = max(p), 0.0
    for rank, i in enumerate(order, start=1):
        withdrew += y[i]
        if withdrew / rank >= HIGH_RISK_PRECISION:
            high = p[i]
    at_risk = sum(y) / len(y)
    if protected is not None:
        caught = sum(1 for yi, pi in zip(y, p) if yi and pi >= at_risk) / sum(y)
        theirs = sorted((pi for yi, pi, m in zip(y, p, protected) if yi and m), reverse=True)
        if theirs:  # the lowest score at_risk must reach for their recall to match everyone's
            at_risk = min(at_risk, theirs[max(0, math.ceil(caught * len(theirs)) - 1)])
    return {"at_risk": round(at_risk, 6), "high_risk": round(high, 6)}


def prior_table(classes: Iterable[ClassRate]) -> dict[str, Any]:
    """The course_priors of a model: by tabulated day, all courses' withdrawal rate and
    withdrawals since the start, and each course's rates in its latest presentation here."""
    by_day: dict[int, list[ClassRate]] = defaultdict(list)
    latest: dict[str, str] = {}
    for c in classes:
        by_day[c.day].append(c)
        latest[c.course] = max(latest.get(c.course, c.presentation), c.presentation)
    days = sorted(by_day)
    rates: dict[str, dict[int, float]] = defaultdict(dict)
    for day in days:
        for c in by_day[day]:
            if c.presentation == latest[c.course] and c.registered:
                rates[c.course][day] = c.withdrew / c.registered
    return {
        "days": days,
        "population": [_share(sum(c.withdrew for c in by_day[d]),
                              sum(c.registered for c in by_day[d])) for d in days],
        "population_withdrawn_to_date": [_share(sum(c.gone for c in by_day[d]),
                                                sum(c.at_start for c in by_day[d])) for d in days],
        "early_weight": EARLY_WEIGHT,
        "courses": {
            course: {"presentation": latest[course],
                     "rates": [round(by[d], 6) for d in days]}
            for course, by in sorted(rates.items()) if len(by) == len(days)
        },
    }


def _spread(column: Sequence[float], mean: float) -> float:
    sd = math.sqrt(sum((v - mean) ** 2 for v in column) / len(column))
    return sd if sd > 1e-9 else 1.0  # a constant column: rounding noise is not a scale


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _population_only(rows: Sequence[tuple[RiskFeatures, bool]]) -> dict[str, Any]:
    by_day: dict[float, list[bool]] = defaultdict(list)
    for f, withdrew in rows:
        by_day[f.course_day if f.course_day is not None else 0.0].append(withdrew)
    days = sorted(by_day)
    return {"days": days, "population": [_share(sum(by_day[d]), len(by_day[d])) for d in days],
            "population_withdrawn_to_date": None, "early_weight": EARLY_WEIGHT, "courses": {}}


def _resolved_spec(name: str, spec: dict[str, Any],
                   rows: Sequence[tuple[RiskFeatures, bool]]) -> dict[str, Any]:
    if spec["impute"] == "population":  # never used: _value fills it in first
        return {**spec, "impute": round(sum(y for _, y in rows) / len(rows), 6)}
    if spec["impute"] != "median":
        return spec
    values = sorted(v for f, _ in rows if (v := getattr(f, name)) is not None)
    return {**spec, "impute": float(values[len(values) // 2])}


def _solve(z: Sequence[Sequence[float]], y: Sequence[float], signs: Sequence[int],
           offset: Sequence[float]) -> list[float]:
    """Minimise the penalised log-loss of z·w + offset with w[j] >= 0 where signs[j] > 0 and
    <= 0 where < 0."""
    k = len(signs)
    w = [0.0] * k
    fixed: set[int] = set()  # bounded coefficients held at 0
    for _ in range(4 * k):
        w = _newton(z, y, signs, w, fixed, offset)
        _, gradient, _ = _loss(z, y, w, offset, need_hessian=False)
        # A coefficient held at its bound is released if the loss falls as it moves inward.
        pulls = {j: -gradient[j] * signs[j] for j in fixed}
        j, pull = max(pulls.items(), key=lambda item: item[1], default=(None, 0.0))
        if j is None or pull <= _TOLERANCE * len(y):
            return w
        fixed.discard(j)
    raise RuntimeError("the dropout fit did not settle")


def _newton(z: Sequence[Sequence[float]], y: Sequence[float], signs: Sequence[int],
            w: Sequence[float], fixed: set[int], offset: Sequence[float]) -> list[float]:
    """Newton's method on the coefficients not in `fixed`, stopping at any sign bound it
    reaches (that coefficient joins `fixed`)."""
    w = list(w)
    for _ in range(200):
        value, gradient, hessian = _loss(z, y, w, offset)
        free = [j for j in range(len(w)) if j not in fixed]
        step = _linear_solve([[hessian[a][b] for b in free] for a in free],
                             [-gradient[j] for j in free])
        t, blocking = 1.0, None
        for j, s in zip(free, step):
            if signs[j] and (w[j] + s) * signs[j] < 0 and -w[j] / s < t:
                t, blocking = -w[j] / s, j
        if blocking is not None and t == 0:
            fixed.add(blocking)  # already at its bound and pushing past it
            continue
        slope = sum(gradient[j] * s for j, s in zip(free, step))
        if -slope <= _DECREMENT * max(1.0, abs(value)):
            return w  # the predicted gain is below what the sums can resolve
        while True:  # backtracking: the full step can overshoot far from the optimum
            trial = list(w)
            for j, s in zip(free, step):
                trial[j] += t * s
            if _loss(z, y, trial, offset, need_hessian=False, need_gradient=False)[0] \
                    <= value + 1e-4 * t * slope:
                break
            t, blocking = t / 2, None
        if blocking is not None:
            trial[blocking] = 0.0
            fixed.add(blocking)
        w = trial
    raise RuntimeError("the dropout fit did not converge")


def _loss(z: Sequence[Sequence[float]], y: Sequence[float], w: Sequence[float],
          offset: Sequence[float], *, need_hessian: bool = True, need_gradient: bool = True,
          ) -> tuple[float, list[float], list[list[float]]]:
    """(penalised log-loss, gradient, Hessian) at w; the intercept is not penalised."""
    k = len(w)
    value = 0.5 * L2 * sum(v * v for v in w[1:])
    gradient = [0.0] + [L2 * v for v in w[1:]]
    hessian = [[L2 if a == b and a else 0.0 for b in range(k)] for a in range(k)]
    for row, target, shift in zip(z, y, offset):
        eta = sum(a * b for a, b in zip(row, w)) + shift
        # log(1 + e^eta) without overflow either way
        value += (eta + math.log1p(math.exp(-eta)) if eta > 0 else math.log1p(math.exp(eta))) \
            - target * eta
        if not need_gradient:
            continue
        p = 1 / (1 + math.exp(-eta))
        residual = p - target
        for a in range(k):
            gradient[a] += residual * row[a]
        if need_hessian:
            weight = p * (1 - p)
            for a in range(k):
                wa = weight * row[a]
                line = hessian[a]
                for b in range(a + 1):
                    line[b] += wa * row[b]
    if need_hessian:
        for a in range(k):
            for b in range(a):
                hessian[b][a] = hessian[a][b]
    return value, gradient, hessian


def _linear_solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Solve a small symmetric positive-definite system by Gaussian elimination."""
    n = len(vector)
    a = [row[:] + [v] for row, v in zip(matrix, vector)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(col + 1, n):
            factor = a[r][col] / a[col][col]
            for c in range(col, n + 1):
                a[r][c] -= factor * a[col][c]
    out = [0.0] * n
    for r in range(n - 1, -1, -1):
        out[r] = (a[r][n] - sum(a[r][c] * out[c] for c in range(r + 1, n))) / a[r][r]
    return out

