"""A token dies with its user: once the user's row is gone, every token of theirs is 401."""

from __future__ import annotations

import time

from tests.support import Api

from veritas.auth.revocation import USER_CHECK_SECONDS


def test_a_deleted_users_tokens_are_401(api: Api, admin: dict, db) -> None:
    doomed_admin = api.user("admin")
    doomed_student = api.user()
    # Every kind of route: plain reads, audited reads (which write an audit row), ingestion.
    urls = ["/api/auth/me", "/api/admin/users", "/api/admin/audit-logs", "/api/teacher/exams",
            "/api/teacher/alerts"]
    for url in urls:
        assert api.get(url, headers=doomed_admin["headers"]).status_code == 200, url
    assert api.get("/api/student/dashboard",
                   headers=doomed_student["headers"]).status_code == 200
    for user in (doomed_admin, doomed_student):
        db.execute("DELETE FROM users WHERE id = %s", (user["id"],))
    time.sleep(USER_CHECK_SECONDS * 2)  # the watch's next round
    for url in urls:
        response = api.get(url, headers=doomed_admin["headers"])
        assert response.status_code == 401, (url, response.status_code, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
    assert api.get("/api/student/dashboard",
                   headers=doomed_student["headers"]).status_code == 401
    monitored = api.post("/api/monitor/events", headers=doomed_admin["headers"], json={
        "attempt_id": "00000000-0000-0000-0000-000000000000", "event_type": "heartbeat"})
    assert monitored.status_code == 401
    # Those still there are untouched.
    assert api.get("/api/auth/me", headers=admin["headers"]).status_code == 200
