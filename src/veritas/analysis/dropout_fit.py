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
from collections.abc import Sequence
from typing import Any

from veritas.analysis.dropout import RiskFeatures, predict_risk, transform_feature

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
}
TRAINING_CUTOFFS = (30, 60, 90, 120)  # one training row per registration per cutoff
L2 = 1.0  # on standardised coefficients; with tens of thousands of rows it only steadies the fit
HIGH_RISK_PRECISION = 1 / 3  # high_risk: the training rows at or above it withdrew 1 in 3 times
_TOLERANCE = 1e-9  # on the gradient of a bound coefficient, per training row
_DECREMENT = 1e-12  # Newton's predicted decrease, relative to the loss: converged below it


def fit(rows: Sequence[tuple[RiskFeatures, bool]]) -> dict[str, Any]:
    """The model dict (dropout_model.json's layout, without `trained_on`) fitted to
    (features, withdrew) rows."""
    if not rows or all(y for _, y in rows) or not any(y for _, y in rows):
        raise ValueError("fitting needs both students who withdrew and students who stayed")
    specs = {name: _resolved_spec(name, spec, rows) for name, spec in FEATURES.items()}
    x = [[transform_feature(getattr(f, name), spec) for name, spec in specs.items()]
         for f, _ in rows]
    n = len(x)
    mean = [sum(column) / n for column in zip(*x)]
    scale = [math.sqrt(sum((v - m) ** 2 for v in column) / n) or 1.0
             for column, m in zip(zip(*x), mean)]
    z = [(1.0, *((v - m) / s for v, m, s in zip(row, mean, scale))) for row in x]
    y = [1.0 if withdrew else 0.0 for _, withdrew in rows]
    signs = [0] + [spec["sign"] for spec in FEATURES.values()]
    w = _solve(z, y, signs)
    model: dict[str, Any] = {
        "intercept": round(w[0], 6),
        "features": {
            name: {"coef": round(w[i + 1], 6), "mean": round(mean[i], 6),
                   "scale": round(scale[i], 6), "impute": spec["impute"],
                   "clip": spec["clip"], "log": spec["log"]}
            for i, (name, spec) in enumerate(specs.items())
        },
        "thresholds": {"at_risk": 0.5, "high_risk": 0.5},  # placeholders while scoring
    }
    p = [predict_risk(f, model=model).probability for f, _ in rows]
    model["thresholds"] = choose_thresholds(y, p)
    return model


def choose_thresholds(y: Sequence[float], p: Sequence[float]) -> dict[str, float]:
    """at_risk = the training base rate; high_risk = the 1-in-3 precision point.

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
    return {"at_risk": round(sum(y) / len(y), 6), "high_risk": round(high, 6)}


def _resolved_spec(name: str, spec: dict[str, Any],
                   rows: Sequence[tuple[RiskFeatures, bool]]) -> dict[str, Any]:
    if spec["impute"] != "median":
        return spec
    values = sorted(v for f, _ in rows if (v := getattr(f, name)) is not None)
    return {**spec, "impute": float(values[len(values) // 2])}


def _solve(z: Sequence[Sequence[float]], y: Sequence[float], signs: Sequence[int]) -> list[float]:
    """Minimise the penalised log-loss with w[j] >= 0 where signs[j] > 0 and <= 0 where < 0."""
    k = len(signs)
    w = [0.0] * k
    fixed: set[int] = set()  # bounded coefficients held at 0
    for _ in range(4 * k):
        w = _newton(z, y, signs, w, fixed)
        _, gradient, _ = _loss(z, y, w, need_hessian=False)
        # A coefficient held at its bound is released if the loss falls as it moves inward.
        pulls = {j: -gradient[j] * signs[j] for j in fixed}
        j, pull = max(pulls.items(), key=lambda item: item[1], default=(None, 0.0))
        if j is None or pull <= _TOLERANCE * len(y):
            return w
        fixed.discard(j)
    raise RuntimeError("the dropout fit did not settle")


def _newton(z, y, signs, w, fixed):
    """Newton's method on the coefficients not in `fixed`, stopping at any sign bound it
    reaches (that coefficient joins `fixed`)."""
    w = list(w)
    for _ in range(200):
        value, gradient, hessian = _loss(z, y, w)
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
            if _loss(z, y, trial, need_hessian=False, need_gradient=False)[0] \
                    <= value + 1e-4 * t * slope:
                break
            t, blocking = t / 2, None
        if blocking is not None:
            trial[blocking] = 0.0
            fixed.add(blocking)
        w = trial
    raise RuntimeError("the dropout fit did not converge")


def _loss(z, y, w, *, need_hessian=True, need_gradient=True):
    """(penalised log-loss, gradient, Hessian) at w; the intercept is not penalised."""
    k = len(w)
    value = 0.5 * L2 * sum(v * v for v in w[1:])
    gradient = [0.0] + [L2 * v for v in w[1:]]
    hessian = [[L2 if a == b and a else 0.0 for b in range(k)] for a in range(k)]
    for row, target in zip(z, y):
        eta = sum(a * b for a, b in zip(row, w))
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

