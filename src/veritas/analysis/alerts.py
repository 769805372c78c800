"""The alerts an analysis raises on an attempt, kept in step with its latest result.

Alerts are reconciled, not replaced: an alert of a kind the attempt still warrants keeps its
row, id (which review decisions name) and triage, and takes the new severity and description
(and, when either changed, a new time, so the list and its stream show it as news; a higher
severity reopens an alert a teacher set aside, migration 0012); one it no longer warrants is
withdrawn (deleted); a new one is raised. A change to a low_integrity
alert made by a final score is audited (`raise_integrity_alert`, `keep_integrity_alert`,
`withdraw_integrity_alert`), so a teacher can see why an alert came or went when the exam's
scores became final. Provisional changes are not: they are the ones a final score settles.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.analysis import integrity
from veritas.analysis.models import AnalysisAlert
from veritas.audit import service as audit
from veritas.db.base import ScoreStatus, Severity

LOW_INTEGRITY, HIGH_RISK, TELEMETRY_GAP = "low_integrity", "high_dropout_risk", "telemetry_gap"
KINDS = (LOW_INTEGRITY, HIGH_RISK, TELEMETRY_GAP)


@dataclass(frozen=True)
class Alert:
    attempt_id: uuid.UUID
    exam_id: uuid.UUID
    student_id: uuid.UUID
    kind: str
    severity: Severity
    description: str
    score_status: ScoreStatus | None = None


@dataclass(frozen=True)
class Owner:
    """Whose alert: the attempt, its exam and its student."""

    attempt_id: uuid.UUID
    exam_id: uuid.UUID
    student_id: uuid.UUID


def integrity_alert(owner: Owner, result: integrity.IntegrityResult | None,
                    status: ScoreStatus | None) -> Alert | None:
    """A low_integrity alert for a medium (warning) or high (critical) review priority."""
    if result is None or result.band not in ("medium", "high"):
        return None
    return Alert(owner.attempt_id, owner.exam_id, owner.student_id, LOW_INTEGRITY,
                 Severity.critical if result.band == "high" else Severity.warning,
                 f"integrity {result.score:.2f} ({result.band} review priority): "
                 + (", ".join(result.flags) or "several small signals"), status)


def analysis_alerts(owner: Owner, result: integrity.IntegrityResult | None, risk: Any,
                    status: ScoreStatus | None) -> list[Alert]:
    """What one analysis warrants: low integrity, high dropout risk, telemetry gaps."""
    alerts = [a for a in (integrity_alert(owner, result, status),) if a is not None]
    if risk is not None and risk.label == "high_risk":
        alerts.append(Alert(owner.attempt_id, owner.exam_id, owner.student_id, HIGH_RISK,
                            Severity.warning, f"dropout risk {risk.probability:.0%} (high)"))
    if result is not None and result.gaps:
        alerts.append(Alert(owner.attempt_id, owner.exam_id, owner.student_id, TELEMETRY_GAP,
                            Severity.normal, f"{len(result.gaps)} monitoring gap(s); "
                                             f"coverage {result.confidence:.0%}"))
    return alerts


async def reconcile(
    session: AsyncSession, attempt_ids: Collection[uuid.UUID], wanted: Sequence[Alert],
    kinds: Collection[str] = KINDS, *, final: bool, reason: str,
) -> Counter[str]:
    """Make the attempts' alerts of these kinds exactly `wanted`; returns how many were
    raised, kept (and changed) and withdrawn. `final`: the change comes from a final score,
    so changes to low_integrity alerts are audited, with `reason`."""
    if not attempt_ids:
        return Counter()
    existing: dict[tuple[uuid.UUID, str], list[Any]] = {}
    for row in (await session.execute(
        select(AnalysisAlert.id, AnalysisAlert.exam_attempt_id, AnalysisAlert.exam_id,
               AnalysisAlert.student_id, AnalysisAlert.kind, AnalysisAlert.severity,
               AnalysisAlert.description, AnalysisAlert.score_status)
        .where(AnalysisAlert.exam_attempt_id.in_(list(attempt_ids)),
               AnalysisAlert.kind.in_(list(kinds)))
        .order_by(AnalysisAlert.created_at, AnalysisAlert.id)
    )).all():
        existing.setdefault((row.exam_attempt_id, row.kind), []).append(row)
    want = {(a.attempt_id, a.kind): a for a in wanted}
    raised, changed, gone = [], [], []
    for key, alert in want.items():
        rows = existing.pop(key, [])
        if not rows:
            raised.append(alert)
            continue
        kept, *twins = rows
        gone += twins
        if (kept.severity, kept.description, kept.score_status) != (
                alert.severity, alert.description, alert.score_status):
            changed.append((kept, alert))
    gone += [row for rows in existing.values() for row in rows]

    new_ids: list[uuid.UUID] = []
    if raised:
        new_ids = list((await session.scalars(
            insert(AnalysisAlert).returning(AnalysisAlert.id, sort_by_parameter_order=True),
            [{"exam_attempt_id": a.attempt_id, "exam_id": a.exam_id, "student_id": a.student_id,
              "kind": a.kind, "severity": a.severity, "description": a.description,
              "score_status": a.score_status} for a in raised])).all())
    for row, alert in changed:
        news = (row.severity, row.description) != (alert.severity, alert.description)
        await session.execute(
            update(AnalysisAlert).where(AnalysisAlert.id == row.id)
            .values(severity=alert.severity, description=alert.description,
                    score_status=alert.score_status,
                    **({"created_at": func.clock_timestamp()} if news else {})))
    if gone:
        await session.execute(delete(AnalysisAlert)
                              .where(AnalysisAlert.id.in_([row.id for row in gone])))

    if final:
        for alert_id, alert in zip(new_ids, raised):
            if alert.kind == LOW_INTEGRITY:
                await _audit(session, "raise_integrity_alert", alert_id, alert, None, reason)
        for row, alert in changed:
            if alert.kind == LOW_INTEGRITY:
                await _audit(session, "keep_integrity_alert", row.id, alert, row, reason)
        for row in gone:
            if row.kind == LOW_INTEGRITY:
                await _audit(session, "withdraw_integrity_alert", row.id, None, row, reason)
    return Counter(raised=len(raised), kept=len(changed), withdrawn=len(gone))


async def _audit(session: AsyncSession, action: str, alert_id: uuid.UUID, alert: Alert | None,
                 before: Any, reason: str) -> None:
    """One audit record of a change to a low_integrity alert: what it is now and was before."""
    if alert is not None:
        owner = (alert.attempt_id, alert.exam_id, alert.student_id)
    else:
        owner = (before.exam_attempt_id, before.exam_id, before.student_id)
    details: dict[str, Any] = {"reason": reason, "attempt_id": str(owner[0]),
                               "exam_id": str(owner[1]), "student_id": str(owner[2])}
    if alert is not None:
        details |= {"severity": alert.severity.value, "description": alert.description}
    if before is not None:
        details |= {"previous_severity": before.severity.value,
                    "previous_description": before.description,
                    "previous_score_status": getattr(before.score_status, "value", None)}
    await audit.record(session, None, None, action, "analysis_alert", alert_id, details)
