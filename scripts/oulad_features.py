"""Read the OULAD CSVs into veritas StudentHistory objects, with labels and groups kept aside.

Used by fit_dropout.py. Records are veritas.oulad.evaluate.Enrolment, which the eval's own
fit (evaluate.fit_recipe) and scoring (evaluate.score_cohorts) take, so the script trains and
scores by exactly the rules `veritas eval dropout` applies to the database. The model only
ever sees a StudentHistory and a day; the outcome (final_result) and the demographic groups
travel alongside it for labelling and fairness checks, never into features.
"""

import csv
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from veritas.analysis.dropout import (  # noqa: E402
    AssessmentRecord,
    StudentHistory,
)
from veritas.analysis.dropout_fit import TRAINING_CUTOFFS  # noqa: E402
from veritas.oulad.evaluate import (  # noqa: E402
    CREDITS_PER_COURSE,
    GROUP_COLUMNS,
    Enrolment,
)

CUTOFFS = TRAINING_CUTOFFS


def load_registrations(data_dir: Path) -> list[Enrolment]:
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
            Enrolment(
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


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _int_or_none(text: str) -> int | None:
    return int(text) if text.strip() else None
