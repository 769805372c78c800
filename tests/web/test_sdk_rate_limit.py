"""The browser SDK against a real server's per-attempt rate limit: it waits as told, loses nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support import Api, ServerProcess

RATE, BURST = 200, 1000


@pytest.fixture(scope="module")
def limited(server_env: dict[str, str]) -> Iterator[tuple[ServerProcess, Api]]:
    env = server_env | {"INGEST_ATTEMPT_EVENTS_PER_SECOND": str(RATE),
                        "INGEST_ATTEMPT_BURST_EVENTS": str(BURST)}
    with ServerProcess(env) as server, Api(server.base_url) as client:
        client.create_admin_cli(env)
        yield server, client


def test_the_sdk_honours_retry_after_from_the_rate_limit(
    browser: Any, limited: tuple[ServerProcess, Api], db: Any,
) -> None:
    server, api = limited
    teacher, student = api.user("teacher"), api.user()
    attempt = api.start(student, api.exam(teacher))
    context = browser.new_context(base_url=server.base_url)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sent: list[tuple[float, Any]] = []
        page.on("response", lambda r: sent.append((time.monotonic(), r))
                if r.url.endswith("/api/monitor/events/batch") else None)
        page.goto("/#/login")
        # A backlog bigger than the bucket, as a page reopened after a long offline spell has.
        page.evaluate("""async ([attemptId, token, count]) => {
            const { VeritasMonitor } = await import('/sdk/veritas-monitor.js');
            const m = new VeritasMonitor({ attemptId, token, heartbeatMs: 600000,
                                           batchDelayMs: 20, dbName: 'rate-limit-test' });
            window.m = m;
            await m.start({ capture: false });
            for (let i = 0; i < count; i += 1) m.track('typing', { keys: i });
        }""", [attempt["attempt_id"], student["token"], BURST + 300])
        page.wait_for_function("() => m.stats.pending === 0", timeout=30_000)
        statuses = [r.status for _, r in sent]
        assert 429 in statuses and statuses[-1] == 201, statuses
        refused = statuses.index(429)
        wait = int(sent[refused][1].headers["retry-after"])
        assert sent[refused + 1][0] - sent[refused][0] >= wait - 0.1, "Retry-After not honoured"
        assert page.evaluate("m.stats.rejected") == 0 and errors == []
        stored = db.execute("SELECT count(DISTINCT event_id) FROM monitoring_events"
                            " WHERE exam_attempt_id = %s", (attempt["attempt_id"],)).fetchone()[0]
        assert stored == BURST + 300
    finally:
        context.close()
