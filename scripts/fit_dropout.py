"""Fit the dropout scorecard on OULAD 2013, evaluate it out of sample and write dropout_model.json.

    python scripts/fit_dropout.py --data /work/shared/data/oulad-2013 \
        --out src/veritas/analysis/dropout_model.json [--train-presentations 2013B,2013J]

Prints the LMI check (R² of the next mark from the cumulative mean, with and without LMI),
then the 2013B -> 2013J evaluation at each cutoff, then writes the model fitted on
--train-presentations. Offline only: numpy and scipy are not runtime dependencies.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parent))

import oulad_features as oulad  # noqa: E402

from veritas.analysis import metrics  # noqa: E402
from veritas.analysis.dropout import predict_risk, transform_feature  # noqa: E402
from veritas.analysis.momentum import calculate_lmi  # noqa: E402

# The scorecard: each RiskFeatures field with its clip range, optional log1p, the sign its
# coefficient is constrained to (0 = free) and the value used when the feature is unknown.
# Unknown assessment features mean "no evidence yet", so they get the neutral value.
FEATURES: dict[str, dict] = {
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
L2 = 1.0  # on standardised coefficients; with tens of thousands of rows it only steadies the fit
HIGH_RISK_PRECISION = 1 / 3  # high_risk: the training rows at or above it withdrew 1 in 3 times
EVAL_TRAIN, EVAL_TEST = "2013B", "2013J"
GROUP_AUC_MARGIN = 0.05  # a group's AUC this far below the whole is flagged


def main() -> None:
    """Run the LMI check, the out-of-sample evaluation, then fit and write the model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train-presentations", default="2013B,2013J")
    args = parser.parse_args()

    registrations = oulad.load_registrations(args.data)
    print_lmi_check(registrations)
    rows = oulad.examples(registrations)
    print_module_held_out_check(rows, EVAL_TRAIN)
    evaluate(rows, EVAL_TRAIN, EVAL_TEST)

    train = [r for r in rows if r.registration.presentation in args.train_presentations.split(",")]
    model = fit(train)
    model["trained_on"] = {
        "presentations": args.train_presentations.split(","),
        "cutoff_days": list(oulad.CUTOFFS),
        "rows": len(train),
        "base_rate": round(_base_rate(train), 6),
        "l2": L2,
    }
    args.out.write_text(json.dumps(model, indent=2) + "\n")
    print(f"\nwrote {args.out} (fitted on {args.train_presentations}, {len(train)} rows)")


def fit(rows: list[oulad.Example]) -> dict:
    """Return a model dict (the dropout_model.json layout) fitted to these rows."""
    specs = {name: _resolved_spec(name, spec, rows) for name, spec in FEATURES.items()}
    x = np.array(
        [[transform_feature(getattr(r.features, n), s) for n, s in specs.items()] for r in rows]
    )
    y = np.array([r.registration.withdrawn for r in rows], dtype=float)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.column_stack([np.ones(len(x)), (x - mean) / scale])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        logit = z @ w
        penalty = np.r_[0.0, w[1:]]
        value = np.sum(np.logaddexp(0.0, logit) - y * logit) + 0.5 * L2 * penalty @ penalty
        return value, z.T @ (1 / (1 + np.exp(-logit)) - y) + L2 * penalty

    # Sign constraints keep the scorecard monotone where it must be (e.g. more missed work
    # never lowers risk), whatever quirks the training sample has.
    bounds = [(None, None)] + [
        (0, None) if s["sign"] > 0 else (None, 0) if s["sign"] < 0 else (None, None)
        for s in FEATURES.values()
    ]
    w = minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B", bounds=bounds).x
    features = {
        name: {
            "coef": round(float(w[i + 1]), 6),
            "mean": round(float(mean[i]), 6),
            "scale": round(float(scale[i]), 6),
            "impute": spec["impute"],
            "clip": spec["clip"],
            "log": spec["log"],
        }
        for i, (name, spec) in enumerate(specs.items())
    }
    model = {"intercept": round(float(w[0]), 6), "features": features}
    model["thresholds"] = {"at_risk": 0.5, "high_risk": 0.5}  # placeholders while scoring
    model["thresholds"] = choose_thresholds(y, _predict(model, rows))
    return model


def choose_thresholds(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Return at_risk = the training base rate and high_risk = the 1-in-3 precision point.

    at_risk flags anyone predicted above the average withdrawal rate; high_risk is the lowest
    probability at which the training rows scoring at least that much withdrew at a rate of
    HIGH_RISK_PRECISION or more.
    """
    order = np.argsort(-p)
    precision = np.cumsum(y[order]) / np.arange(1, len(y) + 1)
    reaching = np.nonzero(precision >= HIGH_RISK_PRECISION)[0]
    high = float(p[order][reaching[-1]]) if len(reaching) else float(p.max())
    return {"at_risk": round(float(y.mean()), 6), "high_risk": round(high, 6)}


def evaluate(rows: list[oulad.Example], train: str, test: str) -> None:
    """Fit on one presentation, then print the metrics on another at each cutoff."""
    model = fit([r for r in rows if r.registration.presentation == train])
    print(f"\nDropout scorecard, fitted on {train}, tested on {test}")
    print(f"thresholds: {model['thresholds']}")
    header = "day      n  base   ROC-AUC  PR-AUC  Brier   base-Brier  p@10%  worst group AUC"
    print(header)
    details = []
    for day in oulad.CUTOFFS:
        cohort = [r for r in rows if r.registration.presentation == test and r.day == day]
        y = [int(r.registration.withdrawn) for r in cohort]
        p = list(_predict(model, cohort))
        base = sum(y) / len(y)
        auc = metrics.roc_auc(y, p)
        groups = group_aucs(cohort, y, p)
        worst = min(groups, key=lambda g: g[2])
        print(
            f"{day:>3} {len(y):>6} {base:.3f}  {auc:.3f}    {metrics.pr_auc(y, p):.3f}   "
            f"{metrics.brier(y, p):.4f}  {base * (1 - base):.4f}      "
            f"{metrics.precision_at_fraction(y, p, 0.10):.3f}  "
            f"{worst[2]:.3f} ({worst[0]}={worst[1]})"
        )
        details.append((day, auc, groups, y, p, model["thresholds"]))
    for day, auc, groups, y, p, thresholds in details:
        print(f"\nday {day}: mean predicted {sum(p) / len(p):.3f}; label n withdrawn:", end="")
        for label, low, high in (
            ("safe", 0.0, thresholds["at_risk"]),
            ("at_risk", thresholds["at_risk"], thresholds["high_risk"]),
            ("high_risk", thresholds["high_risk"], 1.01),
        ):
            members = [yi for yi, pi in zip(y, p) if low <= pi < high]
            rate = sum(members) / len(members) if members else float("nan")
            print(f" {label} {len(members)} {rate:.3f};", end="")
        print(
            f"\n  group AUCs (whole {auc:.3f}; ! = more than {GROUP_AUC_MARGIN} below;"
            " then the group minus the whole with its 95 % interval):"
        )
        for column, value, group_auc, n, positives, (low, high) in groups:
            flag = "!" if group_auc < auc - GROUP_AUC_MARGIN else " "
            print(
                f"  {flag} {column:<10} {value:<8} {group_auc:.3f}  {group_auc - auc:+.3f}"
                f" [{low:+.3f}, {high:+.3f}]  (n={n}, withdrawn={positives})"
            )


def print_module_held_out_check(rows: list[oulad.Example], presentation: str) -> None:
    """Print AUCs inside one presentation with each module scored by a fit on the others.

    This is the check used to choose features without touching the test presentation: it
    asks whether the scorecard transfers to a course it has not seen.
    """
    chosen = [r for r in rows if r.registration.presentation == presentation]
    modules = sorted({r.registration.module for r in chosen})
    scored: list[tuple[oulad.Example, float]] = []
    for module in modules:
        model = fit([r for r in chosen if r.registration.module != module])
        held_out = [r for r in chosen if r.registration.module == module]
        scored.extend(zip(held_out, _predict(model, held_out)))
    aucs = []
    for day in oulad.CUTOFFS:
        pairs = [(int(r.registration.withdrawn), float(p)) for r, p in scored if r.day == day]
        aucs.append(metrics.roc_auc([y for y, _ in pairs], [p for _, p in pairs]))
    shown = "  ".join(f"day {d}: {a:.3f}" for d, a in zip(oulad.CUTOFFS, aucs))
    print(
        f"\nModule-held-out check in {presentation} ({', '.join(modules)}): {shown}"
        f"  mean {sum(aucs) / len(aucs):.3f}"
    )


def group_aucs(
    cohort: list[oulad.Example], y: list[int], p: list[float]
) -> list[tuple[str, str, float, int, int, tuple[float, float]]]:
    """Return (column, value, AUC, n, positives, 95 % interval of AUC minus whole) per group."""
    out = []
    for column in oulad.GROUP_COLUMNS:
        for value in sorted({r.registration.groups[column] for r in cohort}):
            member = [r.registration.groups[column] == value for r in cohort]
            gy = [yi for yi, m in zip(y, member) if m]
            positives = sum(gy)
            if 0 < positives < len(gy):
                auc = metrics.roc_auc(gy, [pi for pi, m in zip(p, member) if m])
                _, low, high = metrics.subgroup_auc_gap(y, p, member)
                out.append((column, value, auc, len(gy), positives, (low, high)))
    return out


def print_lmi_check(registrations: list[oulad.Enrolment]) -> None:
    """Print R² of the next mark from the cumulative mean alone and with LMI, by OLS."""
    print("LMI check: predict each mark from the marks before it (at least 3), OLS")
    for name, chosen in (
        ("2013B", [r for r in registrations if r.presentation == "2013B"]),
        ("2013J", [r for r in registrations if r.presentation == "2013J"]),
        ("all 2013", registrations),
    ):
        rows = []
        for r in chosen:
            # The same marks, in the same order, that features_at hands to calculate_lmi.
            marks = [
                mark
                for *_, mark in sorted(
                    (a.submitted_day, math.inf if a.due_day is None else a.due_day, a.score)
                    for a in r.history.assessments
                    if a.submitted_day is not None and a.score is not None
                )
            ]
            for k in range(3, len(marks)):
                rows.append((sum(marks[:k]) / k, calculate_lmi(marks[:k]).lmi, marks[k]))
        data = np.array(rows)
        r2_mean = _r_squared(data[:, [0]], data[:, 2])
        r2_both = _r_squared(data[:, [0, 1]], data[:, 2])
        print(f"  {name:<9} n={len(data)}  R² mean {r2_mean:.4f}  mean+LMI {r2_both:.4f}")


def _r_squared(x: np.ndarray, y: np.ndarray) -> float:
    design = np.column_stack([np.ones(len(y)), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    return float(1 - residual.var() / y.var())


def _resolved_spec(name: str, spec: dict, rows: list[oulad.Example]) -> dict:
    if spec["impute"] != "median":
        return spec
    values = sorted(v for r in rows if (v := getattr(r.features, name)) is not None)
    return {**spec, "impute": float(values[len(values) // 2])}


def _predict(model: dict, rows: list[oulad.Example]) -> np.ndarray:
    # Through the runtime code path, so what is evaluated is exactly what ships.
    return np.array([predict_risk(r.features, model=model).probability for r in rows])


def _base_rate(rows: list[oulad.Example]) -> float:
    return sum(r.registration.withdrawn for r in rows) / len(rows)


if __name__ == "__main__":
    main()
