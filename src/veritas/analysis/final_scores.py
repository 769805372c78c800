"""Final integrity scores: an exam's attempts rescored as one batch against their population.

An attempt's integrity score compares its signals with the exam's. Analysed one by one as
attempts end, an attempt is compared with whichever attempts happen to be analysed before it,
so under a backlog (2,000 submits in 30 s) most are scored against the fixed reference scales
and two students who did the same thing get different scores. So a score computed while the
exam's population is still growing is *provisional*, and once the population settles the
exam's attempts are rescored as one batch, all against the same population (every completed
attempt): the result depends on the population alone, not on the order of submits and
analyses or on the load. Those scores are *final*.

When a batch is queued (`core.queue.enqueue_final_scores`, one waiting per exam at most):
- `after_analysis`: an analysis has finished and the exam is settled (no attempt in
  progress, no analysis pending) with provisional scores: its last open attempt has ended;
- `queue_swept` (the worker's settle sweep, every minute), for exams with provisional scores
  and no analysis pending: once no attempt has ended for FINAL_SCORE_QUIET_MINUTES (an
  attempt left open in a forgotten tab would otherwise keep its exam waiting), or once the
  exam's window has closed (`closes_at`: nobody can start it any more).
The batch does nothing while an analysis of the exam is pending (its end checks again) or when
no score is provisional, so a repeated or concurrent batch changes nothing.

An attempt that ends after a batch (a late one: a make-up sitting, extra time) gets a
provisional score, and the next batch rescores the whole exam with it in the population. So
the final state is a function of all the exam's attempts, whenever each came; the price is
that a final score may move when a late attempt joins (by little: one attempt more in a
robust median), and every alert that moves with it is audited. Freezing the first population
instead would let a first finisher alone (nobody else in progress at that moment) set the
population every later attempt is scored against.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from veritas.analysis import alerts, integrity, population
from veritas.analysis import service as analysis
from veritas.analysis.models import IntegrityPopulation
from veritas.audit import service as audit
from veritas.core.queue import enqueue_analysis, enqueue_final_scores
from veritas.db.base import AttemptStatus, DropoutRisk, ScoreStatus
from veritas.db.unit_of_work import SYSTEM, unit_of_work
from veritas.exams.models import Exam
from veritas.exams.settings import exam_settings, problems

log = logging.getLogger(__name__)

SETTLED, QUIET, CLOSED = "settled", "quiet", "closed"

_FREE_TEXT_PATH = "$[*] ? ({}).id".format(
    " || ".join(f'@.type == "{kind}"' for kind in analysis.FREE_TEXT))

# Every ended attempt of the exam with a Veritas analysis, read once: the stored signals
# (peer_similarity aside, they depend on the attempt alone), its answers and what the last
# score said. An institution's own analysis (`external:`) is its own and left alone.
_POPULATION = text(f"""
SELECT a.id, a.student_id, a.status, a.dropout_label,
       a.submission_data->'responses' AS responses,
       a.submission_data->'drafts'-> -1 ->'responses' AS drafted,
       jsonb_path_query_array(a.submission_data->'questions', '{_FREE_TEXT_PATH}') AS free_text,
       b.integrity_score, b.score_status, b.requires_instructor_attention, b.analysis_version,
       b.details->'signals' AS signals, b.details->'integrity'->'band' AS band,
       b.details->'integrity'->'flags' AS flags, b.details->'integrity'->'gaps' AS gaps
FROM exam_attempts a JOIN behavior_analysis b ON b.exam_attempt_id = a.id
WHERE a.exam_id = :exam AND a.status <> 'in_progress'
  AND (b.analysis_version IS NULL OR b.analysis_version NOT LIKE 'external:%')
  AND jsonb_typeof(b.details->'signals') = 'object'
ORDER BY a.id
""")

_STATE = text("""
SELECT EXISTS (SELECT 1 FROM exam_attempts
               WHERE exam_id = :exam AND integrity_score_status = 'provisional') AS provisional,
       EXISTS (SELECT 1 FROM exam_attempts
               WHERE exam_id = :exam AND analysis_status = 'pending') AS pending,
       EXISTS (SELECT 1 FROM exam_attempts
               WHERE exam_id = :exam AND status = 'in_progress') AS open
""")

_STORE_ANALYSIS = text("""
UPDATE behavior_analysis SET integrity_score = :score, score_status = :status,
    requires_instructor_attention = :attention, analysis_version = :version,
    details = details || jsonb_build_object('integrity', CAST(:integrity AS jsonb),
                                            'signals', CAST(:signals AS jsonb)),
    originality_indicators = originality_indicators
        || jsonb_build_object('peer_similarity', CAST(:peer AS jsonb)),
    updated_at = now()
WHERE exam_attempt_id = :attempt
""")

_STORE_ATTEMPT = text("""
UPDATE exam_attempts SET integrity_score = :score, integrity_score_status = :status,
    flagged = :attention
WHERE id = :attempt
""")

# From the few provisional attempts (a partial index holds exactly them) to their exams. An
# abandoned attempt ended when its time ran out: it has no completed_at.
_SWEEP = text("""
SELECT a.exam_id, CASE WHEN e.closes_at <= :now THEN 'closed' ELSE 'quiet' END AS reason
FROM exam_attempts a JOIN exams e ON e.id = a.exam_id
WHERE a.integrity_score_status = 'provisional'
GROUP BY a.exam_id, e.closes_at
HAVING (e.closes_at <= :now OR max(coalesce(a.completed_at, a.expires_at)) < :cutoff)
   AND NOT EXISTS (SELECT 1 FROM exam_attempts p
                   WHERE p.exam_id = a.exam_id AND p.analysis_status = 'pending')
""")


@dataclass(frozen=True)
class Outcome:
    """What a batch did: how many attempts it scored, changed, and what became of alerts."""

    version: int
    population: int
    scored: int
    changed: int
    alerts: dict[str, int]
    requeued: int


# --- when ---------------------------------------------------------------------------------


async def after_analysis(session: AsyncSession, attempt_id: uuid.UUID) -> bool:
    """After an attempt's analysis ended (stored or failed for good): queue the exam's batch
    if the exam is settled and has provisional scores. Run in a transaction of its own,
    after the analysis committed, so the last analysis to commit sees every other's."""
    exam_id = await session.scalar(text("SELECT exam_id FROM exam_attempts WHERE id = :a"),
                                   {"a": attempt_id})
    if exam_id is None:
        return False
    state = (await session.execute(_STATE, {"exam": exam_id})).one()
    if not state.provisional or state.pending or state.open:
        return False
    return bool(await enqueue_final_scores(session, exam_id, SETTLED))


async def queue_swept(
    session: AsyncSession, now: datetime, quiet: timedelta
) -> dict[uuid.UUID, str]:
    """Queue the batch of every exam with provisional scores and no analysis pending that has
    closed, or where no attempt has ended for `quiet`; returns those exams and why."""
    rows = (await session.execute(_SWEEP, {"now": now, "cutoff": now - quiet})).all()
    for exam_id, reason in rows:
        await enqueue_final_scores(session, exam_id, reason)
    return {exam_id: reason for exam_id, reason in rows}


# --- what ---------------------------------------------------------------------------------


async def finalize(
    sessions: async_sessionmaker[AsyncSession], exam_id: uuid.UUID, reason: str
) -> Outcome | None:
    """Rescore every ended attempt of the exam against its whole population, in one
    transaction under the exam's lock; None when there is nothing to do yet."""
    async with unit_of_work(sessions, SYSTEM) as session:
        await population.lock_exam(session, exam_id, shared=False)
        exam = await session.get(Exam, exam_id)
        if exam is None:
            return None
        state = (await session.execute(_STATE, {"exam": exam_id})).one()
        if not state.provisional or state.pending:
            return None
        try:
            policy = exam_settings(exam.metadata_).policy
        except ValidationError as exc:
            raise analysis.AnalysisImpossible(
                f"exam {exam.id} has invalid settings: {problems(exc)}") from None
        rows = list((await session.execute(_POPULATION, {"exam": exam_id})).all())
        return await _rescore(session, exam, rows, policy, reason)


def _answers(row: Any) -> dict[str, Any]:
    """The attempt's final responses, or its last draft's when it never submitted (as the
    analysis reads them)."""
    return row.responses or row.drafted or {}


def _free_text(responses: dict[str, Any], ids: list[str]) -> dict[str, str]:
    return {q: t for q, t in responses.items() if isinstance(t, str) and q in ids}


async def _rescore(session: AsyncSession, exam: Exam, rows: list[Any],
                   policy: integrity.Policy, reason: str) -> Outcome:
    members = [r for r in rows if r.status == AttemptStatus.completed.value]
    pool = {r.id: _answers(r) for r in members}
    finals = {r.id: _free_text(_answers(r), r.free_text or []) for r in rows}
    similar = integrity.peer_similarities(finals, pool)
    scored_signals = {
        r.id: {name: r.signals.get(name) for name in integrity.SCORED_SIGNALS}
        | {"peer_similarity": similar[r.id]} for r in rows}
    baseline = integrity.exam_baseline([scored_signals[r.id] for r in members])
    scored = exam.enable_integrity_analysis
    version = f"{analysis.ANALYSIS_VERSION}+{policy.version}"

    updates, wanted, requeue, students = [], [], [], set()
    for r in rows:
        result = integrity.score_against(
            r.signals | scored_signals[r.id] | {"gaps": r.gaps or []}, baseline, policy)
        score = result.score if scored else None
        status = ScoreStatus.final if scored else None
        attention = (scored and result.band == "high") or (
            r.dropout_label == DropoutRisk.high_risk.value)
        signals = r.signals | {"peer_similarity": similar[r.id]}
        owner = alerts.Owner(r.id, exam.id, r.student_id)
        alert = alerts.integrity_alert(owner, result if scored else None, status)
        if alert is not None:
            wanted.append(alert)
        if (score, getattr(status, "value", None), attention, signals, version) != (
                r.integrity_score, r.score_status, r.requires_instructor_attention,
                r.signals, r.analysis_version):
            updates.append({
                "attempt": r.id, "score": score, "status": getattr(status, "value", None),
                "attention": attention, "version": version,
                "integrity": _json(result.as_dict() if scored else None),
                "signals": _json(signals), "peer": _json(similar[r.id])})
            students.add(r.student_id)
        # The summary was written from the old band and flags: have it written again (that
        # analysis scores the attempt against the population stored below: the same score).
        if scored and (result.band, result.flags) != (r.band, r.flags):
            requeue.append(r.id)

    if updates:
        await session.execute(_STORE_ANALYSIS, updates)
        await session.execute(_STORE_ATTEMPT, updates)
    changes = await alerts.reconcile(session, [r.id for r in rows], wanted,
                                     [alerts.LOW_INTEGRITY], final=True, reason=reason)
    batch = await _store_population(session, exam.id, reason, [r.id for r in members],
                                    scored_signals)
    for student_id in sorted(students):  # one order in every batch: no deadlock between two
        await analysis.refresh_student(session, student_id)
    requeued = await enqueue_analysis(session, *requeue)
    outcome = Outcome(version=batch, population=len(members), scored=len(rows),
                      changed=len(updates), alerts=dict(Counter(changes)), requeued=requeued)
    await audit.record(session, None, None, "finalize_integrity_scores", "exam", exam.id,
                       {"reason": reason, "batch": batch, "population": len(members),
                        "scored": len(rows), "changed": len(updates), "alerts": outcome.alerts})
    log.info("final integrity scores of exam %s (%s): %s", exam.id, reason, outcome)
    return outcome


async def _store_population(session: AsyncSession, exam_id: uuid.UUID, reason: str,
                            members: list[uuid.UUID],
                            signals: dict[uuid.UUID, dict[str, Any]]) -> int:
    """Store the population this batch scored against; returns the batch's number."""
    values = {"exam_id": exam_id, "version": 1, "reason": reason,
              "members": [str(m) for m in members],
              "signals": {str(k): v for k, v in signals.items()}}
    stmt = pg_insert(IntegrityPopulation).values(**values)
    upsert = stmt.on_conflict_do_update(
        index_elements=["exam_id"],
        set_={"version": IntegrityPopulation.version + 1, "reason": stmt.excluded.reason,
              "members": stmt.excluded.members, "signals": stmt.excluded.signals,
              "settled_at": text("now()")},
    ).returning(IntegrityPopulation.version)
    batch = await session.scalar(upsert)
    assert batch is not None  # an upsert returns its row
    return batch


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
