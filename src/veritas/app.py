"""create_app(): routers, middleware, error handlers and the process's background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

import asyncpg
from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veritas import jobs
from veritas.admin.routes import router as admin_router
from veritas.analysis import service as analysis
from veritas.analysis.routes import reviews as review_router
from veritas.analysis.routes import router as analysis_router
from veritas.analytics.routes import student as student_views
from veritas.analytics.routes import teacher as teacher_views
from veritas.auth import throttle
from veritas.auth.revocation import RevocationCache
from veritas.auth.routes import router as auth_router
from veritas.classes.routes import router as classes_router
from veritas.config import Settings, asyncpg_dsn
from veritas.db.engine import create_engine, create_sessionmaker
from veritas.db.roles import POWER_SQL, too_powerful
from veritas.db.unit_of_work import SYSTEM, SYSTEM_SERVER_SETTINGS, unit_of_work
from veritas.errors import VeritasError, error_responses, from_database
from veritas.exams import lifecycle
from veritas.exams.routes import student as student_exams
from veritas.exams.routes import teacher as teacher_exams
from veritas.grading.routes import router as grading_router
from veritas.json_limits import JsonBodyPolicy
from veritas.metrics import collection_timer
from veritas.monitoring.asgi import OPENAPI_PATHS as MONITOR_PATHS
from veritas.monitoring.asgi import MonitorEndpoints
from veritas.monitoring.ingest import Ingestor
from veritas.reports.routes import admin as report_admin
from veritas.reports.routes import teacher as report_views
from veritas.runtime import Runtime
from veritas.web.docs import mount_docs
from veritas.web.routes import mount_pages
from veritas.web.security import is_personal, secured

log = logging.getLogger("veritas")

SWEEP_SECONDS = 30


class BodyLimit:
    """Refuse bodies over the limit with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        seen = 0
        started = exceeded = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # FastAPI's body parser turns our exception into its own 400 ("error parsing
                # the body"); the client is owed a 413 instead, whatever the app answers.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _too_large(send, self.max_bytes)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, self.max_bytes)


class CountRequests:
    """Count responses by status for /metrics, add the security headers to every response
    (web/security.py) and answer a bug with JSON, never a trace.

    Plain ASGI rather than @app.middleware("http"): that wrapper costs ~250 µs a request,
    which the ingestion hot path cannot afford; the headers ride on this layer's send
    wrapper for the same reason (a layer of their own cost ~2 µs more a request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        personal = is_personal(scope["path"])

        async def counting_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = secured(message.get("headers", []), personal)
                runtime = getattr(scope["app"].state, "runtime", None)
                if runtime is not None:
                    runtime.metrics.count_request(scope["method"], message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            await JSONResponse({"detail": "internal error"}, 500)(scope, receive, counting_send)


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready", "unavailable"]
    database: Literal["ok", "unreachable"]
    # Whether token revocations reach this process live (degraded: it asks the database).
    revocation_feed: Literal["ok", "degraded"] | None = None


ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorOut"}


def _errors_are_json(schema: dict[str, Any]) -> None:
    """FastAPI documents an error body in the media type of the route's success (text/plain
    for /metrics, text/event-stream for the alert stream); every error answer is JSON."""
    for item in schema["paths"].values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if any(media.get("schema") == ERROR_SCHEMA for media in content.values()):
                    response["content"] = {"application/json": {"schema": ERROR_SCHEMA}}


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(router: Router, scope: Scope) -> list[str]:
    """Every method some route serves at the request's path: a 405's Allow header. Starlette
    names only the first matching route's, so a path with GET and PATCH routes said GET.
    Each method is put to the routes (the pages' and assets' mounts serve anything)."""
    routes = [route for route in router.routes if not isinstance(route, Mount)]
    return [method for method in HTTP_METHODS
            if any(route.matches({**scope, "method": method})[0] is Match.FULL
                   for route in routes)]


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, max_bytes: int) -> None:
    body = f'{{"detail":"request body over {max_bytes} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _sweep_abandoned(rt: Runtime) -> None:
    """Abandon attempts whose time plus grace ran out, so they stop taking events; forget
    throttle counters that have run out."""
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            async with unit_of_work(rt.sessions, SYSTEM) as session:
                await lifecycle.abandon_expired(
                    session, lifecycle.now(), lifecycle.grace(rt.settings.attempt_grace_minutes))
                await rt.throttle.forget_idle(session, max(
                    rt.settings.login_failure_reset_seconds, rt.settings.register_window_seconds))
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            log.warning("abandon sweep failed: %s", exc)


async def _analysis_gauge(rt: Runtime) -> str:
    """Attempts whose analysis is pending or failed for good. Read from the database, so every
    process reports the same figure (no pid label) wherever the job ran; left out, not an
    error, when the database does not answer in time."""
    try:
        async with asyncio.timeout(2), unit_of_work(rt.sessions, SYSTEM) as session:
            counts = await analysis.unsettled_analyses(session)
    except Exception as exc:  # noqa: BLE001 - the other metrics still matter then
        log.warning("/metrics: analysis counts unavailable: %s", type(exc).__name__)
        return ""
    lines = ["# HELP veritas_attempt_analyses Attempts by analysis status (database-wide).",
             "# TYPE veritas_attempt_analyses gauge"]
    lines += [f'veritas_attempt_analyses{{status="{s}"}} {n}' for s, n in sorted(counts.items())]
    return "\n".join(lines) + "\n"


def _resolve_database_url(settings: Settings) -> str:
    """The runtime role's URL; the embedded server is started, migrated as its owner and
    given its runtime role first."""
    if settings.database_url:
        return settings.database_url
    from veritas.db.embedded import start_migrated

    return start_migrated(settings.data_dir)[0]


async def _warn_if_too_powerful(pool: asyncpg.Pool, settings: Settings) -> None:
    """Say loudly when the runtime role could get around row-level security or the audit
    log's grants: PostgreSQL then no longer checks the application."""
    row = await pool.fetchrow(POWER_SQL)
    assert row is not None  # the current user always has its pg_roles row
    reasons = too_powerful(row["rolsuper"], row["rolbypassrls"], row["owns_tables"])
    if not reasons:
        return
    advice = ("set DATABASE_URL to the runtime role and MIGRATION_DATABASE_URL to the owner"
              if not settings.migration_database_url else
              "DATABASE_URL must name the runtime role, not the owner")
    log.warning("\n%s\nINSECURE: the database role Veritas runs as %s, so row-level security"
                " and the append-only audit log do not bind it.\n%s (README: Database roles)."
                "\n%s", "!" * 78, " and ".join(reasons), advice, "!" * 78)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # procrastinate logs every job's start and end at INFO: a line per analysis.
        logging.getLogger("procrastinate").setLevel(logging.WARNING)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = _resolve_database_url(settings)
        dsn = asyncpg_dsn(url)
        engine = create_engine(settings, url)
        # The ingestion path's attempt lookups: they answer "whose attempt is this?" for
        # any student, so this pool's connections are the system's (see monitoring/ingest.py).
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4, server_settings={
            "timezone": "UTC", **SYSTEM_SERVER_SETTINGS})
        revocations = RevocationCache(dsn, settings.redis_url)
        ingestor = Ingestor(pool, dsn,
                            queue_max_events=settings.ingest_queue_max_events,
                            max_batch_rows=settings.ingest_max_batch_rows,
                            events_per_second=settings.ingest_attempt_events_per_second,
                            burst_events=settings.ingest_attempt_burst_events)
        rt = Runtime(settings=settings, database_url=url, engine=engine,
                     sessions=create_sessionmaker(engine), pool=pool, revocations=revocations,
                     ingestor=ingestor, throttle=throttle.counters(settings))
        app.state.runtime = rt
        await _warn_if_too_powerful(pool, settings)
        await revocations.start()
        await ingestor.start()
        # Everything allocated so far lives as long as the process: keep it out of the
        # collector's way, which otherwise pauses requests for 50-100 ms under load.
        gc.collect()
        gc.freeze()
        # A full collection still walks every connection, cache entry and pool object made
        # since (~50k under the ingestion benchmark): 80-110 ms with every request waiting,
        # several times a minute at the default threshold. The young generations, where
        # nearly all cyclic garbage dies, keep their defaults; the full one runs after 1,000
        # of theirs instead of 10 (minutes apart under load), which bench/README.md measured.
        gc.set_threshold(700, 10, 1000)
        timer = collection_timer(rt.metrics)
        gc.callbacks.append(timer)
        background = [asyncio.create_task(_sweep_abandoned(rt), name="abandon-sweeper")]
        if settings.embedded_worker:
            background.append(asyncio.create_task(
                jobs.run_worker(settings, url, install_signals=False), name="job-worker"))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            gc.callbacks.remove(timer)
            await ingestor.stop()
            await revocations.stop()
            await rt.throttle.close()
            await pool.close()
            await engine.dispose()

    app = FastAPI(
        title="Veritas",
        version="0.1.0",
        description="Exam integrity platform: monitoring, integrity analysis, learning analytics.",
        lifespan=lifespan,
        debug=False,  # never a stack trace in a response, whatever DEBUG says
        # Veritas exports its own /metrics. FastAPI's OpenTelemetry hooks, when on, look the
        # providers up in the environment on every request: ~3% of the ingestion path's CPU.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # mount_docs serves /docs from local assets instead of a CDN
        redoc_url=None,
    )
    # The last added runs first: requests are counted (and every answer gets its security
    # headers), then held to the body limit, then the monitoring posts are answered before
    # FastAPI's routing (see monitoring/asgi.py; it keeps the same JSON limits in its own
    # decoder), then other JSON bodies are checked.
    app.add_middleware(JsonBodyPolicy)
    app.add_middleware(MonitorEndpoints)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(CountRequests)
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = generate_openapi()
            app.openapi_schema["paths"].update(MONITOR_PATHS)
            _errors_are_json(app.openapi_schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point

    @app.exception_handler(VeritasError)
    async def veritas_error(_request: Request, exc: VeritasError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            exc.headers = {**(exc.headers or {}),
                           "Allow": ", ".join(allowed_methods(request.app.router, request.scope))}
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, 422)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(OSError)
    async def database_failure(_request: Request, exc: Exception) -> JSONResponse:
        error = from_database(exc)
        if error is None:
            log.exception("database error")
            return JSONResponse({"detail": "internal error"}, 500)
        if error.status_code == 503:
            log.warning("database unavailable: %s", type(exc).__name__)
        return JSONResponse({"detail": error.detail}, error.status_code, headers=error.headers)

    for router in (auth_router, student_exams, student_views, teacher_exams,
                   teacher_views, classes_router, admin_router, analysis_router, review_router,
                   grading_router, report_views, report_admin):
        app.include_router(router)

    @app.get("/healthz", tags=["ops"], response_model=HealthOut)
    async def healthz() -> HealthOut:
        """The process is alive."""
        return HealthOut(status="ok")

    @app.get("/readyz", tags=["ops"], response_model=ReadyOut, responses={
        503: {"model": ReadyOut, "description": "the database does not answer"}})
    async def readyz(request: Request, response: Response) -> ReadyOut:
        """The database answers."""
        rt: Runtime = request.app.state.runtime
        try:
            async with rt.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 2)
        except Exception:  # noqa: BLE001 - any failure means not ready
            response.status_code = 503
            return ReadyOut(status="unavailable", database="unreachable")
        return ReadyOut(status="ready", database="ok",
                        revocation_feed="ok" if rt.revocations.healthy else "degraded")

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text format"},
                        **error_responses(401, 403, s401="a METRICS_TOKEN bearer token is"
                                                         " required",
                                          s403="metrics are off: METRICS_TOKEN is not set")})
    async def metrics(request: Request) -> Response:
        if not settings.metrics_token:
            return JSONResponse({"detail": "metrics are off: set METRICS_TOKEN and send it as a"
                                           " bearer token"}, 403)
        sent = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(sent, settings.metrics_token.encode()):
            return JSONResponse({"detail": "a valid metrics bearer token is required"}, 401,
                                headers={"WWW-Authenticate": "Bearer"})
        rt: Runtime = request.app.state.runtime
        gauges = {f"ingest_{k}": float(v) for k, v in rt.ingestor.stats.items()}
        gauges["ingest_queued_rows"] = float(rt.ingestor.queued_rows)
        gauges["revocation_feed_healthy"] = float(rt.revocations.healthy)
        text_ = rt.metrics.render(gauges) + await _analysis_gauge(rt)
        return PlainTextResponse(text_, media_type="text/plain; version=0.0.4")

    mount_docs(app)
    mount_pages(app)
    return app
