"""Auth endpoints: registration, login, refresh rotation, logout, and forged tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid

import bcrypt
import jwt
from tests.support import PASSWORD, Api, bearer, unique


def _register(api: Api, **body):
    username = unique("s")
    payload = {"email": f"{username}@school.example", "username": username,
               "password": PASSWORD, **body}
    return api.post("/api/auth/register", json=payload), payload


def test_register_returns_user_without_secrets(api: Api) -> None:
    response, payload = _register(api, full_name="Ada L", cohort="2026A")
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= {"id", "email", "username", "role", "is_active", "created_at"}
    assert body["role"] == "student" and body["is_active"] is True
    assert "password_hash" not in response.text and PASSWORD not in response.text


def test_register_duplicate_email_or_username_is_409(api: Api) -> None:
    response, payload = _register(api)
    assert response.status_code == 201
    again = api.post("/api/auth/register", json=payload | {"username": unique("other")})
    assert again.status_code == 409
    same_name = api.post("/api/auth/register",
                         json=payload | {"email": unique("x") + "@school.example",
                                         "username": payload["username"].upper()})
    assert same_name.status_code == 409


def test_weak_passwords_are_422(api: Api) -> None:
    for weak in ("short1!", "password123", "qwerty123", "12345678"):
        response, _ = _register(api, password=weak)
        assert response.status_code == 422, weak


def test_passwords_are_plain_bcrypt_and_at_most_72_bytes(api: Api, db) -> None:
    response, payload = _register(api)
    stored = db.execute("SELECT password_hash FROM users WHERE id = %s",
                        (response.json()["id"],)).fetchone()[0]
    assert stored.startswith("$2b$04$")  # bcrypt at BCRYPT_ROUNDS
    assert bcrypt.checkpw(PASSWORD.encode(), stored.encode())
    # A standard bcrypt hash made elsewhere (an import) logs in.
    imported = bcrypt.hashpw(b"Imported-pass-2026", bcrypt.gensalt(4)).decode()
    db.execute("UPDATE users SET password_hash = %s WHERE id = %s",
               (imported, response.json()["id"]))
    assert api.post("/api/auth/login", json={"email": payload["email"],
                                             "password": "Imported-pass-2026"}).status_code == 200
    longest = "x" * 60 + "-Tail-2026!"  # 71 bytes
    ok, ok_payload = _register(api, password=longest + "?")
    assert ok.status_code == 201
    assert api.post("/api/auth/login", json={"email": ok_payload["email"],
                                             "password": longest + "?"}).status_code == 200
    for too_long in (longest + "?!", "é" * 37):  # 73 bytes; 37 characters but 74 bytes
        refused, _ = _register(api, password=too_long)
        assert refused.status_code == 422, too_long
        assert "72 bytes" in refused.json()["detail"]
    assert api.post("/api/auth/login", json={"email": ok_payload["email"],
                                             "password": longest + "?!"}).status_code == 401


def test_hashes_of_earlier_versions_log_in_and_are_replaced(api: Api, db) -> None:
    """Databases written before plain bcrypt hold bcrypt(base64(SHA-256(password))): those
    accounts still log in, and their hash is rewritten in the current form on the way."""
    response, payload = _register(api)
    user_id = response.json()["id"]
    legacy_form = base64.b64encode(hashlib.sha256(PASSWORD.encode()).digest())
    db.execute("UPDATE users SET password_hash = %s WHERE id = %s",
               (bcrypt.hashpw(legacy_form, bcrypt.gensalt(4)).decode(), user_id))
    wrong = api.post("/api/auth/login", json={"email": payload["email"], "password": "Wrong-2026!"})
    assert wrong.status_code == 401
    login = api.post("/api/auth/login", json={"email": payload["email"], "password": PASSWORD})
    assert login.status_code == 200
    stored = db.execute("SELECT password_hash FROM users WHERE id = %s", (user_id,)).fetchone()[0]
    assert bcrypt.checkpw(PASSWORD.encode(), stored.encode())
    assert api.post("/api/auth/login", json={"email": payload["email"],
                                             "password": PASSWORD}).status_code == 200


def test_staff_self_registration_is_403(api: Api) -> None:
    for role in ("teacher", "admin"):
        response, _ = _register(api, role=role)
        assert response.status_code == 403


def test_admin_registers_teacher(api: Api, admin: dict) -> None:
    teacher = api.user("teacher")
    assert teacher["role"] == "teacher"
    student = api.user("student")
    username = unique("t")
    refused = api.post("/api/auth/register", headers=student["headers"],
                       json={"email": f"{username}@school.example", "username": username,
                             "password": PASSWORD, "role": "teacher"})
    assert refused.status_code == 403


def test_login_by_email_username_and_oauth2_form(api: Api) -> None:
    response, payload = _register(api)
    by_name = api.post("/api/auth/login", json={"username": payload["username"],
                                                "password": PASSWORD})
    assert by_name.status_code == 200
    body = by_name.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 24 * 3600
    form = api.post("/api/auth/login", data={"username": payload["email"], "password": PASSWORD})
    assert form.status_code == 200
    claims = jwt.decode(form.json()["access_token"], options={"verify_signature": False})
    assert set(claims) >= {"user_id", "email", "role", "iat", "exp", "jti", "type"}
    assert claims["type"] == "access" and claims["exp"] - claims["iat"] == 24 * 3600


def test_wrong_password_and_unknown_user_look_the_same(api: Api) -> None:
    _, payload = _register(api)
    wrong = api.post("/api/auth/login", json={"email": payload["email"], "password": "nope-nope"})
    unknown = api.post("/api/auth/login", json={"email": "ghost@school.example",
                                                "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.headers["www-authenticate"] == "Bearer"


def test_login_body_errors_are_422(api: Api) -> None:
    assert api.post("/api/auth/login", json={"password": "x"}).status_code == 422
    assert api.post("/api/auth/login", content=b"{not json",
                    headers={"content-type": "application/json"}).status_code == 422


def test_repeated_failures_are_429_and_audited(api: Api, db, admin: dict) -> None:
    _, payload = _register(api)
    headers = {"X-Forwarded-For": f"203.0.113.{uuid.uuid4().int % 250}"}
    statuses = [
        api.post("/api/auth/login", headers=headers,
                 json={"email": payload["email"], "password": "wrong-password"}).status_code
        for _ in range(6)
    ]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    limited = api.post("/api/auth/login", headers=headers,
                       json={"email": payload["email"], "password": PASSWORD})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    user_id = db.execute("SELECT id FROM users WHERE email = %s", (payload["email"],)).fetchone()[0]
    rows = db.execute("SELECT action, host(ip_address) FROM audit_logs WHERE resource_id = %s"
                      " AND action LIKE 'login%%'", (str(user_id),)).fetchall()
    actions = [r[0] for r in rows]
    assert actions.count("login_failed") == 5 and "login_rate_limited" in actions
    assert {r[1] for r in rows} == {headers["X-Forwarded-For"]}  # trusted proxy hop


def test_refresh_rotates_and_old_token_dies(api: Api) -> None:
    user = api.user()
    first = api.post("/api/auth/refresh", json={"refresh_token": user["refresh"]})
    assert first.status_code == 200
    new = first.json()
    assert new["refresh_token"] != user["refresh"]
    assert api.get("/api/auth/me", headers=bearer(new["access_token"])).status_code == 200
    reused = api.post("/api/auth/refresh", json={"refresh_token": user["refresh"]})
    assert reused.status_code == 401
    # Reuse means a stolen copy: the whole session family is ended.
    assert api.post("/api/auth/refresh",
                    json={"refresh_token": new["refresh_token"]}).status_code == 401
    assert api.get("/api/auth/me", headers=bearer(new["access_token"])).status_code == 401


def test_refresh_token_is_not_an_access_token(api: Api) -> None:
    user = api.user()
    assert api.get("/api/auth/me", headers=bearer(user["refresh"])).status_code == 401
    assert api.post("/api/auth/refresh",
                    json={"refresh_token": user["token"]}).status_code == 401


def test_logout_revokes_access_and_refresh(api: Api) -> None:
    user = api.user()
    out = api.post("/api/auth/logout", headers=user["headers"],
                   json={"refresh_token": user["refresh"]})
    assert out.status_code == 204
    assert api.get("/api/auth/me", headers=user["headers"]).status_code == 401
    assert api.post("/api/auth/refresh",
                    json={"refresh_token": user["refresh"]}).status_code == 401


def test_logout_with_a_bad_refresh_token_still_ends_the_access_token(
    api: Api, jwt_secret: str
) -> None:
    other = api.user()
    refresh_claims = jwt.decode(other["refresh"], options={"verify_signature": False})
    expired = jwt.encode(refresh_claims | {"jti": str(uuid.uuid4()),
                                           "iat": int(time.time()) - 7200,
                                           "exp": int(time.time()) - 3600},
                         jwt_secret, algorithm="HS256")
    for bad in (expired, "not-a-token", other["refresh"]):  # the last is another user's
        user = api.user()
        out = api.post("/api/auth/logout", headers=user["headers"], json={"refresh_token": bad})
        assert out.status_code == 204
        assert api.get("/api/auth/me", headers=user["headers"]).status_code == 401
        # The caller's own refresh token was not named, so it still works.
        assert api.post("/api/auth/refresh",
                        json={"refresh_token": user["refresh"]}).status_code == 200
    # Nobody revokes another user's refresh token by naming it.
    assert api.post("/api/auth/refresh",
                    json={"refresh_token": other["refresh"]}).status_code == 200


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_forged_tokens_are_401(api: Api, jwt_secret: str) -> None:
    user = api.user()
    claims = jwt.decode(user["token"], options={"verify_signature": False})
    header, payload, signature = user["token"].split(".")
    admin_claims = claims | {"role": "admin"}
    forged = {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(admin_claims)}.",
        "tampered claims": f"{header}.{_b64(admin_claims)}.{signature}",
        "stripped signature": f"{header}.{payload}.",
        "hs512": jwt.encode(claims, jwt_secret, algorithm="HS512"),
        "wrong key": jwt.encode(claims, "k" * 48, algorithm="HS256"),
        "expired": jwt.encode(claims | {"iat": int(time.time()) - 7200,
                                        "exp": int(time.time()) - 3600},
                              jwt_secret, algorithm="HS256"),
        "missing jti": jwt.encode({k: v for k, v in claims.items() if k != "jti"},
                                  jwt_secret, algorithm="HS256"),
        # Well signed but with ids that are not strings: once a 500.
        "numeric user_id": jwt.encode(claims | {"user_id": 5}, jwt_secret, algorithm="HS256"),
        "object jti": jwt.encode(claims | {"jti": {"a": 1}}, jwt_secret, algorithm="HS256"),
        "garbage": "not-a-token",
    }
    for name, token in forged.items():
        response = api.get("/api/auth/me", headers=bearer(token))
        assert response.status_code == 401, name
        assert response.headers.get("www-authenticate") == "Bearer", name
    assert api.get("/api/auth/me").status_code == 401


def test_lock_cuts_off_at_once_and_unlock_allows_new_login(api: Api, admin: dict) -> None:
    user = api.user()
    locked = api.post(f"/api/admin/users/{user['id']}/lock", headers=admin["headers"])
    assert locked.status_code == 200 and locked.json()["is_active"] is False
    assert api.get("/api/auth/me", headers=user["headers"]).status_code == 401
    login = api.post("/api/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert login.status_code == 403
    unlocked = api.post(f"/api/admin/users/{user['id']}/unlock", headers=admin["headers"])
    assert unlocked.status_code == 200 and unlocked.json()["is_active"] is True
    # Old tokens stay dead; a new login works.
    assert api.get("/api/auth/me", headers=user["headers"]).status_code == 401
    again = api.login(user["email"])
    assert api.get("/api/auth/me", headers=again["headers"]).status_code == 200
