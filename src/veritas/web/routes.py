"""The web pages: static files served at `/`, clients of the API like any other."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.routing import Match, Mount
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"


class _Pages(Mount):
    """The pages at `/`, except under /api, which is left to the router: there an unknown path
    is its 404 `{"detail": "Not Found"}` and a known path with the wrong method its 405,
    instead of whatever the static files would answer."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "").removeprefix(scope.get("root_path", ""))
        if path == "/api" or path.startswith("/api/"):
            return Match.NONE, {}
        return super().matches(scope)


def mount_pages(app: FastAPI) -> None:
    """Mount last, so every API and ops route matches first."""
    static = StaticFiles(directory=STATIC_DIR, html=True, check_dir=False)
    app.router.routes.append(_Pages("/", app=static, name="pages"))
