"""Fit the dropout scorecard on OULAD 2013, evaluate it out of sample and write dropout_model.json.

    python scripts/fit_dropout.py --data /work/shared/data/oulad-2013 \
        --out src/veritas/analysis/dropout_model.json [--train-presentations 2013B,2013J]

Prints the LMI check (R² of the next mark from the cumulative mean, with and without LMI),
then the 2013B -> 2013J evaluation at each cutoff, then writes the model fitted on
--train-presentations. Offline only: numpy is not a runtime dependency (the fit itself is
veritas.analysis.dropout_fit, in plain Python, which `veritas eval dropout` also uses).
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import oulad_features as oulad  # noqa: E402

from veritas.analysis import dropout_fit, metrics  # noqa: E402
from veritas.analysis.dropout import predict_risk  # noqa: E402
from veritas.analysis.momentum import calculate_lmi  # noqa: E402

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
        "l2": dropout_fit.L2,
    }
    args.out.write_text(json.dumps(model, indent=2) + "\n")
    print(f"\nwrote {args.out} (fitted on {args.train_presentations}, {len(train)} rows)")


def fit(rows: list[oulad.Example]) -> dict:
    """Return a model dict (the dropout_model.json layout) fitted to these rows."""
    return dropout_fit.fit([(r.features, r.registration.withdrawn) for r in rows])


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


def _predict(model: dict, rows: list[oulad.Example]) -> np.ndarray:
    # Through the runtime code path, so what is evaluated is exactly what ships.
    return np.array([predict_risk(r.features, model=model).probability for r in rows])


def _base_rate(rows: list[oulad.Example]) -> float:
    return sum(r.registration.withdrawn for r in rows) / len(rows)


if __name__ == "__main__":
    main()
