"""One policy for JSON request bodies on every route: bounded depth and size, 422 for bad JSON."""

from __future__ import annotations

from tests.support import Api


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def _routes(api: Api) -> list[tuple[str, dict]]:
    teacher = api.user("teacher")
    student = api.user()
    exam = api.exam(teacher)
    attempt = api.start(student, exam)
    return [
        ("/api/auth/login", {}),
        ("/api/auth/register", {}),
        ("/api/auth/refresh", {}),
        ("/api/auth/logout", student["headers"]),
        ("/api/teacher/exams", teacher["headers"]),
        (f"/api/student/attempts/{attempt['attempt_id']}/drafts", student["headers"]),
        (f"/api/student/exams/{attempt['attempt_id']}/submit", student["headers"]),
        ("/api/monitor/events", student["headers"]),
        ("/api/monitor/events/batch", student["headers"]),
    ]


def test_deeply_nested_bodies_are_422_on_every_route(api: Api) -> None:
    wrapped = b'{"email": "a@b.example", "password": ' + _deep(1000) + b"}"
    for path, headers in _routes(api):
        for body in (_deep(1000), _deep(100_000), wrapped):
            response = api.post(path, content=body,
                                headers=headers | {"content-type": "application/json"})
            assert response.status_code == 422, (path, len(body), response.status_code)
            assert "detail" in response.json()


def test_malformed_json_is_422_on_every_route(api: Api) -> None:
    for path, headers in _routes(api):
        for body in (b"{not json", b'{"a": "\xff\xfe"}', b'{"a": 1', b"\x00"):
            response = api.post(path, content=body,
                                headers=headers | {"content-type": "application/json"})
            assert response.status_code == 422, (path, body, response.status_code)


def test_moderate_nesting_still_reads(api: Api) -> None:
    teacher = api.user("teacher")
    nested: dict = {"leaf": 1}
    for _ in range(20):
        nested = {"n": nested}
    exam = api.exam(teacher, metadata={"notes": nested})
    assert exam["id"]
