"""`veritas eval dropout` on the fixture: the command's output and the cutoff rules."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import resources

import asyncpg
import pytest
from tests.oulad.helpers import FIXTURE

from veritas.config import asyncpg_dsn
from veritas.oulad.evaluate import Enrolment, load_enrolments, score_cohorts, withdrawn_to_date

CUTOFFS = (30, 60, 90, 120)
METRICS = {"n", "base_rate", "roc_auc", "pr_auc", "brier", "precision_at_10", "group_auc",
           "mean_predicted", "within_module_auc", "module", "reliability"}
GROUPS = {"gender", "age_band", "disability", "imd_band"}


def _expected_cohorts(presentation: str = "2013J") -> dict[int, set[str]]:
    """The cohort rule applied straight to the fixture CSV, independently of the code."""
    with (FIXTURE / "studentRegistration.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["code_presentation"] == presentation]
    out = {}
    for day in CUTOFFS:
        out[day] = {
            r["id_student"]
            for r in rows
            if (not r["date_registration"] or int(r["date_registration"]) <= day)
            and (not r["date_unregistration"] or int(r["date_unregistration"]) > day)
        }
    return out


def shipped_model() -> dict:
    return json.loads(resources.files("veritas.analysis").joinpath("dropout_model.json")
                      .read_text())


async def _enrolments(url: str) -> list[Enrolment]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await load_enrolments(conn, ["2013J"])
    finally:
        await conn.close()


def test_eval_command_prints_a_table_and_one_json_line(imported: str) -> None:
    env = {**os.environ, "DATABASE_URL": imported, "BCRYPT_ROUNDS": "4"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "veritas.cli",
            "eval",
            "dropout",
            str(FIXTURE),
            "--cutoffs",
            "30,60,90,120",
            "--test-presentations",
            "2013J",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "ROC-AUC" in result.stdout and "gender=F" in result.stdout
    # Beside the pooled figures: the AUC within modules, per module, and the reliability.
    assert "within-module" in result.stdout and "Per module presentation" in result.stdout
    assert "Reliability, deciles" in result.stdout
    assert "Group mean predicted minus observed" in result.stdout
    figures = json.loads(lines[-1])
    assert list(figures) == ["30", "60", "90", "120"]
    expected = _expected_cohorts()
    for day, m in figures.items():
        # The contract's keys, plus each group's size and its gap to the whole with an interval.
        assert set(m) == METRICS | {"group_gap"}
        assert m["n"] == len(expected[int(day)])
        for name in ("base_rate", "roc_auc", "pr_auc", "brier", "precision_at_10",
                     "mean_predicted", "within_module_auc"):
            assert 0 <= m[name] <= 1
        # One module presentation (BBB-2013J) is tested: inside it is the whole.
        assert m["within_module_auc"] == m["roc_auc"] == m["module"]["BBB-2013J"]["roc_auc"]
        assert m["module"]["BBB-2013J"]["mean_predicted"] == m["mean_predicted"]
        assert m["module"]["BBB-2013J"]["observed"] == m["base_rate"]
        bins = m["reliability"]
        assert len(bins) == 10 and sum(b["n"] for b in bins) == m["n"]
        assert [b["mean_predicted"] for b in bins] == sorted(b["mean_predicted"] for b in bins)
        weighted = sum(b["n"] * b["mean_predicted"] for b in bins) / m["n"]
        assert weighted == pytest.approx(m["mean_predicted"], abs=1e-3)
        assert set(m["group_auc"]) == set(m["group_gap"]) == GROUPS
        for column, gaps in m["group_gap"].items():
            assert sum(g["n"] for g in gaps.values()) == m["n"]
            for value, g in gaps.items():
                auc = m["group_auc"][column][value]
                assert (g["gap"] is None) == (auc is None)
                if auc is not None:
                    assert g["gap"] == pytest.approx(auc - m["roc_auc"], abs=2e-4)
                    assert g["ci95"][0] <= g["gap"] <= g["ci95"][1]
                low, high = g["calibration_ci95"]
                assert low <= g["calibration_gap"] <= high
    # The import inside eval is the same idempotent import: nothing new the second time.
    assert "0 new" in result.stderr
    # The shipped model learned from 2013J, so the command refits its recipe on 2013B: the
    # figures are out of sample, as the first line says.
    assert "fitting the scorecard on 2013B" in result.stderr
    assert lines[0].startswith("Dropout risk, the shipped scorecard refitted in this run"
                               " (fitted on 2013B); train 2013B -> test 2013J")
    assert "in-sample" not in result.stdout


def test_the_cohort_is_who_is_still_registered_on_the_day(imported: str) -> None:
    enrolments = asyncio.run(_enrolments(imported))
    expected = _expected_cohorts()
    for day in CUTOFFS:
        scored = score_cohorts(enrolments, day)
        cohort = {s.enrolment.student for s in scored}
        assert cohort == expected[day]
        for s in scored:
            gone = s.enrolment.unregistration_day
            assert gone is None or gone > day
            assert s.features.course_day == day
    at = {day: {s.enrolment.student for s in score_cohorts(enrolments, day)} for day in CUTOFFS}
    # Withdrew before the start, or on day 0: never scored.
    assert not {"23632", "53360", "54388", "57369", "342678"} & set().union(*at.values())
    # Unregistered on day 60 itself: scored at 30, gone at 60.
    assert "305812" in at[30] and "305812" not in at[60]
    # Registered on day 32: not yet at 30, scored from 60.
    assert "1170618" not in at[30] and "1170618" in at[60]


def _truncated(enrolment: Enrolment, day: int) -> Enrolment:
    """The enrolment as it stood at the end of `day`: later submissions and unregistrations
    never happened, and the outcome is not known (here: the opposite of the real one)."""
    records = tuple(
        a
        if a.submitted_day is not None and a.submitted_day <= day
        else replace(a, submitted_day=None, score=None, banked=False)
        for a in enrolment.history.assessments
    )
    gone = enrolment.unregistration_day
    return replace(enrolment, history=replace(enrolment.history, assessments=records),
                   unregistration_day=gone if gone is not None and gone <= day else None,
                   withdrawn=not enrolment.withdrawn)


def test_features_never_use_work_after_the_cutoff(imported: str) -> None:
    # Scoring includes the course prior and the class's prior shift, which for a new course
    # reads the class's withdrawals to date: neither may see a later unregistration or the
    # outcome. The shipped model knows BBB; the second model has never seen it.
    enrolments = asyncio.run(_enrolments(imported))
    new_course = shipped_model()
    new_course["course_priors"] = {**new_course["course_priors"], "courses": {}}
    for model in (None, new_course):
        for day in CUTOFFS:
            full = {s.enrolment.student: (s.features, s.probability)
                    for s in score_cohorts(enrolments, day, model)}
            cut = {s.enrolment.student: (s.features, s.probability)
                   for s in score_cohorts([_truncated(e, day) for e in enrolments], day, model)}
            assert full == cut


def test_changing_the_database_after_the_cutoff_changes_nothing(imported: str) -> None:
    day = 60

    async def scenario() -> tuple[dict, dict, dict, dict]:
        conn = await asyncpg.connect(asyncpg_dsn(imported))
        tx = conn.transaction()
        await tx.start()
        try:
            before = await load_enrolments(conn, ["2013J"])
            first = await conn.fetchval(
                "SELECT (metadata->>'course_start')::date FROM exams"
                " WHERE external_ref = 'oulad:assessment:14996'"
            )
            start = datetime(first.year, first.month, first.day, tzinfo=UTC)
            # Every mark handed in after the day is reversed...
            changed = await conn.execute(
                "UPDATE exam_attempts a SET score = 100 - a.score, percentage = 100 - a.percentage"
                " FROM exams e WHERE e.id = a.exam_id AND e.topic = 'BBB-2013J'"
                " AND a.completed_at > $1 AND a.score IS NOT NULL",
                start + timedelta(days=day),
            )
            assert int(changed.split()[-1]) > 0
            # ...and a student in the cohort hands in, on day 61, work they had missed.
            missing = next(
                (e, a)
                for e in before
                if e.unregistration_day is None
                for a in e.history.assessments
                if a.due_day is not None and a.due_day <= day and a.submitted_day is None
            )
            enrolment, record = missing
            await conn.execute(
                "INSERT INTO exam_attempts (exam_id, student_id, status, score, max_score,"
                " percentage, passed, started_at, expires_at, completed_at)"
                " SELECT $1::uuid, u.id, 'completed', 95, 100, 95, true, $3, $3, $3"
                " FROM users u WHERE u.external_ref = $2",
                record.assessment_id,
                f"oulad:student:{enrolment.student}",
                start + timedelta(days=day + 1),
            )
            after = await load_enrolments(conn, ["2013J"])
        finally:
            await tx.rollback()
            await conn.close()

        def scores(enrolments: list[Enrolment], on: int) -> dict:
            return {s.enrolment.student: s.features for s in score_cohorts(enrolments, on)}

        return scores(before, day), scores(after, day), scores(before, 200), scores(after, 200)

    at_day_before, at_day_after, later_before, later_after = asyncio.run(scenario())
    assert at_day_before == at_day_after
    assert later_before != later_after  # the changes were real: they show once they are known


def test_each_class_is_shifted_to_its_expected_withdrawal_rate(imported: str) -> None:
    from veritas.analysis.dropout import expected_withdrawal

    enrolments = asyncio.run(_enrolments(imported))
    for day in CUTOFFS:
        scored = score_cohorts(enrolments, day)
        mean = sum(s.probability for s in scored) / len(scored)
        # The fixture's 2013J is one class, of a course the shipped model knows.
        target = expected_withdrawal(None, "BBB", day, withdrawn_to_date(enrolments, day))
        assert mean == pytest.approx(target, abs=1e-9)
        assert all(s.features.course_prior == pytest.approx(target) for s in scored)


def test_withdrawn_to_date_counts_only_what_is_known_on_the_day() -> None:
    from veritas.analysis.dropout import StudentHistory

    def member(registered: int | None, gone: int | None, withdrawn: bool = False) -> Enrolment:
        return Enrolment("s", "AAA", "2013J", StudentHistory((), registration_day=registered),
                         gone, withdrawn, {})

    members = [member(-30, None), member(-30, -5, True), member(-10, 20, True),
               member(5, 40, True), member(45, None), member(None, None, True)]
    # On day 30: registered by then and still there on day 0: four; left since day 0: one.
    assert withdrawn_to_date(members, 30) == pytest.approx(1 / 4)
    assert withdrawn_to_date(members, 40) == pytest.approx(2 / 4)
    assert withdrawn_to_date(members, 10) == pytest.approx(0.5 / 4)  # none yet: half a student
    assert withdrawn_to_date([member(-5, -1)], 30) is None


def test_a_model_file_without_course_priors_is_refused_with_a_reason(tmp_path) -> None:
    from veritas.oulad.evaluate import load_model

    old = {k: v for k, v in shipped_model().items() if k != "course_priors"}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    with pytest.raises(ValueError, match="no course_priors; refit it"):
        load_model(path)
    path.write_text(json.dumps(shipped_model()))
    assert load_model(path)[0] == shipped_model()
