"""The embedded PostgreSQL (pgserver) used when no DATABASE_URL is configured."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from veritas.db.migrate import upgrade

log = logging.getLogger(__name__)

DATABASE_NAME = "veritas"


def start_embedded(data_dir: Path, *, stop_on_exit: bool = True) -> str:
    """Start (or reuse) the embedded server in `data_dir/pg` and return its owner's URL
    (`runtime_url` gives the least-privilege role's)."""
    with warnings.catch_warnings():
        # pgserver keeps its lock in platformdirs' runtime directory, which warns when
        # XDG_RUNTIME_DIR is unset (containers, cron, su) and falls back to /tmp/runtime-UID:
        # fine, and every Veritas process falls back the same way.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from pgserver.postgres_server import get_server

    pg_dir = (data_dir / "pg").resolve()
    pg_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(pg_dir, cleanup_mode="stop" if stop_on_exit else None)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    log.info("embedded PostgreSQL running with data in %s", pg_dir)
    # Unix-socket URL; both asyncpg and psycopg read `host=` as the socket directory.
    return f"postgresql://postgres:@/{DATABASE_NAME}?host={pg_dir}"


def runtime_url(owner_url: str) -> str:
    """The embedded server's runtime role (created on first use): what the server logs in as."""
    from veritas.db.roles import ensure_runtime_login

    return ensure_runtime_login(owner_url)


def start_migrated(data_dir: Path, *, stop_on_exit: bool = True) -> tuple[str, str]:
    """Start the embedded server, migrate it as its owner and give it its runtime role:
    what `veritas serve` and every command do when DATABASE_URL is unset. Returns the
    runtime role's URL and the owner's."""
    owner = start_embedded(data_dir, stop_on_exit=stop_on_exit)
    upgrade(owner)
    return runtime_url(owner), owner
