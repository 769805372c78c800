"""An attempt's lifecycle: every way an attempt ends announces it and queues its analysis
exactly once, and an attempt past its time plus grace is refused the same way everywhere."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import psycopg
import pytest
from sqlalchemy import text
from tests.support import Api, InTransaction, ServerProcess, drop_database, make_database

from veritas.config import Settings
from veritas.core.channels import ATTEMPT_ENDED_CHANNEL
from veritas.db.base import AttemptStatus, Role
from veritas.db.engine import create_engine, create_sessionmaker
from veritas.db.unit_of_work import SYSTEM, unit_of_work
from veritas.exams import lifecycle
from veritas.exams import service as exams
from veritas.exams.models import ExamAttempt

GRACE_MINUTES = 10  # the default ATTEMPT_GRACE_MINUTES


@pytest.fixture(scope="module")
def quiet(database_url: str, server_env: dict[str, str]) -> Iterator[SimpleNamespace]:
    """A server on a database of its own with no worker, so queued analyses stay queued."""
    from veritas.db.migrate import upgrade
    from veritas.db.roles import ensure_runtime_login

    url = make_database(database_url, f"veritas_lifecycle_{uuid.uuid4().hex[:8]}")
    try:
        upgrade(url)
        runtime = ensure_runtime_login(url)
        env = server_env | {"DATABASE_URL": runtime, "MIGRATION_DATABASE_URL": url,
                            "EMBEDDED_WORKER": "false"}
        with ServerProcess(env) as server, Api(server.base_url) as api, \
                psycopg.connect(url, autocommit=True) as db, \
                psycopg.connect(url, autocommit=True) as listener:
            listener.execute(f"LISTEN {ATTEMPT_ENDED_CHANNEL}")
            api.create_admin_cli(env)
            yield SimpleNamespace(api=api, db=db, listener=listener, owner=url, runtime=runtime)
    finally:
        drop_database(database_url, url)


def _announced(quiet: SimpleNamespace) -> Counter[str]:
    """How many times each attempt was announced as ended since the last call.

    PostgreSQL delivers notifications in the order their transactions committed, so once a
    marker sent now arrives, every announcement committed before it has arrived too.
    """
    marker = str(uuid.uuid4())  # an attempt id nobody has, for the server that listens too
    quiet.db.execute("SELECT pg_notify(%s, %s)", (ATTEMPT_ENDED_CHANNEL, marker))
    announced: Counter[str] = Counter()
    for notification in quiet.listener.notifies(timeout=30):
        if notification.payload == marker:
            return announced
        announced[notification.payload] += 1
    raise AssertionError("the marker never arrived")


def _queued(db: psycopg.Connection, attempt_id: str) -> int:
    return db.execute("SELECT count(*) FROM procrastinate_jobs WHERE task_name ="
                      " 'veritas.analyze_attempt' AND args->>'attempt_id' = %s",
                      (attempt_id,)).fetchone()[0]


def _status(db: psycopg.Connection, attempt_id: str) -> str:
    return db.execute("SELECT status FROM exam_attempts WHERE id = %s",
                      (attempt_id,)).fetchone()[0]


def _expire(db: psycopg.Connection, attempt_id: str, minutes_ago: float) -> None:
    """Make the attempt's time have run out `minutes_ago` (its start moves along)."""
    db.execute("UPDATE exam_attempts SET started_at = now() - interval '1 hour'"
               " - make_interval(secs => %s), expires_at = now() - make_interval(secs => %s)"
               " WHERE id = %s", (minutes_ago * 60, minutes_ago * 60, attempt_id))


def _request(api: Api, student: dict, attempt_id: str, kind: str) -> int:
    """The status of one kind of request that acts on an open attempt."""
    if kind == "draft":
        return api.post(f"/api/student/attempts/{attempt_id}/drafts", headers=student["headers"],
                        json={"responses": {"q1": "4"}}).status_code
    if kind == "event":
        return api.post("/api/monitor/events", headers=student["headers"], json={
            "attempt_id": attempt_id, "event_type": "heartbeat"}).status_code
    if kind == "batch":
        return api.post("/api/monitor/events/batch", headers=student["headers"], json={
            "attempt_id": attempt_id, "events": [{"event_type": "heartbeat"}]}).status_code
    return api.submit(student, attempt_id, {"q1": "4"}).status_code


def _requests(api: Api, student: dict, attempt_id: str) -> dict[str, int]:
    return {kind: _request(api, student, attempt_id, kind)
            for kind in ("draft", "event", "batch", "submit")}


def _sweep(runtime_url: str) -> list[uuid.UUID]:
    """One pass of the server's sweeper, as it runs it."""
    async def run() -> list[uuid.UUID]:
        engine = create_engine(Settings(jwt_secret="s" * 32), runtime_url)
        try:
            async with unit_of_work(create_sessionmaker(engine), SYSTEM) as session:
                return await lifecycle.abandon_expired(
                    session, lifecycle.now(), lifecycle.grace(GRACE_MINUTES))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_is_open_is_status_and_time_plus_grace() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    grace = timedelta(minutes=10)

    def attempt(status: AttemptStatus, minutes_ago: float) -> SimpleNamespace:
        return SimpleNamespace(status=status, expires_at=now - timedelta(minutes=minutes_ago))

    assert lifecycle.is_open(attempt(AttemptStatus.in_progress, -5), now, grace)
    assert lifecycle.is_open(attempt(AttemptStatus.in_progress, 10), now, grace)  # the edge
    assert not lifecycle.is_open(attempt(AttemptStatus.in_progress, 10.01), now, grace)
    assert not lifecycle.is_open(attempt(AttemptStatus.completed, -5), now, grace)
    assert not lifecycle.is_open(attempt(AttemptStatus.abandoned, -5), now, grace)


def test_within_grace_the_attempt_takes_everything(quiet: SimpleNamespace) -> None:
    api = quiet.api
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher)
    attempt_id = api.start(student, exam)["attempt_id"]
    _expire(quiet.db, attempt_id, GRACE_MINUTES - 2)  # time ran out, grace has not
    assert _requests(api, student, attempt_id) == {
        "draft": 201, "event": 201, "batch": 201, "submit": 200}
    assert _status(quiet.db, attempt_id) == "completed"


@pytest.mark.parametrize("first", ["draft", "event", "batch", "submit", "start"])
def test_past_grace_every_request_refuses_and_ends_it_once(
    quiet: SimpleNamespace, first: str
) -> None:
    api, db = quiet.api, quiet.db
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher)
    attempt_id = api.start(student, exam)["attempt_id"]
    _announced(quiet)
    _expire(db, attempt_id, GRACE_MINUTES + 2)
    if first == "start":  # starting again ends it and opens a new attempt
        fresh = api.post(f"/api/student/exams/{exam['id']}/start", headers=student["headers"])
        assert fresh.status_code == 201 and fresh.json()["attempt_id"] != attempt_id
    else:
        assert _request(api, student, attempt_id, first) == 409
    assert _status(db, attempt_id) == "abandoned"
    # Whatever comes next is refused the same way and ends nothing again.
    assert _requests(api, student, attempt_id) == {
        "draft": 409, "event": 409, "batch": 409, "submit": 409}
    assert _sweep(quiet.runtime) == []
    assert _announced(quiet) == {attempt_id: 1}
    assert _queued(db, attempt_id) == 1


def test_submit_ends_the_attempt_once(quiet: SimpleNamespace) -> None:
    api, db = quiet.api, quiet.db
    teacher, student = api.user("teacher"), api.user()
    attempt_id = api.start(student, api.exam(teacher))["attempt_id"]
    _announced(quiet)
    assert api.submit(student, attempt_id, {"q1": "4"}).status_code == 200
    assert api.submit(student, attempt_id, {"q1": "4"}).status_code == 409
    _expire(db, attempt_id, GRACE_MINUTES + 2)
    assert _sweep(quiet.runtime) == []
    assert _status(db, attempt_id) == "completed"
    assert _announced(quiet) == {attempt_id: 1}
    assert _queued(db, attempt_id) == 1


def test_the_sweeper_ends_expired_attempts_once(quiet: SimpleNamespace) -> None:
    api, db = quiet.api, quiet.db
    teacher, student, other = api.user("teacher"), api.user(), api.user()
    exam = api.exam(teacher)
    expired = api.start(student, exam)["attempt_id"]
    running = api.start(other, exam)["attempt_id"]
    _announced(quiet)
    _expire(db, expired, GRACE_MINUTES + 2)
    _expire(db, running, GRACE_MINUTES - 2)
    assert [str(i) for i in _sweep(quiet.runtime)] == [expired]
    assert _sweep(quiet.runtime) == []
    assert (_status(db, expired), _status(db, running)) == ("abandoned", "in_progress")
    assert _requests(api, student, expired) == {
        "draft": 409, "event": 409, "batch": 409, "submit": 409}
    assert _announced(quiet) == {expired: 1}
    assert (_queued(db, expired), _queued(db, running)) == (1, 0)


# --- in-process, on a transaction rolled back after each test ------------------------------


async def _attempts(tx: InTransaction, n: int) -> list[uuid.UUID]:
    teacher = await tx.user(Role.teacher)
    exam = await tx.exam(teacher)
    ids = []
    for _ in range(n):
        student = await tx.user()
        async with tx.as_(student) as session:
            attempt, _ = await exams.start(session, student, exam.id, GRACE_MINUTES, tx.ctx)
        ids.append(attempt.id)
    return ids


async def _expire_in(tx: InTransaction, attempt_id: uuid.UUID, minutes_ago: float) -> None:
    async with tx.as_(SYSTEM) as session:
        await session.execute(text(
            "UPDATE exam_attempts SET started_at = now() - interval '1 hour'"
            " - make_interval(secs => :s), expires_at = now() - make_interval(secs => :s)"
            " WHERE id = :a"), {"s": minutes_ago * 60, "a": attempt_id})


async def _sweep_in(tx: InTransaction) -> list[uuid.UUID]:
    async with tx.as_(SYSTEM) as session:
        return await lifecycle.abandon_expired(session, lifecycle.now(),
                                               lifecycle.grace(GRACE_MINUTES))


async def _state(tx: InTransaction, attempt_id: uuid.UUID) -> tuple[str, str | None, int]:
    """The attempt's status, its analysis status, and how many analyses are queued for it."""
    async with tx.as_(SYSTEM) as session:
        row = (await session.execute(text(
            "SELECT status::text, analysis_status::text, (SELECT count(*) FROM procrastinate_jobs"
            " WHERE task_name = 'veritas.analyze_attempt' AND args->>'attempt_id' = :i)"
            " FROM exam_attempts WHERE id = :a"), {"a": attempt_id, "i": str(attempt_id)})).one()
    return row[0], row[1], row[2]


@pytest.mark.anyio
async def test_abandoning_ends_only_attempts_past_grace_and_queues_each_once(
    tx: InTransaction,
) -> None:
    expired, running, edge = await _attempts(tx, 3)
    await _expire_in(tx, expired, GRACE_MINUTES + 2)
    await _expire_in(tx, running, GRACE_MINUTES - 2)
    await _expire_in(tx, edge, GRACE_MINUTES - 0.01)
    assert await _sweep_in(tx) == [expired]
    assert await _sweep_in(tx) == []  # a second sweep finds nothing more to end
    assert await _state(tx, expired) == ("abandoned", "pending", 1)
    assert await _state(tx, running) == ("in_progress", None, 0)
    assert await _state(tx, edge) == ("in_progress", None, 0)


@pytest.mark.anyio
async def test_an_end_that_rolls_back_queues_nothing(tx: InTransaction) -> None:
    (attempt_id,) = await _attempts(tx, 1)
    with pytest.raises(RuntimeError):
        async with tx.as_(SYSTEM) as session:
            assert await lifecycle.end(session, AttemptStatus.abandoned,
                                       ExamAttempt.id == attempt_id) == [attempt_id]
            raise RuntimeError("the request fails after the end")
    assert await _state(tx, attempt_id) == ("in_progress", None, 0)
    async with tx.as_(SYSTEM) as session:
        assert await lifecycle.end(session, AttemptStatus.completed,
                                   ExamAttempt.id == attempt_id) == [attempt_id]
        # An attempt already ended is not ended again, whatever the new status.
        assert await lifecycle.end(session, AttemptStatus.abandoned,
                                   ExamAttempt.id == attempt_id) == []
    assert await _state(tx, attempt_id) == ("completed", "pending", 1)
