"""PostgreSQL stops trusting the application: the runtime role, row-level security, the unit of
work that names every transaction's caller, and the append-only, hash-chained audit log."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import func, select, text

from tests.oulad.helpers import run_import
from tests.support import Api, InTransaction, drop_database, make_database
from veritas.audit.chain import Verdict, verify, verify_on
from veritas.auth.models import User
from veritas.config import Settings
from veritas.db.engine import create_engine, create_sessionmaker
from veritas.db.migrate import upgrade
from veritas.db.roles import ensure_runtime_login
from veritas.db.unit_of_work import SYSTEM, Caller, unit_of_work
from veritas.exams.models import ExamAttempt
from veritas.monitoring.models import MonitoringEvent


def _run(coro):
    return asyncio.run(coro)


def _caller(user: dict) -> Caller:
    return Caller(uuid.UUID(user["id"]), user["role"])


def _events(api: Api, student: dict, attempt: dict, n: int = 3) -> None:
    response = api.post("/api/monitor/events/batch", headers=student["headers"], json={
        "attempt_id": attempt["attempt_id"],
        "events": [{"event_type": "heartbeat", "event_id": str(uuid.uuid4())}
                   for _ in range(n)]})
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def school(api: Api) -> dict:
    """Two teachers, each with an exam; three students with attempts and events."""
    t1, t2 = api.user("teacher"), api.user("teacher")
    e1, e2 = api.exam(t1), api.exam(t2)
    s1, s2, s3 = api.user(), api.user(), api.user()
    attempts = {}
    for student, exam in ((s1, e1), (s2, e1), (s2, e2), (s3, e2)):
        attempt = api.start(student, exam)
        _events(api, student, attempt)
        attempts[(student["id"], exam["id"])] = attempt["attempt_id"]
    return {"t1": t1, "t2": t2, "e1": e1, "e2": e2, "s1": s1, "s2": s2, "s3": s3,
            "attempts": attempts}


# --- the runtime role -------------------------------------------------------------------


def test_runtime_role_is_least_privilege(runtime_url: str) -> None:
    with psycopg.connect(runtime_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles"
            " WHERE rolname = current_user").fetchone()
        assert row == (False, False, False, False)
        owned = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " AND pg_has_role(current_user, relowner, 'USAGE')").fetchone()[0]
        assert owned == 0
        for statement in ("UPDATE audit_logs SET action = 'x'", "DELETE FROM audit_logs",
                          "TRUNCATE audit_logs", "CREATE TABLE sneaky (id int)",
                          "REFRESH MATERIALIZED VIEW exam_performance_summary",
                          "ALTER TABLE users DISABLE ROW LEVEL SECURITY"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_tables_of_later_migrations_get_the_runtime_grants(db, runtime_url: str) -> None:
    # What a later migration does, as the owner: default privileges grant the runtime role.
    table = "later_" + uuid.uuid4().hex[:8]
    db.execute(f"CREATE TABLE {table} (id int)")
    try:
        with psycopg.connect(runtime_url, autocommit=True) as conn:
            conn.execute(f"INSERT INTO {table} VALUES (1)")
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 1
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"DROP TABLE {table}")
    finally:
        db.execute(f"DROP TABLE {table}")


def test_server_connections_log_in_as_the_runtime_role(api: Api, db, runtime_url: str) -> None:
    login = psycopg.conninfo.conninfo_to_dict(runtime_url)["user"]
    users = {r[0] for r in db.execute(
        "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND backend_type = 'client backend'").fetchall()}
    assert users == {login}


def test_copy_into_the_parent_is_refused_but_partitions_take_inserts(runtime_url: str) -> None:
    with psycopg.connect(runtime_url) as conn:
        conn.execute("SELECT set_config('veritas.role', 'system', true)")
        name = conn.execute("SELECT veritas_ensure_event_partition('2031-05-17')").fetchone()[0]
        conn.commit()
        assert name == "monitoring_events_2031_05"
        owner = conn.execute("SELECT pg_get_userbyid(relowner) = current_user FROM pg_class"
                             " WHERE relname = %s", (name,)).fetchone()[0]
        assert owner is False
        # Reads go through the parent and its policies, never straight to a partition.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT count(*) FROM {name}")
        conn.rollback()
        with pytest.raises(psycopg.errors.FeatureNotSupported), \
                conn.cursor().copy("COPY monitoring_events (id) FROM STDIN") as copy:
            copy.write_row((uuid.uuid4(),))


LIFESPAN = """
import asyncio
from veritas.app import create_app

app = create_app()

async def main():
    async with app.router.lifespan_context(app):
        pass

asyncio.run(main())
"""


def test_server_warns_loudly_when_its_role_is_too_powerful(
    server_env: dict[str, str], database_url: str,
) -> None:
    # The owner (a superuser here) as DATABASE_URL, and no MIGRATION_DATABASE_URL.
    env = {k: v for k, v in server_env.items() if k != "MIGRATION_DATABASE_URL"}
    env["DATABASE_URL"] = database_url
    loud = subprocess.run([sys.executable, "-c", LIFESPAN], env=env, capture_output=True,
                          text=True, timeout=60)
    assert loud.returncode == 0, loud.stderr
    assert "INSECURE" in loud.stderr and "is a superuser" in loud.stderr, loud.stderr
    assert "MIGRATION_DATABASE_URL" in loud.stderr
    quiet = subprocess.run([sys.executable, "-c", LIFESPAN], env=server_env,
                           capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0, quiet.stderr
    assert "INSECURE" not in quiet.stderr


def test_runtime_role_creation_is_idempotent_and_race_safe(database_url: str) -> None:
    login = "veritas_race_" + uuid.uuid4().hex[:8]

    async def create() -> str:
        return await asyncio.to_thread(ensure_runtime_login, database_url, login)

    async def many() -> list[str]:
        return await asyncio.gather(*(create() for _ in range(6)))

    try:
        urls = _run(many())
        assert len(set(urls)) == 1
        with psycopg.connect(urls[0]) as conn:
            assert conn.execute("SELECT pg_has_role(current_user, 'veritas_runtime', 'MEMBER')"
                                ).fetchone()[0]
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {login}")


# --- one unit of work -------------------------------------------------------------------


def test_identity_never_carries_over_on_a_pool_of_one(runtime_url: str, school: dict) -> None:
    s1, s2 = school["s1"], school["s2"]

    async def scenario() -> None:
        settings = Settings(database_url=runtime_url, debug=True, db_pool_size=1,
                            db_max_overflow=0)
        engine = create_engine(settings, runtime_url)
        sessions = create_sessionmaker(engine)
        pids = set()
        try:
            for student in (s1, s2, s1):
                async with unit_of_work(sessions, _caller(student)) as session:
                    pids.add(await session.scalar(text("SELECT pg_backend_pid()")))
                    ids = (await session.scalars(select(User.id))).all()  # no WHERE
                    assert [str(i) for i in ids] == [student["id"]]
                # Outside a unit of work the same connection names nobody and sees nothing.
                async with engine.connect() as conn:
                    pids.add(await conn.scalar(text("SELECT pg_backend_pid()")))
                    assert await conn.scalar(
                        text("SELECT current_setting('veritas.user_id', true)")) in ("", None)
                    assert await conn.scalar(select(func.count()).select_from(User)) == 0
            # A transaction that fails rolls its identity back with it.
            with pytest.raises(RuntimeError):
                async with unit_of_work(sessions, _caller(s1)):
                    raise RuntimeError("boom")
            async with engine.connect() as conn:
                assert await conn.scalar(select(func.count()).select_from(User)) == 0
            assert len(pids) == 1  # one pooled connection served every transaction
        finally:
            await engine.dispose()

    _run(scenario())


def test_no_code_opens_an_orm_transaction_around_the_unit_of_work() -> None:
    import re
    from pathlib import Path

    import veritas

    root = Path(veritas.__file__).parent
    opened = re.compile(r"\.begin\(\)|\bsessions\(\)|create_sessionmaker\(engine\)\(\)")
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for path in root.rglob("*.py") if path.name != "unit_of_work.py"
        for n, line in enumerate(path.read_text().splitlines(), 1) if opened.search(line)
    ]
    assert offenders == []


# --- row-level security -----------------------------------------------------------------


async def _visible(runtime_url: str, caller: Caller, query) -> list:
    engine = create_engine(Settings(database_url=runtime_url, debug=True), runtime_url)
    try:
        async with unit_of_work(create_sessionmaker(engine), caller) as session:
            return list((await session.execute(query)).all())
    finally:
        await engine.dispose()


def test_a_query_without_where_shows_a_student_only_their_rows(
    runtime_url: str, school: dict,
) -> None:
    for key in ("s1", "s2", "s3"):
        student = school[key]
        caller = _caller(student)
        attempts = _run(_visible(runtime_url, caller, select(ExamAttempt.student_id)))
        assert attempts and {str(r[0]) for r in attempts} == {student["id"]}
        events = _run(_visible(runtime_url, caller, select(MonitoringEvent.student_id)))
        assert events and {str(r[0]) for r in events} == {student["id"]}
        users = _run(_visible(runtime_url, caller, select(User.id)))
        assert [str(r[0]) for r in users] == [student["id"]]
        audit = _run(_visible(runtime_url, caller, text("SELECT DISTINCT user_id FROM audit_logs")))
        assert {str(r[0]) for r in audit} <= {student["id"]}


def test_a_query_without_where_shows_a_teacher_only_permitted_exams(
    api: Api, runtime_url: str, school: dict,
) -> None:
    t1, e1, e2 = school["t1"], school["e1"], school["e2"]
    attempts = _run(_visible(runtime_url, _caller(t1), select(ExamAttempt.exam_id)))
    assert {str(r[0]) for r in attempts} == {e1["id"]}
    events = _run(_visible(runtime_url, _caller(t1), select(MonitoringEvent.exam_attempt_id)))
    mine = {v for (s, e), v in school["attempts"].items() if e == e1["id"]}
    assert {str(r[0]) for r in events} == mine
    students = _run(_visible(runtime_url, _caller(t1),
                             select(User.id).where(User.role == "student")))
    assert {str(r[0]) for r in students} == {school["s1"]["id"], school["s2"]["id"]}
    # A grant on the second exam shows its rows too.
    assert api.grant(school["t2"], e2, t1, can_view=True).status_code in (200, 201)
    attempts = _run(_visible(runtime_url, _caller(t1), select(ExamAttempt.exam_id)))
    assert {str(r[0]) for r in attempts} == {e1["id"], e2["id"]}


def test_anonymous_sees_nothing_and_system_and_admin_see_everything(
    runtime_url: str, school: dict, admin: dict,
) -> None:
    nobody = Caller(None, "anonymous")
    assert _run(_visible(runtime_url, nobody, select(User.id))) == []
    assert _run(_visible(runtime_url, nobody, select(ExamAttempt.id))) == []
    everyone = {str(r[0]) for r in _run(_visible(runtime_url, SYSTEM, select(User.id)))}
    assert {school[k]["id"] for k in ("s1", "s2", "s3", "t1", "t2")} <= everyone
    assert {str(r[0]) for r in _run(_visible(runtime_url, _caller(admin), select(User.id)))
            } == everyone


def test_a_student_cannot_write_another_students_rows(runtime_url: str, school: dict) -> None:
    async def tamper() -> int:
        engine = create_engine(Settings(database_url=runtime_url, debug=True), runtime_url)
        try:
            async with unit_of_work(create_sessionmaker(engine), _caller(school["s1"])) as s:
                result = await s.execute(text("UPDATE exam_attempts SET flagged = true"))
                return result.rowcount
        finally:
            await engine.dispose()

    assert _run(tamper()) == 1  # only their own attempt


# --- the audit log ----------------------------------------------------------------------


def test_audit_log_refuses_update_delete_and_truncate_even_from_the_owner(db) -> None:
    db.execute("INSERT INTO audit_logs (action) VALUES ('owner_probe')")
    for statement in ("UPDATE audit_logs SET action = 'x' WHERE action = 'owner_probe'",
                      "DELETE FROM audit_logs WHERE action = 'owner_probe'",
                      "TRUNCATE audit_logs"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            db.execute(statement)


def _verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "veritas.cli", "audit", "verify"],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def audited_db(database_url: str, server_env: dict[str, str]) -> Iterator[tuple[str, dict]]:
    """A database of its own, migrated, with a few audit records, whose count the tests know."""
    owner = make_database(database_url, "veritas_chain_" + uuid.uuid4().hex[:8])
    try:
        upgrade(owner)
        with psycopg.connect(owner, autocommit=True) as conn:
            for i in range(5):
                conn.execute("INSERT INTO audit_logs (action, details) VALUES (%s, %s)",
                             (f"action_{i}", f'{{"n": {i}}}'))
        env = {**server_env, "DATABASE_URL": ensure_runtime_login(owner),
               "MIGRATION_DATABASE_URL": owner}
        yield owner, env
    finally:
        drop_database(database_url, owner)


def test_audit_verify_passes_on_a_clean_log(audited_db, server_env, api: Api) -> None:
    _, env = audited_db
    out = _verify(env)
    assert out.returncode == 0 and "intact: 5 records" in out.stdout, out.stdout + out.stderr
    # The suite's own log, written by the server through every route, verifies too.
    shared = _verify(server_env)
    assert shared.returncode == 0, shared.stdout + shared.stderr


async def _sealed(tx: InTransaction, n: int) -> list[tuple[int, uuid.UUID]]:
    """(chain position, id) of `n` audit records written in the test's transaction and sealed
    there: the seal waits for the commit, which never comes, unless it is made immediate."""
    async with tx.as_(SYSTEM) as session:
        ids = [await session.scalar(text("INSERT INTO audit_logs (action, details)"
                                         " VALUES (:a, '{}') RETURNING id"), {"a": f"probe_{i}"})
               for i in range(n)]
        await session.execute(text("SET CONSTRAINTS audit_logs_seal IMMEDIATE"))
        rows = (await session.execute(text("SELECT chain_seq, id FROM audit_logs WHERE id ="
                                           " ANY(:ids) ORDER BY chain_seq"), {"ids": ids})).all()
    return [(seq, row_id) for seq, row_id in rows]


async def _tamper(tx: InTransaction, statement: str, **params: object) -> None:
    """What only the owner can do to the log: switch its guard off for one statement."""
    async with tx.as_(SYSTEM) as session:
        await session.execute(text("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only"))
        await session.execute(text(statement), params)
        await session.execute(text("ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only"))


async def _verdict(tx: InTransaction) -> Verdict:
    """The verification `veritas audit verify` runs, on the test's transaction. In a savepoint
    rolled back after it, which closes its cursor: an open one would keep ALTER TABLE out."""
    raw = await tx.connection.get_raw_connection()
    savepoint = await tx.connection.begin_nested()
    try:
        return await verify_on(raw.driver_connection)
    finally:
        await savepoint.rollback()


@pytest.mark.anyio
async def test_audit_verify_reports_an_owner_side_edit_at_its_row(owner_tx: InTransaction) -> None:
    rows = await _sealed(owner_tx, 3)
    assert [seq for seq, _ in rows] == list(range(rows[0][0], rows[0][0] + 3))
    assert (await _verdict(owner_tx)).ok  # the suite's log so far, then these three
    seq, row_id = rows[1]
    await _tamper(owner_tx, "UPDATE audit_logs SET details = '{\"n\": 99}' WHERE id = :i",
                  i=row_id)
    verdict = await _verdict(owner_tx)
    assert not verdict.ok
    assert verdict.text() == (f"audit log BROKEN at record {seq} (id {row_id}):"
                              " its contents differ from their hash")


@pytest.mark.anyio
async def test_audit_verify_reports_a_removed_row_and_a_removed_tail(
    owner_tx: InTransaction,
) -> None:
    rows = await _sealed(owner_tx, 3)
    (first, first_id), _, (last, last_id) = rows
    await _tamper(owner_tx, "DELETE FROM audit_logs WHERE id = :i", i=last_id)
    verdict = await _verdict(owner_tx)
    assert (verdict.broken_at, verdict.reason) == (
        last, f"the chain ends at record {last - 1} but its head says {last}:"
              " later records were removed")
    await _tamper(owner_tx, "DELETE FROM audit_logs WHERE id = :i", i=first_id)
    verdict = await _verdict(owner_tx)
    assert (verdict.broken_at, verdict.reason) == (
        first, f"record {first} is missing (next present: {first + 1})")


def test_audit_rows_are_sealed_in_commit_order_under_concurrency(audited_db) -> None:
    owner, env = audited_db
    before = _run(verify(env["DATABASE_URL"])).rows

    async def write(i: int) -> None:
        import asyncpg

        conn = await asyncpg.connect(env["DATABASE_URL"])
        try:
            async with conn.transaction():
                await conn.execute("SELECT set_config('veritas.role', 'system', true)")
                await conn.execute("INSERT INTO audit_logs (action) VALUES ($1)", f"c{i}")
                await asyncio.sleep(0.01 * (i % 3))
        finally:
            await conn.close()

    async def many() -> None:
        await asyncio.gather(*(write(i) for i in range(20)))

    _run(many())
    out = _verify(env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"intact: {before + 20} records" in out.stdout, out.stdout


def test_the_importer_and_the_audit_chain_work_as_the_runtime_role(database_url: str) -> None:
    # Bulk CLI work (temp tables, COPY, INSERT ... SELECT) runs as the runtime role and the
    # system identity, and its audit record joins the chain.
    owner = make_database(database_url, "veritas_import_rt_" + uuid.uuid4().hex[:8])
    try:
        upgrade(owner)
        summary = run_import(ensure_runtime_login(owner))
        assert summary.changed
        with psycopg.connect(owner) as conn:
            students = conn.execute("SELECT count(*) FROM users WHERE role = 'student'"
                                    ).fetchone()[0]
            assert students > 0
            assert conn.execute("SELECT count(*) FROM audit_logs WHERE action = 'import_oulad'"
                                " AND row_hash IS NOT NULL").fetchone()[0] == 1
        assert _run(verify(ensure_runtime_login(owner))).ok
    finally:
        drop_database(database_url, owner)
