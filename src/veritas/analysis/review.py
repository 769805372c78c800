"""The review workflow: teachers acknowledge, confirm or dismiss an attempt (or one alert).

Decisions are immutable rows; a later decision supersedes earlier ones, none is ever edited.
When the exam's metadata says `{"review": {"require_second_reviewer": true}}`, a confirmation
stands only once two different reviewers have confirmed since the last other decision.
Students see the outcome, never the notes or who decided.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.analysis.models import ReviewDecision
from veritas.exams.models import Exam

OUTCOMES = ("not_reviewed", "under_review", "pending_second_review", "confirmed", "cleared")


def needs_second_reviewer(exam: Exam) -> bool:
    review = (exam.metadata_ or {}).get("review") or {}
    return isinstance(review, dict) and review.get("require_second_reviewer") is True


def outcome(decisions: list[ReviewDecision], second_reviewer: bool) -> str:
    """The attempt's review status from its decisions, oldest first."""
    if not decisions:
        return "not_reviewed"
    latest = decisions[-1]
    if latest.decision == "dismissed":
        return "cleared"
    if latest.decision == "acknowledged":
        return "under_review"
    confirmers: set[uuid.UUID] = set()
    for decision in reversed(decisions):
        if decision.decision != "confirmed":
            break
        confirmers.add(decision.reviewer_id)
    if second_reviewer and len(confirmers) < 2:
        return "pending_second_review"
    return "confirmed"


async def decisions_of(session: AsyncSession, attempt_id: uuid.UUID) -> list[ReviewDecision]:
    return list((await session.scalars(
        select(ReviewDecision).where(ReviewDecision.exam_attempt_id == attempt_id)
        .order_by(ReviewDecision.created_at, ReviewDecision.id)
    )).all())


async def decide(
    session: AsyncSession, attempt_id: uuid.UUID, reviewer_id: uuid.UUID, decision: str,
    note: str | None, alert_id: uuid.UUID | None,
) -> ReviewDecision:
    row = ReviewDecision(exam_attempt_id=attempt_id, reviewer_id=reviewer_id, decision=decision,
                         note=note, alert_id=alert_id)
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


def decision_dict(row: ReviewDecision) -> dict[str, Any]:
    return {"id": row.id, "attempt_id": row.exam_attempt_id, "alert_id": row.alert_id,
            "reviewer_id": row.reviewer_id, "decision": row.decision, "note": row.note,
            "created_at": row.created_at}
