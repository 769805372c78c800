"""Ingestion durability: a 2xx means stored, whatever dies and whenever.

Clients here behave like the browser SDK: every event has its own id, and whatever was not
acknowledged is sent again until it is. Then the table must hold every event exactly once.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from tests.support import METRICS_TOKEN, Api, ServerProcess, bearer, embedded_root

from veritas.db.roles import ensure_runtime_login


class Students:
    """A few students posting batches and single events in threads, retrying until acked."""

    def __init__(self, base_url: str, students: list[dict[str, Any]],
                 attempts: list[dict[str, Any]], batch: int = 10) -> None:
        self.base_url = base_url
        self.pairs = list(zip(students, attempts, strict=True))
        self.batch = batch
        self.sent: set[str] = set()
        self.acked: set[str] = set()
        self.unacked: list[tuple[int, list[str]]] = []  # (student index, event ids)
        self.statuses: Counter[int] = Counter()  # 0 = no answer (connection refused/reset)
        self.without_retry_after = 0
        self.generate = True  # False: only resend what is unacknowledged
        self.stop = False
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(len(self.pairs))]

    def __enter__(self) -> Students:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop = True
        for thread in self.threads:
            thread.join(timeout=30)

    def _post(self, client: httpx.Client, index: int, ids: list[str]) -> int:
        student, attempt = self.pairs[index]
        events = [{"event_id": e, "event_type": "typing", "data": {"keys": n}}
                  for n, e in enumerate(ids)]
        if len(ids) == 1:
            path, body = "/api/monitor/events", {"attempt_id": attempt["attempt_id"], **events[0]}
        else:
            path, body = "/api/monitor/events/batch", {"attempt_id": attempt["attempt_id"],
                                                       "events": events}
        try:
            response = client.post(self.base_url + path, json=body, headers=student["headers"],
                                   timeout=10)
        except httpx.HTTPError:
            return 0
        if response.status_code == 503 and "retry-after" not in response.headers:
            self.without_retry_after += 1
        return response.status_code

    def _run(self, index: int) -> None:
        with httpx.Client() as client:
            turn = 0
            while not self.stop:
                with self.lock:
                    retry = next((u for u in self.unacked if u[0] == index), None)
                    if retry is not None:
                        self.unacked.remove(retry)
                    if retry is None and not self.generate:
                        ids = None
                    else:
                        turn += 1
                        # Every third request is a single event: both forms share the writer.
                        ids = retry[1] if retry else [
                            str(uuid.uuid4()) for _ in range(1 if turn % 3 == 0 else self.batch)]
                        # Counted as sent before the request leaves, so that drain() also
                        # waits for the answers still in flight.
                        self.sent.update(ids)
                if ids is None:
                    time.sleep(0.02)
                    continue
                status = self._post(client, index, ids)
                with self.lock:
                    self.statuses[status] += 1
                    if 200 <= status < 300:
                        self.acked.update(ids)
                    else:
                        self.unacked.append((index, ids))
                if not 200 <= status < 300:
                    time.sleep(0.1)

    def wait(self, check, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if check():
                    return True
            time.sleep(0.02)
        return False

    def drain(self, seconds: float = 30) -> None:
        """Stop making new events and resend until everything sent is acknowledged."""
        self.generate = False
        assert self.wait(lambda: self.acked == self.sent and not self.unacked, seconds), (
            f"{len(self.sent - self.acked)} events never acknowledged; {self.statuses}")


def _stored(url: str, attempts: list[dict[str, Any]]) -> tuple[set[str], int]:
    """The distinct event ids stored for these attempts, and how many rows hold them."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT event_id::text FROM monitoring_events WHERE exam_attempt_id = ANY(%s)",
            ([uuid.UUID(a["attempt_id"]) for a in attempts],)).fetchall()
    return {r[0] for r in rows}, len(rows)


def _reconcile(url: str, load: Students, attempts: list[dict[str, Any]]) -> None:
    stored, rows = _stored(url, attempts)
    assert load.acked - stored == set(), "lost: acknowledged but not stored"
    assert rows == len(stored), "duplicated: one event stored twice"
    assert stored == load.sent, "every event sent was eventually stored, nothing else"


def _class(api: Api, students: int) -> tuple[list[dict], list[dict]]:
    teacher = api.user("teacher")
    exam = api.exam(teacher)
    people = [api.user() for _ in range(students)]
    return people, [api.start(p, exam) for p in people]


def test_server_killed_mid_load_loses_and_duplicates_nothing(
    api: Api, server_env: dict[str, str], database_url: str,
) -> None:
    students, attempts = _class(api, 4)
    first = ServerProcess(server_env)  # one process: SIGKILL takes the whole server down
    first.start()
    try:
        with Students(first.base_url, students, attempts) as load:
            assert load.wait(lambda: len(load.acked) >= 300, 20), load.statuses
            first.stop(kill=True)  # SIGKILL, with requests in flight
            assert load.wait(lambda: load.statuses[0] > 0, 10)
            second = ServerProcess(server_env)
            second.start()
            try:
                load.base_url = second.base_url
                assert load.wait(lambda: len(load.acked) >= 600, 20), load.statuses
                load.drain()
            finally:
                load.stop = True
                second.stop()
    finally:
        first.stop(kill=True)
    assert set(load.statuses) <= {0, 200, 201}, load.statuses
    _reconcile(database_url, load, attempts)


# --- the database stopped mid-load: a private embedded PostgreSQL --------------------------

class PrivatePostgres:
    """An embedded PostgreSQL of this test's own, so stopping it disturbs nobody else."""

    def __init__(self, root: Path) -> None:
        from veritas.db.embedded import start_embedded

        self.url = start_embedded(root, stop_on_exit=True)
        import pgserver

        self.server = pgserver.get_server(root / "pg")

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", *args], pgdata=self.server.pgdata, user=self.server.system_user,
               timeout=30)

    def stop(self) -> None:
        self._pg_ctl("-m", "immediate", "stop")  # like a crash: no shutdown checkpoint

    def start(self) -> None:
        with self.server._lock:  # pgserver's own start, with the same socket directory
            self.server.ensure_postgres_running()

    def close(self) -> None:
        if self.server.get_postmaster_info().is_running():
            self._pg_ctl("-m", "fast", "stop")


@pytest.fixture()
def private_postgres():
    with embedded_root() as root:
        pg = PrivatePostgres(root)
        try:
            from veritas.db.migrate import upgrade

            upgrade(pg.url)
            yield pg
        finally:
            pg.close()


def test_database_stopped_mid_load_then_back(
    private_postgres: PrivatePostgres, server_env: dict[str, str],
) -> None:
    # The server logs in as the runtime role of this private server, as everywhere else.
    env = server_env | {"DATABASE_URL": ensure_runtime_login(private_postgres.url),
                        "MIGRATION_DATABASE_URL": private_postgres.url}
    with ServerProcess(env) as server, Api(server.base_url) as api:
        api.create_admin_cli(env)
        students, attempts = _class(api, 3)
        with Students(server.base_url, students, attempts) as load:
            assert load.wait(lambda: len(load.acked) >= 200, 20), load.statuses
            private_postgres.stop()
            # Down: every answer is a 503 with Retry-After, quickly, and nothing is acked.
            assert load.wait(lambda: load.statuses[503] >= 10, 15), load.statuses
            acked_while_down = len(load.acked)
            time.sleep(1)
            private_postgres.start()
            # Back: without a restart, new events are acknowledged again.
            assert load.wait(lambda: len(load.acked) >= acked_while_down + 200, 20), (
                load.statuses)
            load.drain()
        assert set(load.statuses) <= {200, 201, 503}, load.statuses  # never a 500
        assert load.without_retry_after == 0
        _reconcile(private_postgres.url, load, attempts)
        assert server.proc is not None and server.proc.poll() is None  # never restarted


def _gauge(api: Api, name: str) -> float:
    text = api.get("/metrics", headers=bearer(METRICS_TOKEN)).text
    match = re.search(rf"^veritas_{name}\{{[^}}]*\}} (\S+)$", text, re.M)
    assert match, name
    return float(match.group(1))


def test_queue_bound_holds_under_a_flood(
    api: Api, server_env: dict[str, str], database_url: str,
) -> None:
    bound = 60
    students, attempts = _class(api, 3)
    env = server_env | {"INGEST_QUEUE_MAX_EVENTS": str(bound)}
    with ServerProcess(env) as server, Api(server.base_url) as probe:
        # Six clients per student, each request 40 events: far more than the bound in flight.
        flood = Students(server.base_url, students * 6, attempts * 6, batch=40)
        with flood:
            peak = 0.0
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                peak = max(peak, _gauge(probe, "ingest_queued_rows"))
                time.sleep(0.01)
            flood.drain()
        assert flood.statuses[503] > 0, "the flood never filled the queue"
        assert set(flood.statuses) <= {200, 201, 503}, flood.statuses
        assert flood.without_retry_after == 0
        assert peak <= bound
        assert _gauge(probe, "ingest_rejected_full") > 0
        _reconcile(database_url, flood, attempts)
