"""Shared by the OULAD tests: where the fixture is and a quick import of it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from veritas.oulad.importer import ImportSummary, import_oulad

FIXTURE = Path(__file__).resolve().parent / "fixture"


def run_import(url: str, directory: Path = FIXTURE) -> ImportSummary:
    # bcrypt cost 4: the one hash per import is for accounts nobody logs in to.
    return asyncio.run(import_oulad(url, directory, bcrypt_rounds=4))
