"""Unknown paths under /api are the API's 404, whatever the method; the pages stay at `/`."""

from __future__ import annotations

import pytest
from tests.support import Api

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path", ["/api/nothing", "/api/teacher/nothing/here", "/api"])
def test_unknown_api_paths_are_404_for_every_method(api: Api, method: str, path: str) -> None:
    response = api.request(method, path, json={} if method in ("POST", "PUT", "PATCH") else None)
    assert response.status_code == 404, response.text
    if method != "HEAD":
        assert response.json() == {"detail": "Not Found"}


def test_known_api_path_with_the_wrong_method_is_still_405(api: Api) -> None:
    assert api.post("/api/auth/me").status_code == 405
    assert api.delete("/api/teacher/alerts").status_code == 405
    assert api.get("/api/auth/login").status_code == 405


def test_pages_are_still_served_at_the_root(api: Api) -> None:
    index = api.get("/")
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    assert api.get("/js/api.js").status_code == 200
    assert api.get("/no-such-page.html").status_code == 404


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("OPTIONS", "/api/teacher/exams", "GET, POST"),
    ("PUT", "/api/teacher/exams/00000000-0000-4000-8000-000000000000", "GET, PATCH"),
    ("DELETE", "/api/teacher/attempts/00000000-0000-4000-8000-000000000000/reviews",
     "GET, POST"),
    ("GET", "/api/monitor/events", "POST"),
    ("POST", "/api/auth/me", "GET"),
])
def test_a_405_names_every_method_of_its_path(api: Api, method: str, path: str,
                                              allowed: str) -> None:
    # Routes of one path are separate; Allow once named only the first one's method.
    response = api.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json() == {"detail": "Method Not Allowed"}


@pytest.mark.parametrize("media_type", [
    None, "application/json", "application/json; charset=latin-1", "application/problem+json",
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_bodies_that_are_not_utf8_are_a_documented_4xx(api: Api, media_type: str | None) -> None:
    teacher = api.user("teacher")
    body = b'{"title": "\xff\xfe", "subject": "x"}'
    headers = {"content-type": media_type} if media_type else {}
    # Login takes JSON or the OAuth2 form only (415 for anything else); FastAPI's routes give
    # 422 for a body they cannot read, never its own undocumented 400.
    for path, extra, documented in (("/api/teacher/exams", teacher["headers"], {422}),
                                    ("/api/auth/login", {}, {415, 422})):
        response = api.post(path, content=body, headers=headers | extra)
        assert response.status_code in documented, (path, response.text)
        assert set(response.json()) == {"detail"}
