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
