"""Provisional and final integrity scores.

Reserved in the migration chain so that work landing in parallel keeps one line of
revisions; it changes nothing until it is filled in.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
