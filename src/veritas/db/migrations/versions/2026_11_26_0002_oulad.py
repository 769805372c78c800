"""Source keys for imported rows: users, exams and attempts get a nullable external_ref.

An importer (`veritas import oulad`, later an LMS sync) writes each row with a key naming
where it came from, e.g. 'oulad:student:11391' or 'oulad:result:1752:11391', and inserts with
ON CONFLICT (external_ref) DO NOTHING, so running an import twice adds nothing. A plain
column with a unique index is used rather than a key inside `metadata`: ON CONFLICT can infer
it without repeating an expression, and the index is a small btree on text. Rows created in
the product itself leave it NULL, and NULLs never conflict, so they are unaffected.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("users", "exams", "exam_attempts")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN external_ref text")
        op.execute(f"CREATE UNIQUE INDEX uq_{table}_external_ref ON {table} (external_ref)")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP INDEX IF EXISTS uq_{table}_external_ref")
        op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS external_ref")
