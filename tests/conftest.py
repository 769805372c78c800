"""A real, migrated PostgreSQL and a real Veritas server over HTTP for the whole suite.

The database is a fresh one on the server named by TEST_DATABASE_URL (or DATABASE_URL), or an
embedded pgserver when neither is set. Tests share one server process and keep apart by
creating their own users and exams. Tests of the services run in-process instead (`tx`), on
the same database in a transaction rolled back at the end of each test.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
import pytest

from tests.support import (
    METRICS_TOKEN,
    Api,
    InTransaction,
    ServerProcess,
    drop_database,
    make_database,
)
from veritas.config import Settings
from veritas.db.engine import create_engine

pytest_plugins: list[str] = []


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    base = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    tmp = None
    if not base:
        from veritas.db.embedded import start_embedded

        tmp = tempfile.mkdtemp(prefix="veritas-test-")
        base = start_embedded(Path(tmp))
    url = make_database(base, f"veritas_test_{uuid.uuid4().hex[:10]}")
    from veritas.db.migrate import upgrade

    upgrade(url)
    yield url
    drop_database(base, url)


@pytest.fixture(scope="session")
def runtime_url(database_url: str) -> str:
    """The same database as the least-privilege runtime role the server logs in as."""
    from veritas.db.roles import ensure_runtime_login

    return ensure_runtime_login(database_url)


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture(scope="session")
def server_env(database_url: str, runtime_url: str, jwt_secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env.update(
        # The server and the CLI log in as the runtime role; tests inspect the database
        # through `db`, as the owner.
        DATABASE_URL=runtime_url,
        MIGRATION_DATABASE_URL=database_url,
        JWT_SECRET=jwt_secret,
        BCRYPT_ROUNDS="4",
        TRUSTED_PROXIES='["127.0.0.1"]',
        # Every test client sends from 127.0.0.1 unless it names an X-Forwarded-For address.
        LOGIN_IP_FREE_FAILURES="1000",
        REGISTER_MAX_PER_IP="1000000",
        LOG_LEVEL="WARNING",
        METRICS_TOKEN=METRICS_TOKEN,
        # The load and fuzz tests push single attempts far past any exam page's rate; the
        # per-attempt limit has its own server in tests/monitoring/test_ingest_limits.py.
        INGEST_ATTEMPT_EVENTS_PER_SECOND="1000000",
    )
    return env


@pytest.fixture(scope="session")
def server(server_env: dict[str, str]) -> Iterator[ServerProcess]:
    with ServerProcess(server_env) as proc:
        yield proc


@pytest.fixture(scope="session")
def api(server: ServerProcess, server_env: dict[str, str]) -> Iterator[Api]:
    with Api(server.base_url) as client:
        # An admin made with the real `veritas create-admin` command registers staff.
        client.create_admin_cli(server_env)
        yield client


@pytest.fixture(scope="session")
def admin(api: Api) -> dict:
    assert api.admin is not None
    return api.admin


@pytest.fixture()
def db(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


# --- in-process tests of the services ---------------------------------------------------


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """`pytest.mark.anyio` tests run on asyncio, as the server does."""
    return "asyncio"


@asynccontextmanager
async def _in_transaction(url: str) -> AsyncIterator[InTransaction]:
    settings = Settings(database_url=url, debug=True, bcrypt_rounds=4)
    engine = create_engine(settings, url)
    try:
        async with engine.connect() as connection:
            outer = await connection.begin()
            try:
                yield InTransaction(connection, settings)
            finally:
                await outer.rollback()
    finally:
        await engine.dispose()


@pytest.fixture()
async def tx(anyio_backend: str, runtime_url: str) -> AsyncIterator[InTransaction]:
    """The services on one connection as the runtime role the server logs in as (row-level
    security applies), in a transaction rolled back when the test ends."""
    async with _in_transaction(runtime_url) as in_transaction:
        yield in_transaction


@pytest.fixture()
async def owner_tx(anyio_backend: str, database_url: str) -> AsyncIterator[InTransaction]:
    """The same, as the database's owner: for what only the owner may do, such as tampering
    with the audit log to show that its verification notices."""
    async with _in_transaction(database_url) as in_transaction:
        yield in_transaction
