"""An attempt's lifecycle: when it is open, and the one way it ends.

An attempt is open while it is in progress and its time plus the grace period has not run
out. `end` is the only code that moves an attempt out of progress: in the same transaction it
tells every process's ingestion cache (NOTIFY) and queues the attempt's analysis, so no
ending path can forget either, and a rolled-back end does neither. `now` is the clock every
decision about an attempt's time reads.

After the end: `results_visible` decides, by the exam's `show_results`, when the student sees
their per-question points, feedback and the correct answers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, exists, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.core.channels import ATTEMPT_ENDED_CHANNEL
from veritas.core.queue import enqueue_analysis
from veritas.db.base import AttemptStatus, ShowResults
from veritas.db.unit_of_work import as_system
from veritas.exams.models import Exam, ExamAttempt


class Timed(Protocol):
    @property
    def status(self) -> AttemptStatus: ...

    @property
    def expires_at(self) -> datetime: ...


def now() -> datetime:
    """The clock of the attempt lifecycle (the server's, in UTC)."""
    return datetime.now(UTC)


def grace(minutes: int) -> timedelta:
    return timedelta(minutes=minutes)


def is_open(attempt: Timed, now: datetime, grace: timedelta) -> bool:
    """Whether the attempt still takes answers, drafts and events."""
    return attempt.status is AttemptStatus.in_progress and now <= attempt.expires_at + grace


async def end(
    session: AsyncSession, status: AttemptStatus, *where: ColumnElement[bool],
    **values: Any,
) -> list[uuid.UUID]:
    """End every attempt in progress that matches `where`, setting `status` and `values`;
    returns their ids. Objects of these attempts in the session are updated too."""
    assert status is not AttemptStatus.in_progress
    ended = list((await session.scalars(
        update(ExamAttempt)
        .where(ExamAttempt.status == AttemptStatus.in_progress, *where)
        .values(status=status, **values)
        .returning(ExamAttempt.id),
        execution_options={"synchronize_session": "fetch"},
    )).all())
    for attempt_id in ended:
        await session.execute(text("SELECT pg_notify(:ch, :id)"),
                              {"ch": ATTEMPT_ENDED_CHANNEL, "id": str(attempt_id)})
    await enqueue_analysis(session, *ended)
    return ended


async def abandon_expired(
    session: AsyncSession, now: datetime, grace: timedelta,
    attempt_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Abandon the attempts (or the one attempt) no longer open at `now`: is_open's test."""
    where = [ExamAttempt.expires_at < now - grace]
    if attempt_id is not None:
        where.append(ExamAttempt.id == attempt_id)
    return await end(session, AttemptStatus.abandoned, *where)


def takes_starts(exam: Exam, now: datetime) -> bool:
    """Whether a student may still start the exam: it is published and its window (if it
    has one) has not closed."""
    return exam.is_published and (exam.closes_at is None or now < exam.closes_at)


async def results_visible(
    session: AsyncSession, exam: Exam, attempt: Timed, now: datetime
) -> bool:
    """Whether the attempt's student may see its per-question points, feedback and the
    correct answers now.

    Only of a completed attempt (an abandoned one submitted nothing), and by `show_results`:
    `never`; `after_submit`, at once; `after_close`, once the exam has closed: it takes no
    more starts (unpublished, or past its closing time) and no attempt of it is still in
    progress, so nobody still writing (extra time included) can learn the answers from a
    classmate who finished. Other students' attempts are not the caller's to see, hence the
    one question asked as the system.
    """
    if attempt.status is not AttemptStatus.completed:
        return False
    if exam.show_results is ShowResults.after_submit:
        return True
    if exam.show_results is not ShowResults.after_close or takes_starts(exam, now):
        return False
    async with as_system(session):
        writing = await session.scalar(select(exists().where(
            ExamAttempt.exam_id == exam.id,
            ExamAttempt.status == AttemptStatus.in_progress)))
    return not writing
