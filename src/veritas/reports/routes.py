"""Exports (CSV, streamed) and the printable incident report."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from veritas.audit import service as audit
from veritas.auth.tokens import Claims
from veritas.deps import (
    Admin,
    ContextDep,
    ReviewableAttempt,
    RuntimeDep,
    SessionDep,
    Staff,
    unit_of_work,
)
from veritas.errors import error_responses
from veritas.pagination import PageParams
from veritas.reports import service
from veritas.reports.csv_stream import csv_chunks, rows_of
from veritas.reports.incident import CSP
from veritas.runtime import Runtime

teacher = APIRouter(prefix="/api/teacher", tags=["teacher"],
                    responses=error_responses(401, 403, 422, 503))
admin = APIRouter(prefix="/api/admin", tags=["admin"],
                  responses=error_responses(401, 403, 422, 503))

# Rows fetched per query: memory holds one such page whatever the export's length, and each
# page is its own short transaction, so a slow download holds no connection between pages.
EXPORT_PAGE = 500


def _csv_doc(what: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                  "description": f"{what}: CSV with a header row, UTF-8, streamed as a download"
                                 " (`Content-Disposition: attachment`)"}}


def _csv(rt: Runtime, user: Claims, filename: str, header: Sequence[str],
         page_of: Callable[[AsyncSession, PageParams], Awaitable[dict[str, Any]]],
         ) -> StreamingResponse:
    """Stream an export: each page read in a unit of work of its own, as the caller (so
    row-level security applies to every page), written out before the next is read."""

    async def fetch(cursor: str | None) -> dict[str, Any]:
        async with unit_of_work(rt, user) as session:
            return await page_of(session, PageParams(limit=EXPORT_PAGE, cursor=cursor))

    return StreamingResponse(
        csv_chunks(header, rows_of(fetch)), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


NO_EXAM = error_responses(404, s404="no such exam")


@teacher.get("/exams/{exam_id}/export/grades.csv", response_class=StreamingResponse,
             responses={**_csv_doc("one row per attempt"), **NO_EXAM})
async def export_grades(
    exam_id: uuid.UUID, rt: RuntimeDep, session: SessionDep, user: Staff, ctx: ContextDep
) -> StreamingResponse:
    """The exam's attempts and their results, one row each: the student, their enrolment id,
    the attempt's status, score, percentage, whether it passed, its integrity score (and
    whether it is provisional or final) and its review outcome (needs `can_view_analytics`). Audited as a read of student data."""
    export = await service.open_grades(session, user, exam_id, ctx)
    return _csv(rt, user, f"grades-{exam_id}.csv", service.GRADE_COLUMNS,
                lambda s, paging: service.grades_page(s, export, paging))


@teacher.get("/exams/{exam_id}/export/alerts.csv", response_class=StreamingResponse,
             responses={**_csv_doc("one row per alert"), **NO_EXAM})
async def export_alerts(
    exam_id: uuid.UUID, rt: RuntimeDep, session: SessionDep, user: Staff, ctx: ContextDep
) -> StreamingResponse:
    """Every alert of the exam, whatever its status or age, in the alert list's order, with
    its triage (needs `can_view_analytics`). Audited as a read of student data."""
    export = await service.open_alerts(session, user, exam_id, ctx)
    return _csv(rt, user, f"alerts-{exam_id}.csv", service.ALERT_COLUMNS,
                lambda s, paging: service.alerts_page(s, user, export, paging))


@admin.get("/audit-logs/export.csv", response_class=StreamingResponse,
           responses=_csv_doc("the audit trail, newest first"))
async def export_audit_logs(
    rt: RuntimeDep, session: SessionDep, user: Admin, ctx: ContextDep,
    user_id: uuid.UUID | None = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    resource_type: Annotated[str | None, Query(max_length=100)] = None,
    resource_id: Annotated[str | None, Query(max_length=100)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StreamingResponse:
    """The audit trail with the list's filters, newest first, each record with its user's
    name. Audited as a read of the audit log."""
    filters = audit.TrailFilters(user_id=user_id, action=action, resource_type=resource_type,
                                 resource_id=resource_id, since=since, until=until)
    await audit.record_export(session, ctx, user.user_id, filters)
    return _csv(rt, user, "audit-log.csv", service.AUDIT_COLUMNS,
                lambda s, paging: service.audit_page(s, filters, paging))


@teacher.get("/attempts/{attempt_id}/report", response_class=HTMLResponse,
             responses={200: {"content": {"text/html": {"schema": {"type": "string"}}},
                              "description": "a printable HTML page (print it, or save it as"
                                             " PDF from the browser)"},
                        **error_responses(404, s404="no such attempt")})
async def incident_report(
    access: ReviewableAttempt, session: SessionDep, user: Staff, ctx: ContextDep,
    tz: Annotated[str | None, Query(max_length=64, description="the reader's IANA time zone"
                                                               " (default UTC)")] = None,
) -> HTMLResponse:
    """The attempt's incident report: the student and the attempt, its alerts, the timeline
    of its anomalies, the analysis with its explanation (each signal's value, z-score, weight
    and contribution; band, confidence, monitoring gaps; dropout factors) and the review
    decisions. Needs `can_view_analytics`; audited as a read of student data."""
    html = await service.incident_report(session, user, access.attempt, access.exam, ctx, tz)
    return HTMLResponse(html, headers={"Content-Security-Policy": CSP})
