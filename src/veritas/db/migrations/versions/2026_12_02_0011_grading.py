"""Per-question grades and the attempt's grading status.

Reserved in the migration chain so that work landing in parallel keeps one line of
revisions; it changes nothing until it is filled in.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
