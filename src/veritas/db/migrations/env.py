"""Alembic runs migrations over one synchronous psycopg connection."""

from alembic import context
from sqlalchemy import create_engine, pool

from veritas.config import asyncpg_dsn

url = context.config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("veritas migrations need sqlalchemy.url (set by veritas.db.migrate)")

# The owner runs migrations; FORCEd row-level security applies to it too (unless it is a
# superuser), so a migration that touches rows does so as the system identity.
engine = create_engine(
    asyncpg_dsn(url).replace("postgresql://", "postgresql+psycopg://", 1), poolclass=pool.NullPool,
    connect_args={"options": "-c veritas.role=system"},
)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
