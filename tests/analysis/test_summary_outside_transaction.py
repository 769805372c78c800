"""The analysis waits for its summary provider holding no lock and no transaction.

The provider is faked at its HTTP boundary: an OpenAI-compatible server in the test that
stalls its first answer until the test has looked at the database.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import psycopg
import pytest
from tests.support import Api, ServerProcess, drop_database, make_database


class _StalledProvider(BaseHTTPRequestHandler):
    entered = threading.Event()  # a summary request is waiting
    release = threading.Event()  # the test is done looking
    calls = 0

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's handler name
        self.rfile.read(int(self.headers["content-length"]))
        _StalledProvider.calls += 1
        _StalledProvider.entered.set()
        _StalledProvider.release.wait(timeout=60)
        data = json.dumps({"choices": [{"message": {
            "content": "A stalled summary.\n- Keep going"}}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def stalled_provider() -> Iterator[type[_StalledProvider]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StalledProvider)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _StalledProvider.url = f"http://127.0.0.1:{server.server_port}/v1"  # type: ignore[attr-defined]
    try:
        yield _StalledProvider
    finally:
        _StalledProvider.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture()
def provider(stalled_provider: type[_StalledProvider],
             analysing: SimpleNamespace) -> Iterator[type[_StalledProvider]]:
    """The provider, stalling again and with no calls counted, for one test."""
    stalled_provider.entered.clear()
    stalled_provider.release.clear()
    stalled_provider.calls = 0
    try:
        yield stalled_provider
    finally:
        stalled_provider.release.set()  # so a stalled job ends before the next test


@pytest.fixture(scope="module")
def analysing(
    database_url: str, server_env: dict[str, str], stalled_provider: type[_StalledProvider]
) -> Iterator[SimpleNamespace]:
    """A server whose worker asks the stalled provider, on a database of its own."""
    from veritas.db.migrate import upgrade
    from veritas.db.roles import ensure_runtime_login

    url = make_database(database_url, f"veritas_summary_{uuid.uuid4().hex[:8]}")
    try:
        upgrade(url)
        env = server_env | {"DATABASE_URL": ensure_runtime_login(url),
                            "MIGRATION_DATABASE_URL": url, "EMBEDDED_WORKER": "true",
                            "LLM_BASE_URL": stalled_provider.url,  # type: ignore[attr-defined]
                            "LLM_MODEL": "school-model",
                            "LLM_TIMEOUT_SECONDS": "60"}
        with ServerProcess(env) as server, Api(server.base_url) as api, \
                psycopg.connect(url, autocommit=True) as db:
            api.create_admin_cli(env)
            try:
                yield SimpleNamespace(api=api, db=db)
            finally:
                stalled_provider.release.set()  # so a stalled job lets the server stop
    finally:
        stalled_provider.release.set()
        drop_database(database_url, url)


def _submitted(api: Api) -> tuple[dict, str]:
    teacher, student = api.user("teacher"), api.user()
    attempt_id = api.start(student, api.exam(teacher))["attempt_id"]
    assert api.submit(student, attempt_id, {"q1": "4"}).status_code == 200
    return teacher, attempt_id


def _analysis(api: Api, teacher: dict, attempt_id: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = api.get(f"/api/teacher/attempts/{attempt_id}", headers=teacher["headers"]).json()
        if body["behavior_analysis"]:
            return body["behavior_analysis"]
        time.sleep(0.2)
    raise AssertionError("no analysis within the time limit")


def test_waiting_for_the_summary_holds_no_lock_and_no_connection(
    analysing: SimpleNamespace, provider: type[_StalledProvider]
) -> None:
    api, db = analysing.api, analysing.db
    teacher, attempt_id = _submitted(api)
    assert provider.entered.wait(timeout=30), "the worker never asked for a summary"
    time.sleep(0.5)  # a transaction left open around the call would be idle by now
    # The attempt's row can be locked at once: nobody holds it.
    with db.transaction():
        row = db.execute("SELECT id FROM exam_attempts WHERE id = %s FOR UPDATE NOWAIT",
                         (attempt_id,)).fetchone()
        assert row is not None
    held = db.execute(
        "SELECT count(*) FILTER (WHERE l.relation = 'exam_attempts'::regclass),"
        "       count(DISTINCT a.pid) FILTER (WHERE a.state LIKE 'idle in transaction%%')"
        " FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid"
        " WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()").fetchone()
    assert held == (0, 0), "a lock on exam_attempts, or a transaction left open"
    provider.release.set()
    analysis = _analysis(api, teacher, attempt_id)
    assert analysis["llm_summary"] == "A stalled summary."
    assert analysis["llm_model_version"] == "school-model"
    assert provider.calls == 1


def test_an_attempt_changed_while_summarising_is_analysed_again(
    analysing: SimpleNamespace, provider: type[_StalledProvider]
) -> None:
    api, db = analysing.api, analysing.db
    teacher, attempt_id = _submitted(api)
    assert provider.entered.wait(timeout=30), "the worker never asked for a summary"
    # What the analysis read changes under it (a mark is corrected, say).
    db.execute("UPDATE exam_attempts SET score = 10, percentage = 100, passed = true"
               " WHERE id = %s", (attempt_id,))
    provider.release.set()
    analysis = _analysis(api, teacher, attempt_id)
    assert provider.calls == 2  # the first summary was of stale data, so it was asked again
    assert analysis["requires_recap"] is False  # from the corrected mark: passed
