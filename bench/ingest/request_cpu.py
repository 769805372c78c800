"""CPU per monitoring request inside one server process, without HTTP or a load generator.

Drives the ASGI app directly (lifespan, middleware, routing, validation, rules, the real
group-commit writer against PostgreSQL) with a fixed number of concurrent students, and
prints the process's CPU microseconds per request and per event for single and batch posts,
and PostgreSQL's (its own processes and the benchmark database's backends, when it runs on
this machine). The figures leave out what uvicorn's HTTP parsing adds, but they are steady on
a busy machine (CPU time, not wall time), which makes them the yardstick for request-path and
statement changes. PostgreSQL's figure is clean only on a server of its own (its WAL writer
and checkpointer serve every database):

    .venv/bin/python -m bench.ingest.request_cpu [--requests 4000] [--batch 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson
import uvloop

from bench.ingest.common import (
    create_database,
    drop_database,
    event_templates,
    mint_token,
    run,
    seed,
)
from bench.ingest.cpu import cpu_seconds, parent_of, postgres_pids
from veritas.app import create_app
from veritas.config import Settings
from veritas.db.migrate import upgrade
from veritas.db.roles import ensure_runtime_login


async def _postgres(url: str) -> Callable[[], float]:
    """CPU seconds used so far by the database server's processes serving this database."""
    conn = await asyncpg.connect(url)
    try:
        postmaster = parent_of(await conn.fetchval("SELECT pg_backend_pid()"))
        name = await conn.fetchval("SELECT current_database()")
    finally:
        await conn.close()
    if postmaster is None:  # a server elsewhere: not measurable from here
        return lambda: float("nan")
    return lambda: sum(cpu_seconds(postgres_pids(postmaster, name)).values())


async def _measure(url: str, requests: int, batch: int, concurrency: int) -> dict[str, Any]:
    secret = secrets.token_urlsafe(40)
    people = await seed(url, concurrency)
    postgres_cpu = await _postgres(url)
    # As deployed: the least-privilege runtime role, under row-level security.
    runtime = ensure_runtime_login(url)
    settings = Settings(database_url=runtime, migration_database_url=url, jwt_secret=secret,
                        embedded_worker=False, bcrypt_rounds=4)
    app = create_app(settings)
    templates = event_templates()
    tokens = [mint_token(secret, s).encode() for s in people["students"]]

    async def call(path: str, token: bytes, body: bytes) -> int:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
            "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                        (b"authorization", b"Bearer " + token),
                        (b"content-length", str(len(body)).encode())],
        }
        sent = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    def event(i: int) -> dict[str, Any]:
        kind, severity, data = templates[i % len(templates)]
        return {"event_id": str(uuid.uuid4()), "event_type": kind, "severity": severity,
                "data": data}

    def bodies(k: int, count: int, single: bool) -> list[bytes]:
        attempt = str(people["attempts"][k])
        if single:
            return [orjson.dumps({"attempt_id": attempt, **event(i)}) for i in range(count)]
        return [orjson.dumps({"attempt_id": attempt,
                              "events": [event(i * batch + j) for j in range(batch)]})
                for i in range(count)]

    async def student(k: int, path: str, sends: list[bytes]) -> None:
        for body in sends:
            status = await call(path, tokens[k], body)
            assert status in (200, 201), status

    results: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        for name, single in (("warm-up", False), ("single", True), ("batch", False)):
            per_student = max(1, requests // concurrency)
            path = "/api/monitor/events" if single else "/api/monitor/events/batch"
            # Bodies are made before the clock starts: only the server's work is timed.
            sends = [bodies(k, per_student, single) for k in range(concurrency)]
            cpu, wall, pg = time.process_time(), time.perf_counter(), postgres_cpu()
            await asyncio.gather(*(student(k, path, sends[k]) for k in range(concurrency)))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            pg = postgres_cpu() - pg
            done = per_student * concurrency
            events = done * (1 if single else batch)
            results[name] = {"requests": done, "cpu_us_per_request": round(cpu / done * 1e6, 1),
                             "cpu_us_per_event": round(cpu / events * 1e6, 1),
                             "postgres_us_per_event": round(pg / events * 1e6, 1),
                             "events_per_s": round(events / wall)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"veritas_reqcpu_{secrets.token_hex(4)}"
    url = run(create_database(base, name))
    try:
        upgrade(url)
        uvloop.install()
        results = asyncio.run(_measure(url, args.requests, args.batch, args.concurrency))
    finally:
        run(drop_database(base, name))
    for phase in ("single", "batch"):
        print(phase, results[phase])
    print(orjson.dumps({k: results[k] for k in ("single", "batch")}).decode())


if __name__ == "__main__":
    main()
