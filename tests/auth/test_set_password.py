"""Set-password links as a password reset would use them: the old password works until the
link is used, using it ends the account's sessions and its other links, a link is used once
even by racing requests, and no token or password reaches the server's log."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support import PASSWORD, Api, ServerProcess, unique

from veritas.auth import links
from veritas.config import Settings
from veritas.db.engine import create_engine, create_sessionmaker
from veritas.db.unit_of_work import SYSTEM, unit_of_work

NEW_PASSWORD = "Correct-Horse-Battery-9"


def _issue(runtime_url: str, user: dict, valid_for: timedelta) -> links.Issued:
    async def run() -> links.Issued:
        engine = create_engine(Settings(database_url=runtime_url, debug=True), runtime_url)
        try:
            async with unit_of_work(create_sessionmaker(engine), SYSTEM) as session:
                [issued] = await links.issue(session, [uuid.UUID(user["id"])],
                                             links.Purpose.reset, valid_for, None)
                return issued
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_a_reset_link_ends_the_old_password_and_sessions(api: Api, runtime_url: str, db) -> None:
    user = api.user()
    before = datetime.now(UTC)
    first = _issue(runtime_url, user, timedelta(hours=24))
    second = _issue(runtime_url, user, timedelta(hours=24))
    assert timedelta(hours=23, minutes=59) < first.expires_at - before <= timedelta(hours=24,
                                                                                   minutes=1)
    # Until the link is used the old password and the session keep working.
    assert api.get("/api/auth/me", headers=user["headers"]).status_code == 200
    assert api.login(user["email"])["id"] == user["id"]
    used = api.post("/api/auth/set-password",
                    json={"token": first.token, "password": NEW_PASSWORD})
    assert used.status_code == 204
    assert api.get("/api/auth/me", headers=user["headers"]).status_code == 401
    assert api.post("/api/auth/login", json={"email": user["email"],
                                             "password": PASSWORD}).status_code == 401
    assert api.login(user["email"], NEW_PASSWORD)["id"] == user["id"]
    # The other link of the account died with the first one's use.
    assert api.post("/api/auth/set-password",
                    json={"token": second.token, "password": PASSWORD}).status_code == 400
    purpose = db.execute("SELECT details->>'purpose' FROM audit_logs WHERE action ="
                         " 'set_password' AND user_id = %s", (user["id"],)).fetchone()[0]
    assert purpose == "reset"


def test_racing_uses_of_one_link_set_one_password(api: Api, runtime_url: str) -> None:
    user = api.user()
    issued = _issue(runtime_url, user, timedelta(hours=1))
    statuses: list[int] = []
    passwords = [f"{unique('Race-')}-9x" for _ in range(6)]

    def use(password: str) -> None:
        statuses.append(api.post("/api/auth/set-password",
                                 json={"token": issued.token, "password": password}).status_code)

    threads = [threading.Thread(target=use, args=(p,)) for p in passwords]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [204] + [400] * 5
    working = [p for p in passwords
               if api.post("/api/auth/login", json={"email": user["email"], "password": p}
                           ).status_code == 200]
    assert len(working) == 1


def test_no_token_or_password_in_the_servers_log(
    server_env: dict[str, str], runtime_url: str, tmp_path: Path,
) -> None:
    # Veritas at DEBUG and uvicorn's access log on: every request line is written.
    log = tmp_path / "server.log"
    env = server_env | {"LOG_LEVEL": "DEBUG", "EMBEDDED_WORKER": "false"}
    with ServerProcess(env, log_path=log, uvicorn_log_level="info") as server, \
            Api(server.base_url) as api:
        api.create_admin_cli(env)
        teacher = api.user("teacher")
        klass = api.post("/api/teacher/classes", json={"name": "Log check"},
                         headers=teacher["headers"]).json()
        name = unique("logged")
        roster = api.post(f"/api/teacher/classes/{klass['id']}/roster",
                          content=f"email,username,full_name,enrollment_id\n"
                                  f"{name}@school.example,{name},,\n",
                          headers=teacher["headers"] | {"Content-Type": "text/csv"})
        assert roster.status_code == 200, roster.text
        token = roster.json()["setup_links"][0]["setup_link"].split("token=")[1]
        assert api.post("/api/auth/set-password",
                        json={"token": token, "password": NEW_PASSWORD}).status_code == 204
        assert api.login(f"{name}@school.example", NEW_PASSWORD)
        assert api.post("/api/auth/set-password",
                        json={"token": token, "password": NEW_PASSWORD}).status_code == 400
    written = log.read_text()
    assert "POST /api/auth/set-password" in written  # the log does hold the requests
    assert token not in written and NEW_PASSWORD not in written
