"""Test support: databases, a server subprocess, an HTTP client with small factories, and the
same factories in-process on a transaction that is rolled back."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from veritas.auth import service as auth_service
from veritas.auth.schemas import RegisterIn
from veritas.auth.tokens import Claims
from veritas.config import Settings
from veritas.core.context import RequestContext
from veritas.db.base import Role
from veritas.db.unit_of_work import SYSTEM, Principal, unit_of_work
from veritas.exams import service as exams_service
from veritas.exams.models import Exam
from veritas.exams.schemas import ExamCreate

PASSWORD = "Tr0ub4dor&3-horse"
# The suite's server answers /metrics to this bearer token only.
METRICS_TOKEN = "metrics-token-of-the-test-suite"


def _admin_url(url: str) -> str:
    """The same server, connected to its maintenance database."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = "postgres"
    return psycopg.conninfo.make_conninfo(**info)


def make_database(base_url: str, name: str) -> str:
    with psycopg.connect(_admin_url(base_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(base_url)
    info["dbname"] = name
    return "postgresql://" + _to_url(info)


def _to_url(info: dict[str, Any]) -> str:
    user = info.get("user", "postgres")
    password = info.get("password") or ""
    host = info.get("host", "")
    port = info.get("port")
    if host.startswith("/"):
        return f"{user}:{password}@/{info['dbname']}?host={host}"
    return f"{user}:{password}@{host}{':' + str(port) if port else ''}/{info['dbname']}"


def drop_database(base_url: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(_admin_url(base_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@contextlib.contextmanager
def embedded_root() -> Iterator[Path]:
    """A directory for an embedded PostgreSQL of a test's own, removed afterwards.

    Not under pytest's tmp_path: the server runs as another system user, whom pgserver lets
    into the directory's parents, and every pytest process that starts meanwhile (another
    suite on the same machine) closes pytest's root to other users again."""
    root = Path(tempfile.mkdtemp(prefix="veritas-embedded-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`uvicorn veritas.app:create_app` in its own process, on a free port."""

    def __init__(self, env: dict[str, str], workers: int = 1,
                 log_path: Path | None = None, uvicorn_log_level: str = "warning") -> None:
        self.env = env
        self.log_path = log_path  # the server's output goes there when given
        self.uvicorn_log_level = uvicorn_log_level  # "info" logs every request line
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab") if self.log_path else None
        with log or contextlib.nullcontext():  # the child keeps its own copy of the file
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "veritas.app:create_app", "--factory",
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                 str(self.workers), "--log-level", self.uvicorn_log_level,
                 # Veritas reads X-Forwarded-For itself, from TRUSTED_PROXIES only.
                 "--no-proxy-headers"],
                env=self.env, stderr=log, stdout=log,  # uvicorn's access log is stdout
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.base_url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(timeout=30)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class Api(httpx.Client):
    """An HTTP client with factories that go through the public API only."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url=base_url, timeout=30)
        self.admin: dict[str, Any] | None = None

    # --- identities --------------------------------------------------------------------
    def create_admin_cli(self, env: dict[str, str]) -> dict[str, Any]:
        username = unique("admin")
        email = f"{username}@school.example"
        out = subprocess.run(
            [sys.executable, "-m", "veritas.cli", "create-admin", "--email", email,
             "--username", username, "--password", PASSWORD],
            env=env, capture_output=True, text=True, timeout=60, check=True,
        )
        assert "admin created" in out.stdout
        self.admin = self.login(email)
        return self.admin

    def login(self, login: str, password: str = PASSWORD) -> dict[str, Any]:
        response = self.post("/api/auth/login", json={"email": login, "password": password})
        assert response.status_code == 200, response.text
        tokens = response.json()
        me = self.get("/api/auth/me", headers=bearer(tokens["access_token"])).json()
        return {**me, "token": tokens["access_token"], "refresh": tokens["refresh_token"],
                "headers": bearer(tokens["access_token"])}

    def user(self, role: str = "student", **extra: Any) -> dict[str, Any]:
        """Register (students themselves; staff through the admin) and log in."""
        username = unique(role)
        body = {"email": f"{username}@school.example", "username": username,
                "password": PASSWORD, "role": role, **extra}
        headers = self.admin["headers"] if role != "student" and self.admin else {}
        response = self.post("/api/auth/register", json=body, headers=headers)
        assert response.status_code == 201, response.text
        return self.login(body["email"])

    # --- exams and attempts --------------------------------------------------------------
    def exam(self, teacher: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        body = {
            "title": unique("Algebra quiz "), "subject": "Mathematics", "topic": "Algebra",
            "max_score": 10, "duration_minutes": 30, "passing_score": 6, "is_published": True,
            "questions": QUESTIONS, **overrides,
        }
        response = self.post("/api/teacher/exams", json=body, headers=teacher["headers"])
        assert response.status_code == 201, response.text
        return response.json()

    def start(self, student: dict[str, Any], exam: dict[str, Any]) -> dict[str, Any]:
        response = self.post(f"/api/student/exams/{exam['id']}/start", headers=student["headers"])
        assert response.status_code in (200, 201), response.text
        return response.json()

    def submit(self, student: dict[str, Any], attempt_id: str, responses: dict | None = None):
        return self.post(f"/api/student/exams/{attempt_id}/submit",
                         json={"responses": responses or {}}, headers=student["headers"])

    def grant(self, owner: dict, exam: dict, teacher: dict, **rights: bool) -> httpx.Response:
        body = {"teacher_id": teacher["id"], "can_view": True, "can_edit": False,
                "can_view_analytics": True, **rights}
        return self.post(f"/api/teacher/exams/{exam['id']}/permissions", json=body,
                         headers=owner["headers"])


    # --- classes ---------------------------------------------------------------------------
    def klass(self, teacher: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        body = {"name": unique("Class 9B "), "subject": "Mathematics", "term": "2026-27",
                **overrides}
        response = self.post("/api/teacher/classes", json=body, headers=teacher["headers"])
        assert response.status_code == 201, response.text
        return response.json()

    def enrol(self, teacher: dict[str, Any], klass: dict[str, Any],
              *students: dict[str, Any]) -> httpx.Response:
        return self.post(f"/api/teacher/classes/{klass['id']}/students",
                         json={"student_ids": [s["id"] for s in students]},
                         headers=teacher["headers"])

    def roster(self, teacher: dict[str, Any], klass: dict[str, Any], csv_text: str | bytes,
               content_type: str = "text/csv") -> httpx.Response:
        return self.post(f"/api/teacher/classes/{klass['id']}/roster", content=csv_text,
                         headers=teacher["headers"] | {"Content-Type": content_type})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}




# --- in-process: services on a transaction the test's end rolls back -----------------------

QUESTIONS = [
    {"id": "q1", "type": "single_choice", "prompt": "2+2?", "points": 4,
     "options": ["3", "4", "5"], "correct": "4"},
    {"id": "q2", "type": "multiple_choice", "prompt": "Primes?", "points": 3,
     "options": ["2", "3", "4"], "correct": ["2", "3"]},
    {"id": "q3", "type": "short_text", "prompt": "Capital of France?", "points": 3,
     "correct": ["Paris"]},
]


class InTransaction:
    """One connection to the suite's database inside a transaction that is rolled back when
    the test ends, so nothing a test writes is seen by any other.

    `as_(caller)` opens the unit of work a request, job or command opens, as that caller and
    under row-level security; here it is a savepoint of the outer transaction. A block that
    raises rolls back to its savepoint, as a failed request rolls back: what it leaves behind
    is what the next block sees.
    """

    def __init__(self, connection: AsyncConnection, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.sessions = async_sessionmaker(connection, expire_on_commit=False, autoflush=False,
                                           join_transaction_mode="create_savepoint")
        self.ctx = RequestContext(ip="192.0.2.10", user_agent="in-process test")

    def as_(self, caller: Principal) -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self.sessions, caller)

    async def scalar(self, query: str, **params: Any) -> Any:
        """One value, read as the system identity (which row-level security lets see all)."""
        async with self.as_(SYSTEM) as session:
            return await session.scalar(text(query), params)

    async def rows(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        """Every row, read as the system identity."""
        async with self.as_(SYSTEM) as session:
            return [tuple(row) for row in await session.execute(text(query), params)]

    async def user(self, role: Role = Role.student) -> Claims:
        """A new account (through the registration service) as its access token's claims."""
        name = unique(role.value)
        body = RegisterIn(email=f"{name}@school.example", username=name, password=PASSWORD,
                          role=role)
        async with self.as_(SYSTEM) as session:
            user = await auth_service.create_user(session, self.settings, body)
        now = int(time.time())
        return Claims(user_id=user.id, email=user.email, role=role, jti=uuid.uuid4(),
                      type="access", iat=now, exp=now + 3600)

    async def exam(self, teacher: Claims, **overrides: Any) -> Exam:
        """A published exam of three questions (10 points, 6 to pass) by `teacher`."""
        fields = {"title": unique("Algebra quiz "), "subject": "Mathematics",
                  "topic": "Algebra", "max_score": 10, "duration_minutes": 30,
                  "passing_score": 6, "is_published": True, "questions": QUESTIONS}
        body = ExamCreate.model_validate(fields | overrides)
        async with self.as_(teacher) as session:
            return await exams_service.create_exam(session, teacher, body, self.ctx)
