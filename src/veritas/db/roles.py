"""The two database roles: the owner (migrations, DDL) and the least-privilege runtime role.

Migrations run as the owner (MIGRATION_DATABASE_URL, else DATABASE_URL); they grant what the
server needs to the group role `veritas_runtime`, never more. The server logs in as a member
of that group (`veritas_app` here), which owns nothing, is no superuser and has no
BYPASSRLS, so PostgreSQL's row-level security applies to every query it runs. A superuser
session that merely `SET ROLE`s would not do: `RESET ROLE` undoes it.

Roles belong to the whole server, not to one database, and several databases (parallel test
runs, say) may create them at once: creation tolerates a concurrent twin.
"""

from __future__ import annotations

import logging

import psycopg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

RUNTIME_GROUP = "veritas_runtime"
RUNTIME_LOGIN = "veritas_app"

# Idempotent and safe against a concurrent twin: two sessions both seeing no role both try;
# the loser gets duplicate_object (or unique_violation from the catalog index) and moves on.
ENSURE_GROUP_SQL = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{RUNTIME_GROUP}') THEN
        BEGIN
            CREATE ROLE {RUNTIME_GROUP} NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN RAISE EXCEPTION
                'the role {RUNTIME_GROUP} is missing and this role may not create it'
                USING HINT = 'an administrator creates it first: see "Database roles" in README.md';
        END;
    END IF;
END $$;
"""


def _ensure_login_sql(login: str) -> str:
    return f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{login}') THEN
        BEGIN
            CREATE ROLE {login} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
                IN ROLE {RUNTIME_GROUP};
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    IF NOT pg_has_role('{login}', '{RUNTIME_GROUP}', 'MEMBER') THEN
        BEGIN
            GRANT {RUNTIME_GROUP} TO {login};
        EXCEPTION WHEN unique_violation THEN NULL;
        END;
    END IF;
END $$;
"""


def with_user(url: str, user: str) -> str:
    """The same server and database, logged in as `user` (no password: local trust or .pgpass)."""
    return make_url(url).set(username=user, password=None).render_as_string(hide_password=False)


def ensure_runtime_login(owner_url: str, login: str = RUNTIME_LOGIN) -> str:
    """Create the runtime group and a login in it when missing; returns the login's URL.

    For servers Veritas runs itself (the embedded one, the test suite's): an operator's
    server gets its roles from the README's recipe."""
    with psycopg.connect(owner_url.replace("postgresql+psycopg://", "postgresql://", 1),
                         autocommit=True) as conn:
        conn.execute(ENSURE_GROUP_SQL)
        conn.execute(_ensure_login_sql(login))
    return with_user(owner_url, login)


# Why a role would be too powerful for the runtime: each is a way around row-level security
# or the audit log's grants.
POWER_SQL = """
SELECT r.rolsuper, r.rolbypassrls,
       EXISTS (SELECT FROM pg_class c
               WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'm')
                 AND pg_has_role(current_user, c.relowner, 'USAGE')) AS owns_tables
FROM pg_roles r WHERE r.rolname = current_user
"""


def too_powerful(rolsuper: bool, rolbypassrls: bool, owns_tables: bool) -> list[str]:
    reasons = []
    if rolsuper:
        reasons.append("is a superuser")
    if rolbypassrls:
        reasons.append("has BYPASSRLS")
    if owns_tables:
        reasons.append("owns the tables (or is a member of their owner)")
    return reasons
