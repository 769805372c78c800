"""Security headers on every response, /docs without the internet, and /metrics behind a token."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.support import METRICS_TOKEN, Api, ServerProcess, bearer


def _csp(response: Any) -> dict[str, str]:
    policy = response.headers.get("content-security-policy", "")
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] if " " in part else ""
            for part in (p.strip() for p in policy.split(";")) if part}


def test_every_response_carries_nosniff_referrer_policy_and_a_csp(api: Api, admin: dict) -> None:
    responses = [
        api.get("/"), api.get("/js/app.js"), api.get("/css/app.css"), api.get("/healthz"),
        api.get("/openapi.json"), api.get("/no-such-page.html"), api.get("/api/nothing"),
        api.get("/api/auth/me"), api.get("/api/auth/me", headers=admin["headers"]),
        api.post("/api/monitor/events", json={}),  # answered ahead of the router
        api.post("/api/auth/login", content=b"x" * (9 * 1024 * 1024),
                 headers={"Content-Type": "application/json"}),  # 413 from the body limit
    ]
    assert responses[-1].status_code == 413
    for response in responses:
        where = f"{response.request.method} {response.request.url.path} {response.status_code}"
        assert response.headers.get("x-content-type-options") == "nosniff", where
        assert response.headers.get("referrer-policy") == "no-referrer", where
        assert _csp(response).get("frame-ancestors") == "'none'", where


def test_pages_get_a_csp_without_inline_script(api: Api) -> None:
    page = api.get("/")
    assert "text/html" in page.headers["content-type"]
    csp = _csp(page)
    assert csp["script-src"] == "'self'"
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert csp["object-src"] == "'none'" and csp["base-uri"] == "'none'"
    # The pages themselves obey it: no inline script or handler attribute in the HTML.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text)
    assert not re.search(r"\son[a-z]+\s*=", page.text)


def test_api_answers_are_not_stored_by_caches(api: Api, admin: dict) -> None:
    for response in (api.get("/api/auth/me", headers=admin["headers"]),
                     api.get("/api/admin/users", headers=admin["headers"]),
                     api.get("/api/auth/me")):
        assert response.headers.get("cache-control") == "no-store", response.request.url
    assert api.get("/api/admin/users", headers=admin["headers"]).status_code == 200


def test_docs_load_only_same_origin_assets_that_are_served(api: Api) -> None:
    docs = api.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", docs.text)
    assert urls, docs.text
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"/docs loads {url} from elsewhere"
        assert api.get(url).status_code == 200, url
    assert re.search(r"url: '/openapi.json'", docs.text)
    # Its own CSP admits its one inline script by hash, and nothing from another origin.
    csp = _csp(docs)
    assert csp["frame-ancestors"] == "'none'"
    assert re.fullmatch(r"'self' 'sha256-[A-Za-z0-9+/=]+'", csp["script-src"]), csp
    assert "http" not in docs.headers["content-security-policy"]
    assert api.get("/docs/oauth2-redirect").status_code == 200


def test_metrics_need_the_bearer_token(api: Api, admin: dict) -> None:
    assert api.get("/metrics").status_code == 401
    assert api.get("/metrics", headers=bearer("wrong")).status_code == 401
    assert api.get("/metrics", headers=admin["headers"]).status_code == 401  # not a user token
    scraped = api.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert scraped.status_code == 200 and "veritas_" in scraped.text


@pytest.fixture()
def server_without_metrics_token(server_env: dict[str, str]) -> Any:
    env = {k: v for k, v in server_env.items() if k != "METRICS_TOKEN"} | {
        "EMBEDDED_WORKER": "false"}
    with ServerProcess(env) as server:
        yield server


def test_metrics_are_off_without_a_token_setting(server_without_metrics_token: Any) -> None:
    with Api(server_without_metrics_token.base_url) as client:
        for headers in ({}, bearer("anything"), bearer(METRICS_TOKEN)):
            response = client.get("/metrics", headers=headers)
            assert response.status_code == 403, response.text
            assert "METRICS_TOKEN" in response.json()["detail"]


def test_docs_render_with_no_network_but_veritas(
    server: Any, open_page: Any, new_context: Any, page_errors: list[str],
) -> None:
    context = new_context()
    elsewhere: list[str] = []

    def only_veritas(route: Any) -> None:
        if route.request.url.startswith(server.base_url):
            route.continue_()
        else:  # a closed school network
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_veritas)
    page = open_page(context)
    page.goto("/docs")
    page.locator(".swagger-ui .info .title").filter(has_text="Veritas").wait_for()
    page.locator(".opblock-summary-path", has_text="/api/auth/login").first.wait_for()
    assert elsewhere == []
    assert page_errors == []


def test_the_sign_in_page_works_under_its_csp(
    api: Api, open_page: Any, page_errors: list[str],
) -> None:
    student = api.user("student")
    page = open_page()
    page.goto("/#/login")
    page.get_by_label("Email or username").fill(student["username"])
    page.get_by_label("Password").fill("Tr0ub4dor&3-horse")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()
    assert page_errors == []
