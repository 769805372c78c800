"""Logout and locks reach other server processes at once, over PostgreSQL or Redis."""

from __future__ import annotations

import os
import time

import pytest
from tests.support import Api, ServerProcess


def _second_server(env: dict[str, str], **extra: str) -> ServerProcess:
    return ServerProcess(env | extra)


def _until(check, seconds: float = 2.0) -> bool:
    """The broadcast is asynchronous by design; it must land within a blink, not eventually."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def _logout_and_lock_seen_by(api: Api, other: Api, admin: dict) -> None:
    user = api.user()
    assert other.get("/api/auth/me", headers=user["headers"]).status_code == 200
    started = time.monotonic()
    assert api.post("/api/auth/logout", headers=user["headers"]).status_code == 204
    assert _until(lambda: other.get("/api/auth/me",
                                    headers=user["headers"]).status_code == 401)
    assert time.monotonic() - started < 2
    victim = api.user()
    assert other.get("/api/auth/me", headers=victim["headers"]).status_code == 200
    api.post(f"/api/admin/users/{victim['id']}/lock", headers=admin["headers"])
    assert _until(lambda: other.get("/api/auth/me",
                                    headers=victim["headers"]).status_code == 401)


def test_logout_seen_by_a_second_process_via_postgres(api: Api, admin: dict,
                                                      server_env: dict[str, str]) -> None:
    with _second_server(server_env) as second, Api(second.base_url) as other:
        _logout_and_lock_seen_by(api, other, admin)


def test_revocation_state_survives_a_restart(api: Api, admin: dict,
                                             server_env: dict[str, str]) -> None:
    user = api.user()
    api.post("/api/auth/logout", headers=user["headers"])
    with _second_server(server_env) as fresh, Api(fresh.base_url) as other:
        assert other.get("/api/auth/me", headers=user["headers"]).status_code == 401


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set")
def test_logout_seen_across_processes_via_redis(api: Api, admin: dict,
                                                server_env: dict[str, str]) -> None:
    import redis

    redis_url = os.environ["REDIS_URL"]
    with _second_server(server_env, REDIS_URL=redis_url) as a, \
            _second_server(server_env, REDIS_URL=redis_url) as b, \
            Api(a.base_url) as first, Api(b.base_url) as second:
        first.admin = admin
        _logout_and_lock_seen_by(first, second, admin)
        user = first.user()
        first.post("/api/auth/logout", headers=user["headers"])
        import jwt

        jti = jwt.decode(user["token"], options={"verify_signature": False})["jti"]
        client = redis.Redis.from_url(redis_url)
        assert client.exists(f"veritas:revoked:{jti}") == 1
        assert 0 < client.ttl(f"veritas:revoked:{jti}") <= 24 * 3600
