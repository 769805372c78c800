"""Time the reads that must stay fast, against a real server and in-process."""

from __future__ import annotations

import os
import random
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

import asyncpg
import httpx
import orjson

from bench.ingest.common import Server, mint_token, percentiles
from bench.school.build import ATTEMPT_COLUMNS, EVENT_COLUMNS, School, _templates, event_rows
from veritas.config import Settings, asyncpg_dsn

# The targets, in milliseconds (their table is in bench/school/README.md).
TARGETS_MS = {"student_dashboard_p95": 20, "exam_analytics_p95": 100,
              "teacher_dashboard_p95": 200, "analyze_5000_events": 1000}


async def _timed(client: httpx.AsyncClient, requests: list[tuple[str, str]],
                 warmup: int = 10) -> dict[str, float]:
    """Sequential GETs (latency, not throughput); the first few warm caches and are dropped."""
    latencies = []
    for i, (path, token) in enumerate(requests):
        t = time.perf_counter()
        response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        elapsed = time.perf_counter() - t
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
        if i >= warmup:
            latencies.append(elapsed)
    out = percentiles(latencies)
    return {"p50_ms": out["p50_ms"], "p95_ms": out["p95_ms"], "n": len(latencies)}


async def http_figures(url: str, school: School, scale: float, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    secret = secrets.token_urlsafe(36)[:48]
    tokens: dict[uuid.UUID, str] = {}

    def token(user: uuid.UUID, role: str) -> str:
        if user not in tokens:
            tokens[user] = mint_token(secret, user, role)
        return tokens[user]

    n_student, n_exam, n_teacher = (max(30, int(300 * scale)), max(30, int(200 * scale)),
                                    max(30, int(100 * scale)))
    env = {**os.environ, "DATABASE_URL": url, "JWT_SECRET": secret, "BCRYPT_ROUNDS": "4",
           "EMBEDDED_WORKER": "false"}
    server = Server("veritas.app:create_app", env, 1, "/readyz")
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            student = await _timed(client, [
                ("/api/student/dashboard", token(s, "student"))
                for s in (rng.choice(school.students) for _ in range(n_student + 10))])
            analytics = await _timed(client, [
                (f"/api/teacher/exams/{e}/analytics", token(t, "teacher"))
                for t, e in (rng.choice(school.analytics_grants) for _ in range(n_exam + 10))])
            teacher = await _timed(client, [
                ("/api/teacher/dashboard", token(t, "teacher"))
                for t in (rng.choice(school.teachers) for _ in range(n_teacher + 10))])
    finally:
        server.stop()
    return {"student_dashboard": student, "exam_analytics": analytics,
            "teacher_dashboard": teacher}


async def make_big_attempt(url: str, school: School, events: int = 5000) -> uuid.UUID:
    """A completed two-hour attempt with `events` events of the standard vocabulary."""
    rng = random.Random(11)
    aid, student, exam = uuid.uuid4(), rng.choice(school.students), rng.choice(school.exams)
    started = datetime.now(UTC) - timedelta(hours=3)
    took = 2 * 3600
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        questions = orjson.loads(await conn.fetchval(
            "SELECT questions::text FROM exams WHERE id = $1", exam))
        async with conn.transaction():
            await conn.execute("SELECT veritas_ensure_event_partition($1)", started)
            await conn.copy_records_to_table("exam_attempts", columns=ATTEMPT_COLUMNS, records=[(
                aid, exam, student, "completed", 7.0, 10.0, 70.0, True, None, None, None,
                False, started, started + timedelta(hours=2), started + timedelta(seconds=took),
                took, orjson.dumps({"questions": questions, "drafts": [], "responses": {
                    "q1": "b", "q2": "yes", "q3": "A long essay answer " * 20}}).decode(),
                '{"source": "bench"}')])
            await conn.copy_records_to_table(
                "monitoring_events", columns=EVENT_COLUMNS,
                records=event_rows(aid, student, started, took, events, rng, _templates()))
        await conn.execute("ANALYZE exam_attempts")
    finally:
        await conn.close()
    return aid


async def analysis_figure(url: str, attempt_id: uuid.UUID, runs: int = 3) -> dict[str, float]:
    """analyze_attempt in its own transaction, as the worker runs it; first run and median."""
    from veritas.analysis.service import analyze_attempt
    from veritas.db.engine import create_engine, create_sessionmaker

    settings = Settings(database_url=url, debug=True)
    engine = create_engine(settings, url)
    times = []
    try:
        sessions = create_sessionmaker(engine)
        for _ in range(runs):
            t = time.perf_counter()
            async with sessions() as session, session.begin():
                row = await analyze_attempt(session, attempt_id, settings)
                assert row is not None and row.total_monitoring_events > 0
            times.append(time.perf_counter() - t)
    finally:
        await engine.dispose()
    return {"first_ms": round(times[0] * 1000, 1), "median_ms": round(median(times) * 1000, 1)}


async def recompute_figure(url: str) -> dict[str, float]:
    from veritas.ops import recompute

    t = time.perf_counter()
    students = await recompute(url)
    return {"seconds": round(time.perf_counter() - t, 2), "students": students}


def verdict(value: float, target: float) -> str:
    return f"{'ok  ' if value < target else 'MISS'} (target < {target:g} ms)"


