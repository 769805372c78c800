"""An admin's management of accounts over HTTP: users of any role with or without a password,
edits, role changes that end the user's sessions, and one-time password-reset links; every
step audited and no password or token anywhere but the one link shown to the admin."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.support import PASSWORD, Api, ServerProcess, unique

NEW_PASSWORD = "Correct-Horse-Battery-9"


def _body(role: str = "teacher", **extra: object) -> dict:
    name = unique(role)
    return {"email": f"{name}@school.example", "username": name, "role": role, **extra}


def _token(link: str) -> str:
    assert "#/set-password?token=" in link  # the token rides in the fragment
    return link.split("token=", 1)[1]


def _audit(db, action: str, resource_id: str) -> list[dict]:
    rows = db.execute("SELECT user_id, details FROM audit_logs WHERE action = %s AND"
                      " resource_id = %s ORDER BY created_at", (action, resource_id)).fetchall()
    return [{"user_id": str(r[0]), "details": r[1]} for r in rows]


def _no_secret_in_audit(db, *secrets: str) -> None:
    for secret in secrets:
        found = db.execute("SELECT count(*) FROM audit_logs WHERE details::text LIKE %s",
                           (f"%{secret}%",)).fetchone()[0]
        assert found == 0


@pytest.mark.parametrize("role", ["student", "teacher", "admin"])
def test_admin_creates_a_user_of_any_role_with_a_password(
    api: Api, admin: dict, db, role: str
) -> None:
    body = _body(role, password=PASSWORD, full_name="Ada Lovelace")
    response = api.post("/api/admin/users", json=body, headers=admin["headers"])
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["role"] == role and user["full_name"] == "Ada Lovelace" and user["is_active"]
    assert user["setup_link"] is None and user["setup_link_expires_at"] is None
    assert "password" not in response.text and PASSWORD not in response.text
    assert api.login(body["email"])["role"] == role
    [record] = _audit(db, "create_user", user["id"])
    assert record["user_id"] == admin["id"]
    assert record["details"] == {"role": role, "email": body["email"],
                                 "username": body["username"], "with_password": True}
    _no_secret_in_audit(db, PASSWORD)


def test_a_user_made_without_a_password_gets_a_one_time_setup_link(
    api: Api, admin: dict, db
) -> None:
    body = _body("teacher")
    before = datetime.now(UTC)
    response = api.post("/api/admin/users", json=body, headers=admin["headers"])
    assert response.status_code == 201, response.text
    user = response.json()
    token = _token(user["setup_link"])
    expires = datetime.fromisoformat(user["setup_link_expires_at"])
    assert timedelta(days=6, hours=23) < expires - before <= timedelta(days=7, minutes=1)
    # No password yet: signing in fails like a wrong password.
    assert api.post("/api/auth/login", json={"email": body["email"],
                                             "password": PASSWORD}).status_code == 401
    assert api.post("/api/auth/set-password",
                    json={"token": token, "password": NEW_PASSWORD}).status_code == 204
    assert api.login(body["email"], NEW_PASSWORD)["role"] == "teacher"
    assert api.post("/api/auth/set-password",
                    json={"token": token, "password": PASSWORD}).status_code == 400
    [record] = _audit(db, "create_user", user["id"])
    assert record["details"]["with_password"] is False
    _no_secret_in_audit(db, token, NEW_PASSWORD)
    stored = db.execute("SELECT count(*) FROM password_links WHERE token_hash::text LIKE %s",
                        (f"%{token}%",)).fetchone()[0]
    assert stored == 0  # only a digest is kept


def test_create_refuses_duplicates_weak_passwords_and_bad_bodies(api: Api, admin: dict) -> None:
    h = admin["headers"]
    taken = api.user("teacher")
    for clash in ({"email": taken["email"]}, {"username": taken["username"].upper()}):
        response = api.post("/api/admin/users", json=_body("student") | clash, headers=h)
        assert response.status_code == 409, clash
    for weak in ("short", "password123", "Too-long-" * 120):
        response = api.post("/api/admin/users", json=_body(password=weak), headers=h)
        assert response.status_code == 422, weak
        assert weak not in response.text  # a refused password is not echoed back
    for bad in ({"role": "superuser"}, {"email": "not-an-email"}, {"username": "a b"},
                {"is_active": False}):
        assert api.post("/api/admin/users", json=_body() | bad, headers=h).status_code == 422


def test_admin_edits_name_and_email(api: Api, admin: dict, db) -> None:
    h = admin["headers"]
    user = api.user()
    new_email = f"{unique('renamed')}@School.Example"
    response = api.patch(f"/api/admin/users/{user['id']}", headers=h,
                         json={"full_name": "Grace Hopper", "email": new_email})
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Grace Hopper"
    assert response.json()["email"] == new_email.lower()
    # Name and email do not end a session: the token stays good, the role is unchanged.
    assert api.get("/api/auth/me", headers=user["headers"]).status_code == 200
    assert api.login(new_email.lower())["id"] == user["id"]
    [record] = _audit(db, "update_user", user["id"])
    assert record["details"] == {"changed": {
        "full_name": {"from": None, "to": "Grace Hopper"},
        "email": {"from": user["email"], "to": new_email.lower()}}}
    # The same values again change nothing and record nothing.
    again = api.patch(f"/api/admin/users/{user['id']}", headers=h,
                      json={"full_name": "Grace Hopper", "email": new_email})
    assert again.status_code == 200 and len(_audit(db, "update_user", user["id"])) == 1
    cleared = api.patch(f"/api/admin/users/{user['id']}", headers=h, json={"full_name": None})
    assert cleared.status_code == 200 and cleared.json()["full_name"] is None


def test_edit_refuses_a_taken_email_unknown_users_and_bad_bodies(api: Api, admin: dict) -> None:
    h = admin["headers"]
    user, other = api.user(), api.user()
    clash = api.patch(f"/api/admin/users/{user['id']}", headers=h, json={"email": other["email"]})
    assert clash.status_code == 409
    unknown = api.patch(f"/api/admin/users/{uuid.uuid4()}", headers=h, json={"full_name": "X"})
    assert unknown.status_code == 404
    for bad in ({"email": None}, {"role": None}, {"role": "root"}, {"password": PASSWORD},
                {"is_active": False}, {"full_name": "x" * 201}):
        response = api.patch(f"/api/admin/users/{user['id']}", headers=h, json=bad)
        assert response.status_code == 422, bad
    assert api.get("/api/auth/me", headers=user["headers"]).json()["email"] == user["email"]


def test_a_role_change_ends_the_users_sessions_at_once(api: Api, admin: dict, db) -> None:
    teacher = api.user("teacher")
    assert api.get("/api/teacher/exams", headers=teacher["headers"]).status_code == 200
    started = time.monotonic()
    response = api.patch(f"/api/admin/users/{teacher['id']}", headers=admin["headers"],
                         json={"role": "student"})
    assert response.status_code == 200 and response.json()["role"] == "student"
    while api.get("/api/auth/me", headers=teacher["headers"]).status_code != 401:
        assert time.monotonic() - started < 1, "the old token still works"
        time.sleep(0.01)
    assert api.post("/api/auth/refresh",
                    json={"refresh_token": teacher["refresh"]}).status_code == 401
    student = api.login(teacher["email"])
    assert student["role"] == "student"
    # The new role works at once: a student's profile was made for it.
    assert api.get("/api/student/dashboard", headers=student["headers"]).status_code == 200
    assert api.get("/api/teacher/exams", headers=student["headers"]).status_code == 403
    [change] = _audit(db, "change_role", teacher["id"])
    assert change == {"user_id": admin["id"], "details": {"from": "teacher", "to": "student"}}
    # And back: the teacher profile is still there, nothing is duplicated.
    back = api.patch(f"/api/admin/users/{teacher['id']}", headers=admin["headers"],
                     json={"role": "teacher"})
    assert back.status_code == 200
    assert api.get("/api/teacher/exams",
                   headers=api.login(teacher["email"])["headers"]).status_code == 200


def test_the_same_role_again_keeps_the_sessions(api: Api, admin: dict) -> None:
    teacher = api.user("teacher")
    response = api.patch(f"/api/admin/users/{teacher['id']}", headers=admin["headers"],
                         json={"role": "teacher"})
    assert response.status_code == 200
    assert api.get("/api/auth/me", headers=teacher["headers"]).status_code == 200


def test_a_reset_link_is_one_time_and_the_old_password_works_until_it_is_used(
    api: Api, admin: dict, db
) -> None:
    user = api.user()
    before = datetime.now(UTC)
    response = api.post(f"/api/admin/users/{user['id']}/password-reset",
                        headers=admin["headers"])
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"setup_link", "expires_at"}
    token = _token(response.json()["setup_link"])
    expires = datetime.fromisoformat(response.json()["expires_at"])
    assert timedelta(hours=23, minutes=59) < expires - before <= timedelta(hours=24, minutes=1)
    # Until the link is used the old password and the user's session keep working.
    assert api.login(user["email"])["id"] == user["id"]
    assert api.get("/api/auth/me", headers=user["headers"]).status_code == 200
    assert api.post("/api/auth/set-password",
                    json={"token": token, "password": NEW_PASSWORD}).status_code == 204
    # Using it sets the new password and ends every session the user had.
    assert api.get("/api/auth/me", headers=user["headers"]).status_code == 401
    assert api.post("/api/auth/login", json={"email": user["email"],
                                             "password": PASSWORD}).status_code == 401
    assert api.login(user["email"], NEW_PASSWORD)["id"] == user["id"]
    assert api.post("/api/auth/set-password",
                    json={"token": token, "password": PASSWORD}).status_code == 400
    [record] = _audit(db, "password_reset_issued", user["id"])
    assert record["user_id"] == admin["id"]
    assert set(record["details"]) == {"expires_at"}
    _no_secret_in_audit(db, token, NEW_PASSWORD)


def test_a_reset_link_dies_after_24_hours(api: Api, admin: dict, db) -> None:
    user = api.user()
    link = api.post(f"/api/admin/users/{user['id']}/password-reset",
                    headers=admin["headers"]).json()["setup_link"]
    # The clock moved on: the stored expiry is a second in the past.
    db.execute("UPDATE password_links SET expires_at = now() - interval '1 second'"
               " WHERE user_id = %s AND used_at IS NULL", (user["id"],))
    response = api.post("/api/auth/set-password",
                        json={"token": _token(link), "password": NEW_PASSWORD})
    assert response.status_code == 400
    assert api.login(user["email"])["id"] == user["id"]


def test_a_new_reset_link_replaces_the_unused_older_one(api: Api, admin: dict) -> None:
    user = api.user()
    url = f"/api/admin/users/{user['id']}/password-reset"
    first = _token(api.post(url, headers=admin["headers"]).json()["setup_link"])
    second = _token(api.post(url, headers=admin["headers"]).json()["setup_link"])
    assert first != second
    assert api.post("/api/auth/set-password",
                    json={"token": first, "password": NEW_PASSWORD}).status_code == 400
    assert api.post("/api/auth/set-password",
                    json={"token": second, "password": NEW_PASSWORD}).status_code == 204


def test_reset_for_an_unknown_user_is_404(api: Api, admin: dict) -> None:
    response = api.post(f"/api/admin/users/{uuid.uuid4()}/password-reset",
                        headers=admin["headers"])
    assert response.status_code == 404


def test_the_audit_log_names_actors_and_lists_its_actions(api: Api, admin: dict) -> None:
    h = admin["headers"]
    user = api.user()
    api.post(f"/api/admin/users/{user['id']}/lock", headers=h)
    page = api.get("/api/admin/audit-logs", headers=h,
                   params={"action": "lock_user", "resource_id": user["id"]}).json()
    [record] = page["items"]
    assert record["user_id"] == admin["id"]
    assert record["user_name"] == admin["username"] and record["user_email"] == admin["email"]
    anonymous = api.post("/api/auth/login", json={"email": f"{unique('nobody')}@x.example",
                                                  "password": "wrong-password"})
    assert anonymous.status_code == 401
    failed = api.get("/api/admin/audit-logs", headers=h,
                     params={"action": "login_failed", "limit": 1}).json()["items"][0]
    assert failed["user_id"] is None and failed["user_name"] is None
    actions = api.get("/api/admin/audit-logs/actions", headers=h)
    assert actions.status_code == 200
    listed = actions.json()["actions"]
    assert listed == sorted(set(listed))
    assert {"lock_user", "login", "login_failed", "register"} <= set(listed)


def test_no_password_or_token_in_the_servers_log(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    # Veritas at DEBUG and uvicorn's access log on: every request line is written.
    log = tmp_path / "server.log"
    env = server_env | {"LOG_LEVEL": "DEBUG", "EMBEDDED_WORKER": "false"}
    with ServerProcess(env, log_path=log, uvicorn_log_level="info") as server, \
            Api(server.base_url) as api:
        admin = api.create_admin_cli(env)
        h = admin["headers"]
        with_password = api.post("/api/admin/users", headers=h,
                                 json=_body("teacher", password=NEW_PASSWORD))
        assert with_password.status_code == 201
        made = api.post("/api/admin/users", json=_body("student"), headers=h).json()
        setup = _token(made["setup_link"])
        reset = _token(api.post(f"/api/admin/users/{with_password.json()['id']}/password-reset",
                                headers=h).json()["setup_link"])
        assert api.post("/api/auth/set-password",
                        json={"token": reset, "password": PASSWORD}).status_code == 204
    written = log.read_text()
    assert "POST /api/admin/users" in written  # the log does hold the requests
    for secret in (NEW_PASSWORD, PASSWORD, setup, reset):
        assert secret not in written
