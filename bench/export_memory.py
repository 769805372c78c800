"""`python -m bench.export_memory`: the server's memory while it streams grade exports.

    python -m bench.export_memory [--sizes 1000 5000 20000] [--slow] [--keep-db]

Creates `veritas_bench_<random>` on DATABASE_URL's server (default
postgresql://postgres@127.0.0.1:5432/postgres), migrates it, writes one exam per size with
that many attempts (each by its own student) in SQL, serves Veritas with one uvicorn process
(as the least-privilege runtime role) and downloads each exam's grades.csv as an admin, smallest first, while sampling the server
process's resident memory every 5 ms. Constant memory means the peak stays put from one size
to the next; an export held in memory would raise it with every size. `--slow` reads the
download slowly (as a slow network would), so the server has to hold back rather than buffer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import threading
import time
import uuid
from typing import Any

import asyncpg
import httpx
import psutil

from bench.ingest.common import Server, create_database, drop_database, mint_token
from veritas.config import asyncpg_dsn
from veritas.db.migrate import upgrade
from veritas.db.roles import ensure_runtime_login


async def seed(url: str, sizes: list[int]) -> tuple[uuid.UUID, list[tuple[int, uuid.UUID]]]:
    """An admin, and for each size an exam with that many completed attempts."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        admin = await conn.fetchval(
            "INSERT INTO users (email, username, password_hash, role) VALUES"
            " ('admin@bench', 'bench-admin', 'x', 'admin') RETURNING id")
        exams = []
        for n in sizes:
            exam = await conn.fetchval(
                "INSERT INTO exams (creator_id, title, subject, max_score, duration_minutes,"
                " passing_score, is_published) VALUES ($1, $2, 'Mathematics', 10, 60, 5, true)"
                " RETURNING id", admin, f"Export of {n}")
            prefix = f"s{n}-"
            await conn.execute(
                "INSERT INTO users (email, username, password_hash, role, full_name)"
                " SELECT $1 || g || '@bench', $1 || g, 'x', 'student', 'Student ' || g"
                " FROM generate_series(1, $2) g", prefix, n)
            await conn.execute(
                "INSERT INTO student_profiles (user_id, enrollment_id)"
                " SELECT id, 'E-' || username FROM users WHERE username LIKE $1 || '%'", prefix)
            await conn.execute(
                "INSERT INTO exam_attempts (exam_id, student_id, status, max_score, score,"
                " percentage, passed, integrity_score, started_at, expires_at, completed_at)"
                " SELECT $1, id, 'completed', 10, 7, 70, true, 0.9, now() - interval '2 hours',"
                " now() - interval '1 hour', now() - interval '90 minutes'"
                " FROM users WHERE username LIKE $2 || '%'", exam, prefix)
            exams.append((n, exam))
        return admin, exams
    finally:
        await conn.close()


def download(base_url: str, token: str, exam: uuid.UUID, pid: int,
             slow: bool) -> dict[str, Any]:
    """Stream one export while a thread samples the server's RSS; rows, bytes, peak RSS."""
    process = psutil.Process(pid)
    peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    size = lines = 0
    started = time.perf_counter()
    try:
        with httpx.stream("GET", f"{base_url}/api/teacher/exams/{exam}/export/grades.csv",
                          headers={"Authorization": f"Bearer {token}"}, timeout=300) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes(16 * 1024):
                size += len(chunk)
                lines += chunk.count(b"\r\n")
                if slow:
                    time.sleep(0.01)  # about 1.6 MB/s
    finally:
        done.set()
        sampler.join()
    return {"rows": lines - 1, "bytes": size, "peak_rss": peak,
            "seconds": time.perf_counter() - started}


async def main(args: argparse.Namespace) -> None:
    base = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"veritas_bench_{uuid.uuid4().hex[:8]}"
    url = await create_database(base, name)
    try:
        await asyncio.to_thread(upgrade, url)
        admin, exams = await seed(url, sorted(args.sizes))
        secret = secrets.token_urlsafe(36)[:48]
        # As deployed: the server logs in as the runtime role, under row-level security.
        runtime = await asyncio.to_thread(ensure_runtime_login, url)
        env = {**os.environ, "DATABASE_URL": runtime, "MIGRATION_DATABASE_URL": url,
               "JWT_SECRET": secret, "BCRYPT_ROUNDS": "4",
               "EMBEDDED_WORKER": "false", "LOG_LEVEL": "WARNING"}
        server = Server("veritas.app:create_app", env, 1, "/readyz")
        try:
            token = mint_token(secret, admin, "admin")
            # Warm up: imports, statement caches and pools settle before anything is measured.
            await asyncio.to_thread(download, server.base_url, token, exams[0][1],
                                    server.proc.pid, False)
            baseline = psutil.Process(server.proc.pid).memory_info().rss
            print(f"server RSS after a first export: {baseline / 1e6:.1f} MB")
            for n, exam in exams:
                got = await asyncio.to_thread(download, server.base_url, token, exam,
                                              server.proc.pid, args.slow)
                print(f"{n:>7} attempts: {got['rows']:>7} rows, {got['bytes'] / 1e6:6.2f} MB in"
                      f" {got['seconds']:5.1f} s; server peak RSS {got['peak_rss'] / 1e6:6.1f} MB"
                      f" ({(got['peak_rss'] - baseline) / 1e6:+.1f} MB)", flush=True)
        finally:
            server.stop()
    finally:
        if not args.keep_db:
            await drop_database(base, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--slow", action="store_true", help="read the downloads slowly")
    parser.add_argument("--keep-db", action="store_true")
    asyncio.run(main(parser.parse_args()))
