"""Exports run in constant memory: the grades of an exam with 5,000 attempts take no more
memory to export than those of one with 1,000 (the rows stream a page at a time).

Measured with tracemalloc around the export's own pipeline (the service's pages, read as the
route reads them, each in a unit of work, and the CSV writer): every Python allocation of the
export is counted, the driver's included. `pytest -s` prints the figures.
"""

from __future__ import annotations

import tracemalloc

import pytest
from sqlalchemy import text
from tests.support import InTransaction, unique

from veritas.auth.tokens import Claims
from veritas.db.base import Role
from veritas.db.unit_of_work import SYSTEM
from veritas.pagination import PageParams
from veritas.reports import service
from veritas.reports.csv_stream import csv_chunks, rows_of
from veritas.reports.routes import EXPORT_PAGE

pytestmark = pytest.mark.anyio


async def _exam_with_attempts(tx: InTransaction, teacher: Claims, n: int) -> service.ExamExport:
    exam = await tx.exam(teacher)
    prefix = unique("bulk")
    async with tx.as_(SYSTEM) as session:
        await session.execute(text(
            "INSERT INTO users (email, username, password_hash, role, full_name)"
            " SELECT :p || g || '@school.example', :p || g, 'x', 'student', 'Student ' || g"
            " FROM generate_series(1, :n) g"), {"p": prefix, "n": n})
        await session.execute(text(
            "INSERT INTO exam_attempts (exam_id, student_id, status, max_score, score,"
            " percentage, passed, integrity_score, started_at, expires_at, completed_at)"
            " SELECT :e, u.id, 'completed', 10, 7, 70, true, 0.9, now() - interval '1 hour',"
            " now(), now() - interval '30 minutes' FROM users u WHERE u.username LIKE :p || '%'"),
            {"e": exam.id, "p": prefix})
    return service.ExamExport(exam.id, second_reviewer=False)


async def _export(tx: InTransaction, teacher: Claims,
                  export: service.ExamExport) -> tuple[int, int, int]:
    """Rows and bytes of the grades export, and the peak of traced memory while it ran."""

    async def fetch(cursor: str | None) -> dict:
        async with tx.as_(teacher) as session:
            return await service.grades_page(session, export,
                                             PageParams(limit=EXPORT_PAGE, cursor=cursor))

    size = lines = 0
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        async for chunk in csv_chunks(service.GRADE_COLUMNS, rows_of(fetch)):
            size += len(chunk)
            lines += chunk.count(b"\r\n")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return lines - 1, size, peak


async def test_exporting_5000_attempts_takes_no_more_memory_than_1000(
    tx: InTransaction,
) -> None:
    teacher = await tx.user(Role.teacher)
    small = await _exam_with_attempts(tx, teacher, 1_000)
    large = await _exam_with_attempts(tx, teacher, 5_000)
    await _export(tx, teacher, small)  # warm the statement caches first
    rows_small, bytes_small, peak_small = await _export(tx, teacher, small)
    rows_large, bytes_large, peak_large = await _export(tx, teacher, large)
    print(f"\ngrades.csv, pages of {EXPORT_PAGE}:"
          f" {rows_small} rows, {bytes_small / 1e6:.2f} MB written, peak {peak_small / 1e6:.2f} MB;"
          f" {rows_large} rows, {bytes_large / 1e6:.2f} MB written, peak {peak_large / 1e6:.2f} MB")
    assert (rows_small, rows_large) == (1_000, 5_000)
    assert bytes_large > 4.5 * bytes_small
    # Five times the rows, about the same peak: one page of rows and one chunk of text.
    assert peak_large < 1.3 * peak_small
