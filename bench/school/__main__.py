"""`python -m bench.school`: build a school-sized deployment, measure, print the figures.

    python -m bench.school [--students 10000 --exams 500 --attempts 200000 --events 5000000]
                           [--quick] [--keep]

--quick builds 1/20 of each size. The database is created on DATABASE_URL's server (default
postgresql://postgres@127.0.0.1:5432/postgres) and dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import asyncpg

from bench.ingest.common import create_database, drop_database
from bench.school.build import Sizes, build
from bench.school.measure import (
    TARGETS_MS,
    analysis_figure,
    http_figures,
    make_big_attempt,
    recompute_figure,
    verdict,
)
from veritas.config import asyncpg_dsn
from veritas.db.migrate import upgrade
from veritas.db.tools import refresh_views


def log(message: str) -> None:
    print(message, flush=True)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    divisor = 20 if args.quick else 1
    sizes = Sizes(args.students // divisor, args.exams // divisor, args.attempts // divisor,
                  args.events // divisor)
    base = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"veritas_school_{int(time.time())}"
    url = await create_database(base, name)
    log(f"database {name}: {sizes.students} students, {sizes.teachers} teachers, "
        f"{sizes.exams} exams, {sizes.attempts} attempts, {sizes.events} events")
    figures: dict[str, Any] = {"sizes": vars(sizes) | {"teachers": sizes.teachers}}
    try:
        t = time.perf_counter()
        # Alembic runs its own event loop through a sync driver; keep it off this loop.
        await asyncio.to_thread(upgrade, url)
        log(f"  migrate            {time.perf_counter() - t:7.1f} s")
        school = await build(url, sizes)
        for key, seconds in school.timings.items():
            log(f"  load {key[:-2]:<13} {seconds:7.1f} s")
        t = time.perf_counter()
        await refresh_views(url)
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
        log(f"  views + ANALYZE    {time.perf_counter() - t:7.1f} s")
        figures["load_s"] = {k[:-2]: round(v, 1) for k, v in school.timings.items()}

        # The same number of requests at every size: --quick only shrinks the school.
        http = await http_figures(url, school, 1.0)
        figures.update(http)
        log(f"student dashboard    p50 {http['student_dashboard']['p50_ms']:7.1f} ms  p95 "
            f"{http['student_dashboard']['p95_ms']:7.1f} ms  "
            + verdict(http['student_dashboard']['p95_ms'], TARGETS_MS['student_dashboard_p95']))
        log(f"exam analytics       p50 {http['exam_analytics']['p50_ms']:7.1f} ms  p95 "
            f"{http['exam_analytics']['p95_ms']:7.1f} ms  "
            + verdict(http['exam_analytics']['p95_ms'], TARGETS_MS['exam_analytics_p95']))
        log(f"teacher dashboard    p50 {http['teacher_dashboard']['p50_ms']:7.1f} ms  p95 "
            f"{http['teacher_dashboard']['p95_ms']:7.1f} ms  "
            + verdict(http['teacher_dashboard']['p95_ms'], TARGETS_MS['teacher_dashboard_p95'])
            + " (flagged-students list)")

        attempt = await make_big_attempt(url, school)
        analysis = await analysis_figure(url, attempt)
        figures["analyze_5000_events"] = analysis
        log(f"analyze_attempt, 5,000 events: first {analysis['first_ms']:.0f} ms, median "
            f"{analysis['median_ms']:.0f} ms  "
            + verdict(analysis["median_ms"], TARGETS_MS["analyze_5000_events"]))
        recompute = await recompute_figure(url)
        figures["recompute"] = recompute
        log(f"veritas recompute: {recompute['seconds']:.1f} s for {recompute['students']}"
            " students")
        figures["targets_ms"] = TARGETS_MS
        figures["database"] = name
    finally:
        if args.keep:
            log(f"kept database {name}: {url}")
        else:
            await drop_database(base, name)
    return figures


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.school", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=10_000)
    parser.add_argument("--exams", type=int, default=500)
    parser.add_argument("--attempts", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--quick", action="store_true", help="1/20 of each size")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    return parser.parse_args()


if __name__ == "__main__":
    figures = asyncio.run(main(parse()))
    print(json.dumps(figures, default=str, separators=(",", ":")))
