"""Exam windows, attempt limits, shuffling, result visibility and accommodations.

Reserved in the migration chain so that work landing in parallel keeps one line of
revisions; it changes nothing until it is filled in.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
