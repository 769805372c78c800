"""The web pages: static files served at `/`, clients of the API like any other."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def mount_pages(app: FastAPI) -> None:
    """Mount last, so every API and ops route matches first."""
    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True, check_dir=False), name="pages")
