"""`veritas eval dropout DIR`: the production dropout model scored on imported OULAD students.

DIR is first imported (idempotently) into the configured database. Every figure is then
computed from the database rows, not from the CSVs: each student's registration on a
module-presentation becomes a StudentHistory built from the cohort's exams (due_at), the
student's completed attempts (completed_at, percentage, banked) and the registration kept in
the user's metadata. Risk comes from compute_class_means + features_at + predict_risk, the
functions production uses.

Temporal rules at cutoff day D (days count from the presentation start):
- the cohort is the students registered by D who have not unregistered by the end of D (a
  student unregistering on D itself is out: at the end of D they are gone);
- features, including the class means they compare against, use only work handed in by D;
- the label is final_result == 'Withdrawn'; demographics only split the AUC into groups.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import asyncpg

from veritas.analysis import classification
from veritas.analysis.dropout import (
    CourseWork,
    RiskFeatures,
    StudentHistory,
    compute_class_means,
    course_prior,
    expected_withdrawal,
    features_at,
    history_from_course,
    predict_risk,
    prior_shift,
)
from veritas.analysis.dropout_fit import TRAINING_CUTOFFS, ClassRate, fit, prior_table
from veritas.config import asyncpg_dsn
from veritas.db.unit_of_work import SYSTEM_SERVER_SETTINGS
from veritas.oulad.importer import import_oulad
from veritas.oulad.progress import Progress

GROUP_COLUMNS = ("gender", "age_band", "disability", "imd_band")
CREDITS_PER_COURSE = 60  # load = studied_credits / 60, as the model was fitted (60 = one module)
GROUP_AUC_MARGIN = 0.05  # a group this far below the whole is flagged
FEW_WITHDRAWALS = 50  # a group with fewer is reported with its interval, never used to choose
DEFAULT_CUTOFFS = (30, 60, 90, 120)
# The most deprived fifth (IMD bands 0-10 % and 10-20 %): at_risk is chosen on the training
# data to flag their withdrawals at least as often as everyone's. Never a scorecard input.
PROTECTED_IMD_BANDS = frozenset({"0-10%", "10-20"})


@dataclass(frozen=True)
class Enrolment:
    """One student on one module-presentation, as read back from the database."""

    student: str  # OULAD id_student
    module: str
    presentation: str
    history: StudentHistory
    unregistration_day: int | None
    withdrawn: bool  # the label, never a feature
    groups: dict[str, str]  # demographic columns, for per-group AUC only


@dataclass(frozen=True)
class Scored:
    """An enrolment in a cutoff's cohort, with what the model saw and said."""

    enrolment: Enrolment
    day: int
    features: RiskFeatures
    probability: float


def in_cohort(enrolment: Enrolment, day: int) -> bool:
    """Return whether the student is registered at the end of `day`."""
    if enrolment.unregistration_day is not None and enrolment.unregistration_day <= day:
        return False
    registered = enrolment.history.registration_day
    return registered is None or registered <= day


async def load_enrolments(
    conn: asyncpg.Connection, presentations: Sequence[str]
) -> list[Enrolment]:
    """Return the imported OULAD registrations on these presentations, built from the tables."""
    exams = await conn.fetch(
        """
        SELECT id, metadata->>'cohort' AS cohort, due_at,
               (metadata->>'weight')::float8 AS weight,
               (metadata->>'course_start')::date AS start
        FROM exams
        WHERE external_ref LIKE 'oulad:assessment:%'
          AND metadata->>'code_presentation' = ANY($1::text[])
        """,
        list(presentations),
    )
    attempts = await conn.fetch(
        """
        SELECT a.exam_id, a.student_id, a.completed_at, a.percentage,
               COALESCE((a.metadata->>'banked')::boolean, false) AS banked
        FROM exam_attempts a JOIN exams e ON e.id = a.exam_id
        WHERE e.external_ref LIKE 'oulad:assessment:%'
          AND e.metadata->>'code_presentation' = ANY($1::text[])
          AND a.status = 'completed'
        ORDER BY a.completed_at NULLS LAST
        """,
        list(presentations),
    )
    students = await conn.fetch(
        """
        SELECT u.id, u.metadata #>> '{oulad,id_student}' AS student, r.key AS cohort,
               r.value AS registration
        FROM users u, jsonb_each(u.metadata #> '{oulad,registrations}') AS r
        WHERE u.external_ref LIKE 'oulad:student:%'
          AND r.value->>'code_presentation' = ANY($1::text[])
        ORDER BY r.key, u.id
        """,
        list(presentations),
    )
    by_cohort: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for exam in exams:
        by_cohort[exam["cohort"]].append(exam)
    # The first completed attempt per exam and student: OULAD has one, the product may have more.
    handed_in: dict[tuple[uuid.UUID, uuid.UUID], asyncpg.Record] = {}
    for attempt in attempts:
        handed_in.setdefault((attempt["exam_id"], attempt["student_id"]), attempt)
    out = []
    for row in students:
        registration = json.loads(row["registration"])
        work = []
        for exam in by_cohort.get(row["cohort"], []):
            taken = handed_in.get((exam["id"], row["id"]))
            work.append(CourseWork(
                exam_id=str(exam["id"]), due_at=exam["due_at"], weight=exam["weight"],
                completed_at=taken["completed_at"] if taken else None,
                percentage=taken["percentage"] if taken else None,
                banked=bool(taken and taken["banked"]),
            ))
        credits = registration.get("studied_credits")
        starts = {exam["start"] for exam in by_cohort.get(row["cohort"], [])}
        history = history_from_course(
            work, min(starts) if starts else date.min,
            registration_day=registration.get("date_registration"),
            load=credits / CREDITS_PER_COURSE if credits is not None else None,
            previous_attempts=registration.get("num_of_prev_attempts") or 0,
        )
        demographics = registration.get("demographics") or {}
        out.append(
            Enrolment(
                student=row["student"],
                module=registration["code_module"],
                presentation=registration["code_presentation"],
                history=history,
                unregistration_day=registration.get("date_unregistration"),
                withdrawn=registration.get("final_result") == "Withdrawn",
                groups={c: demographics.get(c) or "unknown" for c in GROUP_COLUMNS},
            )
        )
    return out


def withdrawn_to_date(members: Iterable[Enrolment], day: int) -> float | None:
    """The share of a class registered by `day` and still registered on day 0 who have
    unregistered since day 0, by the end of `day`: known on the day, unlike the label."""
    at_start, gone = _to_date(members, day)
    return max(gone, 0.5) / at_start if at_start else None  # half a student: never log(0)


def class_rates(enrolments: Iterable[Enrolment], day: int) -> list[ClassRate]:
    """Each class's cohort on `day` and how many of it withdrew: training only (the label)."""
    out = []
    for (module, presentation), members in _classes(enrolments).items():
        cohort = [e for e in members if in_cohort(e, day)]
        at_start, gone = _to_date(members, day)
        out.append(ClassRate(module, presentation, day, len(cohort),
                             sum(e.withdrawn for e in cohort), at_start, gone))
    return out


def cohort_features(
    enrolments: Iterable[Enrolment], day: int,
    priors: Mapping[tuple[str, str], float | None] | None = None,
) -> Iterator[tuple[Enrolment, RiskFeatures]]:
    """The cohort of `day` (in_cohort) with the features known by the end of that day; `priors`
    gives a class's course_prior by (module, presentation) (missing: a new course).

    The one cohort rule: scripts/fit_dropout.py trains on exactly what this evaluates.
    """
    for (module, presentation), members in _classes(enrolments).items():
        # Every classmate's work handed in by the day counts, including those who since left:
        # the class mean of an assessment is what a teacher saw that day.
        means = compute_class_means((e.history for e in members), day)
        rate = (priors or {}).get((module, presentation))
        for e in members:
            if in_cohort(e, day):
                yield e, features_at(e.history, day, means, rate)


def training_rows(
    enrolments: Sequence[Enrolment],
) -> tuple[list[tuple[RiskFeatures, bool]], list[ClassRate], list[bool]]:
    """One (features, withdrew) row per registration and training cutoff, its course_prior the
    class's own withdrawal rate that day (an offset: the fit then ranks inside courses); every
    class's rates for the model's course_priors; and which rows are in PROTECTED_IMD_BANDS."""
    rows, classes, protected = [], [], []
    for day in TRAINING_CUTOFFS:
        rates = class_rates(enrolments, day)
        own = {(c.course, c.presentation): c.withdrew / c.registered
               for c in rates if c.registered}
        for e, features in cohort_features(enrolments, day, own):
            rows.append((features, e.withdrawn))
            protected.append(e.groups.get("imd_band") in PROTECTED_IMD_BANDS)
        classes += rates
    return rows, classes, protected


def fit_recipe(enrolments: Sequence[Enrolment]) -> dict[str, Any]:
    """The shipped scorecard's recipe fitted on these registrations (without trained_on)."""
    rows, classes, protected = training_rows(enrolments)
    return fit(rows, prior_table(classes), protected)


def score_cohorts(
    enrolments: Iterable[Enrolment], day: int, model: Mapping[str, Any] | None = None
) -> list[Scored]:
    """Return the cohort of `day` scored with what is known by the end of that day.

    Each class gets its course's prior, and its intercept is shifted so that its mean risk is
    the rate expected_withdrawal gives from the class's withdrawals to date.
    """
    out = []
    for (module, presentation), members in _classes(enrolments).items():
        prior = {(module, presentation): course_prior(model, module, day)}
        cohort = list(cohort_features(members, day, prior))
        target = expected_withdrawal(model, module, day, withdrawn_to_date(members, day))
        shift = prior_shift((f for _, f in cohort), target, model=model)
        out += [Scored(e, day, f, predict_risk(f, model=model, shift=shift).probability)
                for e, f in cohort]
    return out


def _classes(enrolments: Iterable[Enrolment]) -> dict[tuple[str, str], list[Enrolment]]:
    classes: dict[tuple[str, str], list[Enrolment]] = defaultdict(list)
    for e in enrolments:
        classes[(e.module, e.presentation)].append(e)
    return classes


def _to_date(members: Iterable[Enrolment], day: int) -> tuple[int, int]:
    at_start = gone = 0
    for e in members:
        registered = e.history.registration_day
        left = e.unregistration_day
        if (registered is None or registered <= day) and (left is None or left > 0):
            at_start += 1
            gone += left is not None and left <= day
    return at_start, gone


def cutoff_metrics(scored: Sequence[Scored]) -> dict[str, Any]:
    """Return n, base rate, ROC-AUC, PR-AUC, Brier, precision at 10 %, the mean prediction,
    the AUC within module presentations (classification.within_group_auc), their own figures, a
    reliability table in deciles, and per group its AUC and its gaps to the whole.

    group_gap says, per group, its n, its withdrawals, its AUC minus the whole's and its mean
    prediction minus its observed rate, each with a 95 % interval, so that a low group can be
    told from the noise of a small one.
    """
    y = [int(s.enrolment.withdrawn) for s in scored]
    p = [s.probability for s in scored]
    both = 0 < sum(y) < len(y)  # the ranking metrics need a withdrawn and a staying student
    groups: dict[str, dict[str, float | None]] = {}
    gaps: dict[str, dict[str, dict[str, Any]]] = {}
    for column in GROUP_COLUMNS:
        groups[column], gaps[column] = {}, {}
        for value in sorted({s.enrolment.groups[column] for s in scored}):
            member = [s.enrolment.groups[column] == value for s in scored]
            gy = [yi for yi, m in zip(y, member) if m]
            calibration, low, high = classification.calibration_gap(y, p, member)
            gap = {"n": len(gy), "withdrawn": sum(gy), "gap": None, "ci95": None,
                   "calibration_gap": _round(calibration),
                   "calibration_ci95": [_round(low), _round(high)]}
            groups[column][value] = None
            if 0 < sum(gy) < len(gy):
                groups[column][value] = _round(
                    classification.roc_auc(gy, [pi for pi, m in zip(p, member) if m])
                )
                difference, low, high = classification.subgroup_auc_gap(y, p, member)
                gap.update(gap=_round(difference), ci95=[_round(low), _round(high)])
            gaps[column][value] = gap
    # A module in one presentation: a course as its students lived it, and the unit that the
    # prior shift calibrates, so pairs across presentations do not count as "within".
    modules = [f"{s.enrolment.module}-{s.enrolment.presentation}" for s in scored]
    within = classification.within_group_auc(y, p, modules) if y else None
    per_module = {}
    for module in sorted(set(modules)):
        my = [yi for yi, m in zip(y, modules) if m == module]
        mp = [pi for pi, m in zip(p, modules) if m == module]
        per_module[module] = {
            "n": len(my), "withdrawn": sum(my),
            "roc_auc": _round(classification.roc_auc(my, mp)) if 0 < sum(my) < len(my) else None,
            "mean_predicted": _round(sum(mp) / len(mp)), "observed": _round(sum(my) / len(my)),
        }
    return {
        "n": len(y),
        "base_rate": _round(sum(y) / len(y)) if y else None,
        "roc_auc": _round(classification.roc_auc(y, p)) if both else None,
        "pr_auc": _round(classification.pr_auc(y, p)) if both else None,
        "brier": _round(classification.brier(y, p)) if y else None,
        "precision_at_10": _round(classification.precision_at_fraction(y, p, 0.10)) if y else None,
        "mean_predicted": _round(sum(p) / len(p)) if p else None,
        "within_module_auc": _round(within) if within is not None else None,
        "module": per_module,
        "reliability": [{"n": n, "mean_predicted": _round(mp), "observed": _round(obs)}
                        for n, mp, obs in classification.reliability(y, p)] if y else [],
        "group_auc": groups,
        "group_gap": gaps,
        "_mean_p": sum(p) / len(p) if p else None,
        "_base": sum(y) / len(y) if y else None,  # unrounded, for the base-rate Brier
    }


def evaluate(
    enrolments: Sequence[Enrolment], cutoffs: Sequence[int], model: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Return cutoff_metrics for each cutoff day, keyed by the day as text."""
    return {str(day): cutoff_metrics(score_cohorts(enrolments, day, model)) for day in cutoffs}


def public(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return the results without the printing helpers: the JSON line's content."""
    return {
        day: {k: v for k, v in m.items() if not k.startswith("_")} for day, m in results.items()
    }


def render_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Return the per-cutoff table, the AUC per group and each group's gap with its interval."""
    lines = ["  day       n   base  mean p  ROC-AUC  within-module  PR-AUC   Brier  base-Brier"
             "  p@10%"]
    for day, m in results.items():
        base = m["_base"]
        lines.append(
            f"{day:>5} {m['n']:>7,}  {_f(base, 3)}   {_f(m['_mean_p'], 3)}    {_f(m['roc_auc'], 3)}"
            f"          {_f(m['within_module_auc'], 3)}   {_f(m['pr_auc'], 3)}"
            f"  {_f(m['brier'], 4)}      {_f(base * (1 - base) if base is not None else None, 4)}"
            f"  {_f(m['precision_at_10'], 3)}"
        )
    days = list(results)
    lines += ["", "Per module presentation: ROC-AUC inside it, mean predicted / observed"]
    names = sorted({module for m in results.values() for module in m["module"]})
    lines.append(f"  {'module':<10}" + "".join(f"{'day ' + d:>26}" for d in days))
    for name in names:
        cells = []
        for d in days:
            cell = results[d]["module"].get(name)
            cells.append(f"{'-':>26}" if cell is None else
                         f"{_f(cell['roc_auc'], 3):>12} {cell['mean_predicted']:.3f} /"
                         f" {cell['observed']:.3f}")
        lines.append(f"  {name:<10}" + "".join(cells))
    lines += ["", "Reliability, deciles of the prediction: mean predicted / observed"]
    for d in days:
        lines.append(f"  day {d:>4}: " + "  ".join(
            f"{b['mean_predicted']:.3f}/{b['observed']:.3f}" for b in results[d]["reliability"]))
    values = {
        c: sorted({v for m in results.values() for v in m["group_auc"].get(c, {})})
        for c in GROUP_COLUMNS
    }
    first = results[days[0]] if days else {}
    lines += [
        "",
        f"AUC per group ('!' = more than {GROUP_AUC_MARGIN} below the whole;"
        " n / withdrawn at the first cutoff)",
        f"  {'group':<26}" + "".join(f"{'day ' + d:>11}" for d in days) + "   n / withdrawn",
    ]
    for column in GROUP_COLUMNS:
        for value in values[column]:
            cells = []
            for d in days:
                auc = results[d]["group_auc"].get(column, {}).get(value)
                whole = results[d]["roc_auc"]
                flag = (
                    "!"
                    if auc is not None and whole is not None and auc < whole - GROUP_AUC_MARGIN
                    else " "
                )
                cells.append(f"{_f(auc, 3):>10}{flag}")
            size = first.get("group_gap", {}).get(column, {}).get(value, {})
            lines.append(
                f"  {column + '=' + value:<26}"
                + "".join(cells)
                + f"   {size.get('n', 0):,} / {size.get('withdrawn', 0):,}"
            )
    lines += [
        "",
        "Group AUC minus whole AUC, with its 95 % interval (DeLong; '*' = the whole"
        f" interval is below 0; '~' = fewer than {FEW_WITHDRAWALS} withdrawals at the first"
        " cutoff: reported, not used to choose a model)",
        f"  {'group':<26}" + "".join(f"{'day ' + d:>26}" for d in days),
    ]
    for column in GROUP_COLUMNS:
        for value in values[column]:
            cells = []
            for d in days:
                gap = results[d]["group_gap"].get(column, {}).get(value) or {}
                if gap.get("gap") is None:
                    cells.append(f"{'n/a':>26}")
                    continue
                low, high = gap["ci95"]
                flag = "*" if high < 0 else " "
                cells.append(f"{gap['gap']:>+9.3f} [{low:+.3f}, {high:+.3f}]{flag}")
            lines.append(f"  {_group_name(first, column, value):<26}" + "".join(cells))
    lines += [
        "",
        "Group mean predicted minus observed, with its 95 % interval ('*' = the whole interval"
        " is below 0: under-predicted)",
        f"  {'group':<26}" + "".join(f"{'day ' + d:>26}" for d in days),
    ]
    for column in GROUP_COLUMNS:
        for value in values[column]:
            cells = []
            for d in days:
                gap = results[d]["group_gap"].get(column, {}).get(value) or {}
                if gap.get("calibration_gap") is None:
                    cells.append(f"{'n/a':>26}")
                    continue
                low, high = gap["calibration_ci95"]
                flag = "*" if high < 0 else " "
                cells.append(f"{gap['calibration_gap']:>+9.3f} [{low:+.3f}, {high:+.3f}]{flag}")
            lines.append(f"  {_group_name(first, column, value):<26}" + "".join(cells))
    return "\n".join(lines)


def load_model(path: Path | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Return (model to pass to predict_risk, its JSON): None means the shipped model."""
    if path is None:
        text = resources.files("veritas.analysis").joinpath("dropout_model.json").read_text()
        return None, json.loads(text)
    spec = json.loads(path.read_text())
    if "course_priors" not in spec:  # written before models carried them (dropout-1)
        raise ValueError(f"{path}: the model has no course_priors; refit it with"
                         " scripts/fit_dropout.py")
    return spec, spec


async def run_eval(
    url: str,
    directory: Path,
    *,
    cutoffs: Sequence[int],
    train: Sequence[str] | None = None,
    test: Sequence[str] | None = None,
    model_path: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> dict[str, dict[str, Any]]:
    """Import directory, score the test presentations at each cutoff, print the results."""
    out, err = out or sys.stdout, err or sys.stderr
    summary = await import_oulad(url, directory, progress=Progress(err))
    print(summary.text(), file=err)
    for warning in summary.warnings:
        print(f"warning: {warning}", file=err)
    model, spec = load_model(model_path)
    fitted_on = list((spec.get("trained_on") or {}).get("presentations") or [])
    presentations = summary.presentations
    test = list(test or [p for p in presentations if p not in (train or fitted_on)]
                or presentations[-1:])
    if train is None:
        # Figures are out of sample whenever DIR allows: a test presentation the shipped
        # model learned from is scored by a model fitted on DIR's other presentations.
        others = [p for p in presentations if p not in test]
        learned = model_path is None and set(test) & set(fitted_on)
        train = others if learned and others else fitted_on
    train = list(train)
    refit = model_path is None and set(train) != set(fitted_on)
    conn = await asyncpg.connect(asyncpg_dsn(url), server_settings={
        "timezone": "UTC", **SYSTEM_SERVER_SETTINGS})
    try:
        enrolments = await load_enrolments(conn, test)
        if refit:
            model, fitted_on = await _refit(conn, train, err), train
    finally:
        await conn.close()
    if set(train) != set(fitted_on):
        print(
            f"note: {model_path} was fitted on {','.join(fitted_on) or 'unknown'}; this command"
            " refits only the shipped model, so --train-presentations is only reported.",
            file=err,
        )
    if not enrolments:
        raise ValueError(f"no imported OULAD registrations on {', '.join(test)}")
    results = evaluate(enrolments, cutoffs, model)
    if refit:
        source = "the shipped scorecard refitted in this run"
    else:
        source = str(model_path) if model_path else "shipped dropout_model.json"
    print(
        f"Dropout risk, {source} (fitted on {','.join(fitted_on) or 'unknown'});"
        f" train {','.join(train) or '-'} -> test {','.join(test)}"
        f" ({len(enrolments):,} registrations)",
        file=out,
    )
    overlap = sorted(set(test) & set(fitted_on))
    if overlap:
        print(
            f"warning: in-sample — the model was fitted on {','.join(overlap)}; these figures"
            " are not out-of-sample",
            file=out,
        )
    print(render_table(results), file=out)
    print(json.dumps(public(results), separators=(",", ":")), file=out)
    return public(results)


async def _refit(conn: asyncpg.Connection, train: Sequence[str], err: TextIO) -> dict[str, Any]:
    """The shipped scorecard's recipe (dropout_fit.fit, as scripts/fit_dropout.py runs it)
    fitted on the imported registrations of `train`, one row per registration and cutoff."""
    enrolments = await load_enrolments(conn, train)
    if not enrolments:
        raise ValueError(f"no imported OULAD registrations on {', '.join(train)} to fit on")
    rows = sum(1 for day in TRAINING_CUTOFFS for e in enrolments if in_cohort(e, day))
    print(f"fitting the scorecard on {','.join(train)} ({rows:,} rows: each registration"
          f" at days {','.join(map(str, TRAINING_CUTOFFS))})...", file=err)
    return fit_recipe(enrolments)


def _group_name(first: Mapping[str, Any], column: str, value: str) -> str:
    size = first.get("group_gap", {}).get(column, {}).get(value, {})
    few = "~" if size.get("withdrawn", 0) < FEW_WITHDRAWALS else ""
    return f"{few}{column}={value}"


def _round(value: float) -> float:
    return round(value, 4)


def _f(value: float | None, digits: int) -> str:
    return "  n/a" if value is None else f"{value:.{digits}f}"
