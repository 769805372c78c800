"""`veritas import oulad`: the fixture through the product's tables, its quirks, a second run."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from tests.oulad.helpers import FIXTURE, run_import

from veritas.oulad.files import OuladFormatError, read_dataset

BBB_2013J = datetime(2013, 10, 1, tzinfo=UTC)
TABLES = ("users", "student_profiles", "teacher_profiles", "performance_metrics", "exams",
          "teacher_exam_permissions", "exam_attempts", "audit_logs")


def _csv(name: str) -> list[dict[str, str]]:
    with (FIXTURE / name).open(newline="") as handle:
        return list(csv.DictReader(handle))


def _counts(conn: psycopg.Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def test_first_import_maps_the_fixture(fresh_url: str) -> None:
    info, results = _csv("studentInfo.csv"), _csv("studentAssessment.csv")
    students = {r["id_student"] for r in info}
    summary = run_import(fresh_url)
    assert (summary.students, summary.students_added) == (len(students), len(students))
    assert (summary.exams, summary.exams_added) == (24, 24)
    assert (summary.attempts, summary.attempts_added) == (len(results), len(results))
    assert summary.teachers_added == 1 and not summary.warnings
    with psycopg.connect(fresh_url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM users u JOIN student_profiles p ON p.user_id = u.id"
            " JOIN performance_metrics m ON m.student_id = u.id"
            " WHERE u.role = 'student' AND u.external_ref LIKE 'oulad:student:%%'"
            " AND u.username = 'oulad_' || (u.metadata #>> '{oulad,id_student}')"
            " AND u.email = (u.metadata #>> '{oulad,id_student}') || '@oulad.example'"
        ).fetchone()[0]
        assert count == len(students)
        # A student on both presentations: one user, both registrations, the latest cohort.
        meta, cohort = conn.execute(
            "SELECT u.metadata, p.cohort FROM users u JOIN student_profiles p ON p.user_id = u.id"
            " WHERE u.external_ref = 'oulad:student:153704'").fetchone()
        assert set(meta["oulad"]["registrations"]) == {"BBB-2013B", "BBB-2013J"}
        assert cohort == "BBB-2013J"
        # Demographics and registration dates are kept; a missing date stays missing.
        reg = conn.execute("SELECT metadata #> '{oulad,registrations,BBB-2013J}' FROM users"
                           " WHERE external_ref = 'oulad:student:342678'").fetchone()[0]
        assert reg["date_registration"] is None and reg["date_unregistration"] == -33
        assert reg["demographics"]["imd_band"] == "50-60%" and reg["final_result"] == "Withdrawn"
        # Exams: published, owned by the module's teacher, due at start + date days.
        rows = conn.execute(
            "SELECT e.external_ref, e.subject, e.topic, e.due_at, e.is_published, t.username,"
            " (SELECT count(*) FROM teacher_exam_permissions g"
            "   WHERE g.exam_id = e.id AND g.teacher_id = t.id AND g.can_edit)"
            " FROM exams e JOIN users t ON t.id = e.creator_id"
            " WHERE e.external_ref IN ('oulad:assessment:14996', 'oulad:assessment:15002')"
            " ORDER BY 1").fetchall()
        assert rows == [
            ("oulad:assessment:14996", "BBB", "BBB-2013J", datetime(2013, 10, 20, tzinfo=UTC),
             True, "oulad_teacher_bbb", 1),
            # The final exam has no date in OULAD, so no due date here.
            ("oulad:assessment:15002", "BBB", "BBB-2013J", None, True, "oulad_teacher_bbb", 1),
        ]
        # A marked, an unmarked and a banked result.
        attempts = {r[0]: r[1:] for r in conn.execute(
            "SELECT external_ref, status::text, score, percentage, passed, completed_at,"
            " metadata->>'banked' FROM exam_attempts WHERE external_ref IN"
            " ('oulad:result:14998:308703', 'oulad:result:14996:242149',"
            "  'oulad:result:14996:23798')")}
        assert attempts["oulad:result:14998:308703"] == (
            "completed", None, None, None, datetime(2014, 1, 5, tzinfo=UTC), "false")
        assert attempts["oulad:result:14996:242149"][5] == "true"
        status, score, pct, passed, done, _ = attempts["oulad:result:14996:23798"]
        row = next(r for r in results if r["id_assessment"] == "14996"
                   and r["id_student"] == "23798")
        assert (status, score, pct) == ("completed", float(row["score"]), float(row["score"]))
        assert passed is (float(row["score"]) >= 40)
        assert (done - BBB_2013J).days == int(row["date_submitted"])
        # Counters: every result counts as attempted; the mean is over marked ones.
        expected = [r for r in results if r["id_student"] == "33666"]
        marked = [float(r["score"]) for r in expected if r["score"]]
        assert 0 < len(marked) < len(expected)
        totals = conn.execute(
            "SELECT p.total_exams_attempted, p.total_exams_passed, m.total_attempts,"
            " m.avg_score, m.subject_scores FROM student_profiles p"
            " JOIN performance_metrics m ON m.student_id = p.user_id"
            " JOIN users u ON u.id = p.user_id WHERE u.external_ref = 'oulad:student:33666'"
        ).fetchone()
        assert totals[0] == totals[2] == len(expected)
        assert totals[1] == sum(1 for s in marked if s >= 40)
        assert totals[3] == pytest.approx(sum(marked) / len(marked))
        assert totals[4]["BBB"]["attempts"] == len(marked)


def test_second_import_adds_nothing(fresh_url: str) -> None:
    run_import(fresh_url)  # whatever ran before, the fixture is now in
    with psycopg.connect(fresh_url) as conn:
        before = _counts(conn)
        stamps = conn.execute("SELECT max(updated_at) FROM student_profiles").fetchone()
    summary = run_import(fresh_url)
    assert not summary.changed
    assert (summary.students_added, summary.students_updated, summary.exams_added,
            summary.attempts_added, summary.teachers_added, summary.profiles_updated) == (
        0, 0, 0, 0, 0, 0)
    with psycopg.connect(fresh_url) as conn:
        assert _counts(conn) == before
        assert conn.execute("SELECT max(updated_at) FROM student_profiles").fetchone() == stamps


def test_a_later_import_adds_registrations(fresh_url: str, tmp_path: Path) -> None:
    run_import(fresh_url)
    # Student 23629 took BBB 2013B only; a later file registers them on 2013J too.
    for name in ("courses.csv", "assessments.csv"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    (tmp_path / "studentInfo.csv").write_text(
        "code_module,code_presentation,id_student,gender,region,highest_education,imd_band,"
        "age_band,num_of_prev_attempts,studied_credits,disability,final_result\n"
        "BBB,2013J,23629,F,Scotland,HE Qualification,,0-35,1,60,N,Pass\n")
    (tmp_path / "studentRegistration.csv").write_text(
        "code_module,code_presentation,id_student,date_registration,date_unregistration\n"
        "BBB,2013J,23629,-20,\n")
    (tmp_path / "studentAssessment.csv").write_text(
        "id_assessment,id_student,date_submitted,is_banked,score\n14996,23629,18,0,?\n")
    summary = run_import(fresh_url, tmp_path)
    assert (summary.students_added, summary.students_updated, summary.attempts_added) == (0, 1, 1)
    with psycopg.connect(fresh_url) as conn:
        meta, cohort, attempted = conn.execute(
            "SELECT u.metadata, p.cohort, p.total_exams_attempted FROM users u"
            " JOIN student_profiles p ON p.user_id = u.id"
            " WHERE u.external_ref = 'oulad:student:23629'").fetchone()
    assert set(meta["oulad"]["registrations"]) == {"BBB-2013B", "BBB-2013J"}
    assert meta["oulad"]["registrations"]["BBB-2013J"]["demographics"]["imd_band"] is None
    assert cohort == "BBB-2013J"
    old = [r for r in _csv("studentAssessment.csv") if r["id_student"] == "23629"]
    assert attempted == len(old) + 1
    assert not run_import(fresh_url, tmp_path).changed


def _broken(tmp_path: Path, name: str, line: int, text: str | None) -> Path:
    """The fixture with one line of one file replaced (or dropped when text is None)."""
    target = tmp_path / "oulad"
    shutil.copytree(FIXTURE, target)
    lines = (target / name).read_text().splitlines()
    if text is None:
        del lines[line - 1]
    else:
        lines[line - 1] = text
    (target / name).write_text("\n".join(lines) + "\n")
    return target


@pytest.mark.parametrize("name,line,text,message", [
    ("studentAssessment.csv", 5, "14984,24734,19,0,abc", "score 'abc' is not a number"),
    ("studentAssessment.csv", 6, "14984,24734,19,0,140", "score 140 is outside [0, 100]"),
    ("studentAssessment.csv", 7, "14984,24734,19", "3 fields where the header has 5"),
    ("studentAssessment.csv", 8, "99999,24734,19,0,50", "id_assessment 99999 is not in"),
    ("studentAssessment.csv", 9, "14984,24734,nineteen,0,50", "'nineteen' is not a whole number"),
    ("studentAssessment.csv", 3, "14984,24734,19,2,50", "is_banked must be 0 or 1"),
    ("assessments.csv", 4, "BBB,2013X,14986,TMA,89,18", "code_presentation '2013X'"),
    ("studentInfo.csv", 1, "code_module,code_presentation,id_student,gender",
     "missing column(s) region"),
    ("studentRegistration.csv", 3, "BBB,2013B,23629,-10,", "duplicate row for BBB, 2013B, 23629"),
])
def test_malformed_files_name_file_and_line(tmp_path: Path, name: str, line: int, text: str,
                                            message: str) -> None:
    directory = _broken(tmp_path, name, line, text)
    with pytest.raises(OuladFormatError) as caught:
        read_dataset(directory)
    assert caught.value.path.name == name and caught.value.line == line
    assert message in str(caught.value)


def test_a_missing_file_or_registration_is_named(tmp_path: Path) -> None:
    directory = _broken(tmp_path, "studentRegistration.csv", 2, None)
    with pytest.raises(OuladFormatError, match=r"studentInfo\.csv, line 2: .* has no row in"):
        read_dataset(directory)
    (directory / "studentAssessment.csv").unlink()
    with pytest.raises(OuladFormatError, match=r"studentAssessment\.csv: file is missing"):
        read_dataset(directory)


def test_missing_values_are_read_as_unknown(tmp_path: Path) -> None:
    # Some copies of OULAD write '?' for missing values; a submission day may be missing too.
    directory = _broken(tmp_path, "studentAssessment.csv", 2, "14984,23629,,0,?")
    first = _csv("studentAssessment.csv")[0]
    data = read_dataset(directory)
    result = next(r for r in data.results if (r.assessment, r.student) == (
        first["id_assessment"], "23629"))
    assert (result.day, result.score) == (None, None)
    exam = data.assessments["15002"]
    assert exam.day is None and exam.kind == "Exam"


def test_cli_reports_a_malformed_file_and_writes_nothing(fresh_url: str, tmp_path: Path) -> None:
    directory = _broken(tmp_path, "studentAssessment.csv", 12, "14984,999999,19,0,abc")
    env = {**os.environ, "DATABASE_URL": fresh_url, "BCRYPT_ROUNDS": "4"}
    with psycopg.connect(fresh_url) as conn:
        before = _counts(conn)
    result = subprocess.run([sys.executable, "-m", "veritas.cli", "import", "oulad",
                             str(directory)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "studentAssessment.csv, line 12: score 'abc' is not a number" in result.stderr
    with psycopg.connect(fresh_url) as conn:
        assert _counts(conn) == before
