"""Read the OULAD CSVs into veritas StudentHistory objects, with labels and groups kept aside.

Shared by fit_dropout.py and evaluation code. The model only ever sees a StudentHistory
and a day; the outcome (final_result) and the demographic groups travel alongside it for
labelling and fairness checks, never into features.
"""

import csv
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from veritas.analysis.dropout import (  # noqa: E402
    AssessmentRecord,
    RiskFeatures,
    StudentHistory,
    compute_class_means,
    features_at,
)

GROUP_COLUMNS = ("gender", "age_band", "disability", "imd_band")
CUTOFFS = (30, 60, 90, 120)
CREDITS_PER_COURSE = 60  # the usual Open University module size; load = studied_credits / 60


@dataclass(frozen=True)
class Registration:
    """One student's registration on one module presentation."""

    module: str
    presentation: str
    student: str
    history: StudentHistory
    unregistration_day: int | None
    withdrawn: bool  # final_result == 'Withdrawn': the label, never a feature
    groups: dict[str, str]  # demographic columns, for per-group metrics only


@dataclass(frozen=True)
class Example:
    """A registration seen at a cutoff day."""

    registration: Registration
    day: int
    features: RiskFeatures


def load_registrations(data_dir: Path) -> list[Registration]:
    """Return every registration in the OULAD CSVs under data_dir."""
    assessments: dict[tuple[str, str], list[tuple[str, int | None, float]]] = defaultdict(list)
    for row in _rows(data_dir / "assessments.csv"):
        due = int(row["date"]) if row["date"] else None
        assessments[(row["code_module"], row["code_presentation"])].append(
            (row["id_assessment"], due, float(row["weight"]))
        )
    submissions = {
        (row["id_assessment"], row["id_student"]): row
        for row in _rows(data_dir / "studentAssessment.csv")
    }
    registrations = {
        (row["code_module"], row["code_presentation"], row["id_student"]): row
        for row in _rows(data_dir / "studentRegistration.csv")
    }
    out = []
    for info in _rows(data_dir / "studentInfo.csv"):
        key = (info["code_module"], info["code_presentation"], info["id_student"])
        reg = registrations[key]
        records = []
        for assessment_id, due, weight in assessments[key[:2]]:
            sub = submissions.get((assessment_id, info["id_student"]))
            records.append(
                AssessmentRecord(
                    assessment_id=assessment_id,
                    due_day=due,
                    weight=weight,
                    submitted_day=int(sub["date_submitted"]) if sub else None,
                    score=float(sub["score"]) if sub and sub["score"] else None,
                    banked=bool(sub) and sub["is_banked"] == "1",
                )
            )
        history = StudentHistory(
            assessments=tuple(records),
            registration_day=_int_or_none(reg["date_registration"]),
            load=int(info["studied_credits"]) / CREDITS_PER_COURSE,
            previous_attempts=int(info["num_of_prev_attempts"]),
        )
        out.append(
            Registration(
                module=key[0],
                presentation=key[1],
                student=key[2],
                history=history,
                unregistration_day=_int_or_none(reg["date_unregistration"]),
                withdrawn=info["final_result"] == "Withdrawn",
                groups={column: info[column] or "unknown" for column in GROUP_COLUMNS},
            )
        )
    return out


def in_cohort(registration: Registration, day: int) -> bool:
    """Return whether the student is registered at the end of `day` (the only students we score)."""
    if registration.unregistration_day is not None and registration.unregistration_day <= day:
        return False
    reg_day = registration.history.registration_day
    return reg_day is None or reg_day <= day


def examples(registrations: list[Registration], days: tuple[int, ...] = CUTOFFS) -> list[Example]:
    """Return the cohort of each day with the features known by that day."""
    classes: dict[tuple[str, str], list[Registration]] = defaultdict(list)
    for r in registrations:
        classes[(r.module, r.presentation)].append(r)
    out = []
    for day in days:
        for members in classes.values():
            # Every classmate's marks known by the day count, including those who since left.
            means = compute_class_means((r.history for r in members), day)
            out.extend(
                Example(r, day, features_at(r.history, day, means))
                for r in members
                if in_cohort(r, day)
            )
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _int_or_none(text: str) -> int | None:
    return int(text) if text.strip() else None
