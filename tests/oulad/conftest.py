"""Fixtures for the OULAD importer and eval: the cut fixture directory and databases to load it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from tests.oulad.helpers import run_import
from tests.support import drop_database, make_database


@pytest.fixture(scope="module")
def fresh_url(database_url: str) -> Iterator[str]:
    """A migrated database of its own, so the importer's first run starts from nothing."""
    from veritas.db.migrate import upgrade

    url = make_database(database_url, f"veritas_oulad_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    yield url
    drop_database(database_url, url)


@pytest.fixture(scope="module")
def imported(database_url: str) -> str:
    """The shared test database with the fixture imported (idempotent, so any order works)."""
    run_import(database_url)
    return database_url
