"""Alert triage in-process, under row-level security: analysis alerts are triaged like folded
anomalies, a teacher's write reaches the status columns alone, the history is append-only,
and a higher severity reopens an alert whichever writer raises it."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from tests.support import InTransaction

from veritas.alerts import service as triage
from veritas.alerts.schemas import StatusIn
from veritas.auth.tokens import Claims
from veritas.db.base import AlertStatus, Role
from veritas.db.unit_of_work import SYSTEM, Principal
from veritas.errors import Forbidden, NotFound
from veritas.exams import service as exams
from veritas.exams.schemas import PermissionIn

pytestmark = pytest.mark.anyio


async def _world(tx: InTransaction) -> dict:
    """An exam, a viewer without analytics, an attempt, and one alert of each kind on it."""
    owner, viewer = await tx.user(Role.teacher), await tx.user(Role.teacher)
    student = await tx.user()
    exam = await tx.exam(owner)
    async with tx.as_(owner) as session:
        await exams.grant(session, owner, exam.id, PermissionIn(
            teacher_id=viewer.user_id, can_view_analytics=False), tx.ctx)
    async with tx.as_(student) as session:
        attempt, _ = await exams.start(session, student, exam.id,
                                       tx.settings.attempt_grace_minutes, tx.ctx)
    owners = {"a": attempt.id, "e": exam.id, "s": student.user_id}
    anomaly = await tx.scalar(
        "INSERT INTO monitoring_alerts (exam_attempt_id, exam_id, student_id, event_type,"
        " severity, count, first_at, last_at) VALUES (:a, :e, :s, 'paste', 'warning', 1,"
        " now(), now()) RETURNING id", **owners)
    raised = await tx.scalar(
        "INSERT INTO analysis_alerts (exam_attempt_id, exam_id, student_id, kind, severity,"
        " description) VALUES (:a, :e, :s, 'telemetry_gap', 'normal', '1 monitoring gap')"
        " RETURNING id", **owners)
    return {"owner": owner, "viewer": viewer, "student": student, "exam": exam,
            "anomaly": anomaly, "raised": raised}


async def _set(tx: InTransaction, who: Claims, alert_id: uuid.UUID, status: AlertStatus,
               note: str | None = None):
    async with tx.as_(who) as session:
        return await triage.set_status(session, who, alert_id,
                                       StatusIn(status=status, note=note), tx.ctx)


async def test_an_analysis_alert_is_triaged_and_reopened_like_an_anomaly(
    tx: InTransaction,
) -> None:
    w = await _world(tx)
    dismissed = await _set(tx, w["owner"], w["raised"], AlertStatus.dismissed, "known outage")
    assert (dismissed.kind, dismissed.status, dismissed.count) == (
        "telemetry_gap", AlertStatus.dismissed, 1)
    assert [(h.from_status, h.to_status) for h in dismissed.history] == [
        (AlertStatus.open, AlertStatus.dismissed)]
    # The analysis runs again and finds it worse: the alert is back on the open list.
    await _as_raw(tx, SYSTEM, "UPDATE analysis_alerts SET severity = 'warning' WHERE id = :i",
                  i=w["raised"])
    async with tx.as_(w["owner"]) as session:
        again = await triage.alert_detail(session, w["owner"], w["raised"], tx.ctx)
    assert again.status is AlertStatus.open
    assert again.history[-1].changed_by is None
    assert again.history[-1].note == "reopened: the severity rose from normal to warning"


async def test_the_same_severity_or_a_lower_one_leaves_the_status_alone(
    tx: InTransaction,
) -> None:
    w = await _world(tx)
    await _set(tx, w["owner"], w["anomaly"], AlertStatus.acknowledged)
    await _as_raw(tx, SYSTEM, "UPDATE monitoring_alerts SET count = count + 5,"
                  " severity = 'warning' WHERE id = :i", i=w["anomaly"])
    await _as_raw(tx, SYSTEM, "UPDATE monitoring_alerts SET severity = 'normal' WHERE id = :i",
                  i=w["anomaly"])
    assert await tx.rows("SELECT status, count FROM monitoring_alerts WHERE id = :i",
                         i=w["anomaly"]) == [("acknowledged", 6)]
    assert len((await _set(tx, w["owner"], w["anomaly"], AlertStatus.acknowledged)).history) == 1


async def test_who_may_triage_in_process(tx: InTransaction) -> None:
    w = await _world(tx)
    stranger, admin = await tx.user(Role.teacher), await tx.user(Role.admin)
    with pytest.raises(Forbidden):
        await _set(tx, w["viewer"], w["anomaly"], AlertStatus.dismissed)
    with pytest.raises(NotFound):
        await _set(tx, stranger, w["anomaly"], AlertStatus.dismissed)
    with pytest.raises(NotFound):
        await _set(tx, w["owner"], uuid.uuid4(), AlertStatus.dismissed)
    done = await _set(tx, admin, w["anomaly"], AlertStatus.dismissed, "by the office")
    assert done.history[-1].changed_by is not None
    assert done.history[-1].changed_by.id == admin.user_id


async def _as_raw(tx: InTransaction, who: Principal, statement: str, **params: object) -> int:
    """A statement as `who` past the service, as a bug or an injection would send it."""
    async with tx.as_(who) as session:
        result = await session.execute(text(statement), params)
        return result.rowcount  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("change", [
    "count = 1000", "severity = 'critical'", "description = 'nothing happened'",
    "student_id = exam_id",
])
async def test_a_teacher_writes_the_status_columns_alone(tx: InTransaction, change: str) -> None:
    w = await _world(tx)
    with pytest.raises(DBAPIError, match="only an alert's status may be changed"):
        await _as_raw(tx, w["owner"], f"UPDATE monitoring_alerts SET {change} WHERE id = :i",
                      i=w["anomaly"])


async def test_a_teacher_changes_a_status_in_their_own_name_only(tx: InTransaction) -> None:
    w = await _world(tx)
    with pytest.raises(DBAPIError, match="in the caller's name"):
        await _as_raw(tx, w["owner"], "UPDATE analysis_alerts SET status = 'dismissed',"
                      " status_by = :other, status_at = now() WHERE id = :i",
                      other=w["viewer"].user_id, i=w["raised"])
    # A teacher who may only view the exam updates nothing at all; nor does its student.
    for who in (w["viewer"], w["student"]):
        assert await _as_raw(tx, who, "UPDATE monitoring_alerts SET status = 'dismissed',"
                             " status_by = :me, status_at = now() WHERE id = :i",
                             me=who.user_id, i=w["anomaly"]) == 0
    assert await tx.scalar("SELECT status FROM monitoring_alerts WHERE id = :i",
                           i=w["anomaly"]) == "open"


async def test_the_history_is_append_only_and_hidden_from_students(tx: InTransaction) -> None:
    w = await _world(tx)
    await _set(tx, w["owner"], w["anomaly"], AlertStatus.dismissed, "fine")
    for statement in ("UPDATE alert_status_changes SET note = 'rewritten'",
                      "DELETE FROM alert_status_changes"):
        for who in (w["owner"], SYSTEM):
            with pytest.raises(DBAPIError, match="permission denied"):
                async with tx.as_(who) as session:
                    await session.execute(text(statement))
    # A line under someone else's name, or about an exam the teacher may not analyze.
    with pytest.raises(DBAPIError, match="row-level security"):
        await _as_raw(tx, w["viewer"], "INSERT INTO alert_status_changes (alert_id,"
                      " exam_attempt_id, exam_id, changed_by, from_status, to_status)"
                      " SELECT :i, exam_attempt_id, exam_id, :me, 'open', 'dismissed'"
                      " FROM monitoring_alerts WHERE id = :i", i=w["anomaly"],
                      me=w["viewer"].user_id)
    async with tx.as_(w["student"]) as session:
        assert (await session.execute(text("SELECT count(*) FROM alert_status_changes"))
                ).scalar() == 0
    async with tx.as_(w["viewer"]) as session:  # a teacher of the exam reads it
        assert (await session.execute(text("SELECT count(*) FROM alert_status_changes"
                                           " WHERE alert_id = :i"), {"i": w["anomaly"]})
                ).scalar() == 1


async def test_a_new_analysis_of_the_attempt_keeps_its_alerts_triage(tx: InTransaction) -> None:
    from veritas.analysis.service import analyze_attempt
    from veritas.exams.schemas import SubmitIn

    owner, student = await tx.user(Role.teacher), await tx.user()
    exam = await tx.exam(owner)
    async with tx.as_(student) as session:
        attempt, _ = await exams.start(session, student, exam.id,
                                       tx.settings.attempt_grace_minutes, tx.ctx)
        await exams.submit(session, student, attempt.id, SubmitIn(responses={"q1": "4"}),
                           tx.settings.attempt_grace_minutes, tx.ctx)
    # Ten minutes of writing and no heartbeat at all: the whole attempt is a telemetry gap.
    await _as_raw(tx, SYSTEM, "UPDATE exam_attempts SET started_at = completed_at"
                  " - interval '10 minutes' WHERE id = :a", a=attempt.id)
    await analyze_attempt(tx.sessions, attempt.id, tx.settings)
    (alert_id,) = [r[0] for r in await tx.rows(
        "SELECT id FROM analysis_alerts WHERE exam_attempt_id = :a AND kind = 'telemetry_gap'",
        a=attempt.id)]
    await _set(tx, owner, alert_id, AlertStatus.dismissed, "the school's network was down")
    await analyze_attempt(tx.sessions, attempt.id, tx.settings)
    assert await tx.rows("SELECT id, status, status_note FROM analysis_alerts"
                         " WHERE exam_attempt_id = :a AND kind = 'telemetry_gap'",
                         a=attempt.id) == [(alert_id, "dismissed", "the school's network was down")]
