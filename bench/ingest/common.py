"""What every part of the benchmark shares: the database set-up, the event mix, tokens,
a cheap HTTP client and the reconciliation."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import orjson

# --- the event mix ----------------------------------------------------------------------
# The monitoring API's standard event vocabulary, weighted roughly like a browser SDK with a camera module
# sends it: mostly gaze samples, typing cadence and heartbeats; a few measured events, some
# of them over the anomaly thresholds of rules.py.


def _mix(rng: random.Random) -> tuple[str, str, dict[str, Any]]:
    """One (event_type, severity, data) drawn from the mix."""
    r = rng.random()
    if r < 0.30:
        return "eye_movement", "normal", {
            "x": rng.randint(0, 1920), "y": rng.randint(0, 1080),
            "confidence": round(rng.uniform(0.5, 1), 2),
            "gaze_point": rng.choice(["center", "left", "right", "up", "down"])}
    if r < 0.55:
        return "typing", "normal", {
            "question_id": f"q{rng.randint(1, 20)}", "keys": rng.randint(5, 120),
            "chars_added": rng.randint(0, 100), "mean_interval_ms": rng.randint(80, 400),
            "pauses_over_2s": rng.randint(0, 3)}
    if r < 0.73:
        return "heartbeat", "normal", {}
    if r < 0.79:
        return "focus_lost", "warning", {"duration_ms": rng.choice([800, 2500, 6000, 15000])}
    if r < 0.82:
        return "visibility_hidden", "warning", {"duration_ms": rng.randint(500, 20000)}
    if r < 0.85:
        return "copy", "normal", {"chars": rng.randint(1, 80), "question_id": "q3"}
    if r < 0.88:
        return "paste", "warning", {"chars": rng.choice([12, 40, 150, 600]), "question_id": "q3"}
    if r < 0.92:
        return "idle", "normal", {"duration_ms": rng.randint(2000, 60000)}
    if r < 0.95:
        return "gaze_off", "warning", {"duration_ms": rng.randint(500, 9000)}
    if r < 0.97:
        return "face_missing", "warning", {"duration_ms": rng.randint(500, 9000)}
    if r < 0.98:
        return "multiple_faces", "critical", {"count": rng.choice([2, 2, 3])}
    if r < 0.99:
        return "fullscreen_exit", "warning", {}
    return "network_offline", "normal", {"duration_ms": rng.randint(1000, 30000)}


def event_templates(n: int = 4096, seed: int = 3) -> list[tuple[str, str, dict[str, Any]]]:
    """A fixed pool of events every phase draws from, so all phases share one mix."""
    rng = random.Random(seed)
    return [_mix(rng) for _ in range(n)]


def template_json(templates: list[tuple[str, str, dict[str, Any]]]) -> list[bytes]:
    """Each template as the tail of an API event object (after `"event_id":"...",`)."""
    return [orjson.dumps({"event_type": t, "severity": s, "data": d})[1:] for t, s, d in templates]


# --- the database -------------------------------------------------------------------------

async def create_database(base_url: str, name: str) -> str:
    conn = await asyncpg.connect(base_url, database="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_database(base_url, name)


async def drop_database(base_url: str, name: str) -> None:
    conn = await asyncpg.connect(base_url, database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _with_database(url: str, name: str) -> str:
    head, sep, tail = url.partition("?")
    scheme, _, rest = head.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{name}" + (sep + tail if sep else "")


async def seed(url: str, students: int) -> dict[str, Any]:
    """One teacher, one exam and `students` students each with an attempt in progress.

    Written straight in SQL: the benchmark measures ingestion, not registration.
    """
    conn = await asyncpg.connect(url)
    try:
        teacher = uuid.uuid4()
        await conn.execute(
            "INSERT INTO users (id, email, username, password_hash, role) "
            "VALUES ($1, $2, $2, 'x', 'teacher')", teacher, f"t-{teacher.hex[:8]}@bench")
        exam = uuid.uuid4()
        await conn.execute(
            "INSERT INTO exams (id, creator_id, title, subject, max_score, duration_minutes,"
            " passing_score, is_published) VALUES ($1, $2, 'bench', 'bench', 10, 600, 5, true)",
            exam, teacher)
        ids = [uuid.uuid4() for _ in range(students)]
        await conn.copy_records_to_table(
            "users", columns=["id", "email", "username", "password_hash", "role"],
            records=[(i, f"s-{i.hex}@bench", f"s-{i.hex}", "x", "student") for i in ids])
        now = datetime.now(UTC)
        attempts = [uuid.uuid4() for _ in ids]
        await conn.copy_records_to_table(
            "exam_attempts",
            columns=["id", "exam_id", "student_id", "max_score", "started_at", "expires_at"],
            records=[(a, exam, s, 10.0, now, now + timedelta(hours=10))
                     for a, s in zip(attempts, ids, strict=True)])
        return {"exam": exam, "students": ids, "attempts": attempts, "started_at": now}
    finally:
        await conn.close()


def mint_token(secret: str, user_id: uuid.UUID, role: str = "student") -> str:
    """An access token with the claims of veritas.auth.tokens (revocation is a deny-list)."""
    now = int(time.time())
    return jwt.encode({"user_id": str(user_id), "email": f"{user_id.hex}@bench", "role": role,
                       "iat": now, "exp": now + 6 * 3600, "jti": str(uuid.uuid4()),
                       "type": "access"}, secret, algorithm="HS256")


# --- servers -----------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn serving `app` with `workers` processes, as a deployment would; started and
    ready (its `ready` path answers 200) when the constructor returns."""

    def __init__(self, app: str, env: dict[str, str], workers: int, ready: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers), "--log-level", "warning",
             "--no-access-log", "--loop", "uvloop", "--http", "httptools"],
            env=env, cwd=ROOT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{app} exited with {self.proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{ready}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{app} did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- reconciliation ------------------------------------------------------------------------

async def reconcile(url: str, sent: int, acked_ids: list[bytes]) -> dict[str, int]:
    """Compare what the client saw acknowledged with what the table holds.

    lost = acknowledged events missing from the table; duplicated = rows beyond one per
    (attempt, client event id). Events sent but never acknowledged may or may not be stored.
    """
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TEMP TABLE acked (event_id uuid)")
        await conn.copy_records_to_table(
            "acked", records=[(uuid.UUID(bytes=b),) for b in acked_ids])
        stored = await conn.fetchval("SELECT count(*) FROM monitoring_events")
        distinct = await conn.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT exam_attempt_id, event_id"
            " FROM monitoring_events) d")
        lost = await conn.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT event_id FROM acked) a WHERE NOT EXISTS"
            " (SELECT 1 FROM monitoring_events m WHERE m.event_id = a.event_id)")
        acked = len(set(acked_ids))
        return {"sent": sent, "acknowledged": acked, "stored": stored,
                "duplicated": stored - distinct, "lost": lost}
    finally:
        await conn.close()


async def truncate_events(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE monitoring_events")
        await conn.execute("CHECKPOINT")  # each phase starts from the same state
    finally:
        await conn.close()


def percentiles(latencies_s: list[float]) -> dict[str, float]:
    if not latencies_s:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    ordered = sorted(latencies_s)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99)}


def run(coro: Any) -> Any:
    return asyncio.run(coro)
