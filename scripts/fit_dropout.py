"""Fit the dropout scorecard on OULAD 2013, evaluate it out of sample and write dropout_model.json.

    python scripts/fit_dropout.py --data /work/shared/data/oulad-2013 \
        --out src/veritas/analysis/dropout_model.json [--train-presentations 2013B,2013J]

Prints the LMI check (R² of the next mark from the cumulative mean, with and without LMI),
the module-held-out check within all presentations, the 2013B -> 2013J evaluation at each
cutoff, then writes the model fitted on --train-presentations with both checks as its
validity. Offline only: numpy is not a runtime dependency (the fit itself is
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

from veritas.analysis import dropout_fit  # noqa: E402
from veritas.analysis.momentum import calculate_lmi  # noqa: E402
from veritas.oulad import evaluate  # noqa: E402
from veritas.oulad.evaluate import Enrolment  # noqa: E402

EVAL_TRAIN, EVAL_TEST = "2013B", "2013J"


def main() -> None:
    """Run the LMI check, the two validations, then fit and write the model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train-presentations", default="2013B,2013J")
    args = parser.parse_args()

    registrations = oulad.load_registrations(args.data)
    print_lmi_check(registrations)
    module_held_out = module_held_out_check(registrations)
    held_out = held_out_check(registrations, EVAL_TRAIN, EVAL_TEST)

    chosen = args.train_presentations.split(",")
    train = [r for r in registrations if r.presentation in chosen]
    model = evaluate.fit_recipe(train)
    rows = sum(1 for day in oulad.CUTOFFS for r in train if evaluate.in_cohort(r, day))
    model["trained_on"] = {
        "presentations": chosen,
        "cutoff_days": list(oulad.CUTOFFS),
        "rows": rows,
        "base_rate": round(_base_rate(train), 6),
        "l2": dropout_fit.L2,
    }
    model["validity"] = {"fitted_on": chosen, "held_out": held_out,
                         "module_held_out": module_held_out}
    args.out.write_text(json.dumps(model, indent=2) + "\n")
    print(f"\nwrote {args.out} (fitted on {args.train_presentations}, {rows} rows)")


def held_out_check(registrations: list[Enrolment], train: str, test: str) -> dict:
    """Fit on one presentation, print the metrics on another at each cutoff; return the
    figures kept in the model's validity."""
    model = evaluate.fit_recipe([r for r in registrations if r.presentation == train])
    tested = [r for r in registrations if r.presentation == test]
    results = evaluate.evaluate(tested, oulad.CUTOFFS, model)
    print(f"\nDropout scorecard, fitted on {train}, tested on {test}")
    print(f"thresholds: {model['thresholds']}")
    print(evaluate.render_table(results))
    return {"fitted_on": [train], "tested_on": [test], **_summary(results)}


def module_held_out_check(registrations: list[Enrolment]) -> dict:
    """Print the figures of all 2013 with each module scored by a fit on the other modules.

    The held-out module is new to its fit: no course prior, so it is scored as a new course
    is, from all courses' rate moved by its own withdrawals to date.
    """
    modules = sorted({r.module for r in registrations})
    scored: dict[int, list] = {day: [] for day in oulad.CUTOFFS}
    for module in modules:
        model = evaluate.fit_recipe([r for r in registrations if r.module != module])
        held_out = [r for r in registrations if r.module == module]
        for day in oulad.CUTOFFS:
            scored[day] += evaluate.score_cohorts(held_out, day, model)
    results = {str(day): evaluate.cutoff_metrics(s) for day, s in scored.items()}
    print(f"\nModule-held-out check, all presentations ({', '.join(modules)}), each module"
          " scored by a fit on the others:")
    print(evaluate.render_table(results).split("\n\nAUC per group")[0])
    return {"modules": modules, **_summary(results)}


def _summary(results: dict) -> dict:
    keys = ("n", "base_rate", "mean_predicted", "roc_auc", "within_module_auc", "brier")
    return {key: {day: m[key] for day, m in results.items()} for key in keys}


def print_lmi_check(registrations: list[Enrolment]) -> None:
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


def _base_rate(registrations: list[Enrolment]) -> float:
    rows = [r.withdrawn for day in oulad.CUTOFFS for r in registrations
            if evaluate.in_cohort(r, day)]
    return sum(rows) / len(rows)


if __name__ == "__main__":
    main()
