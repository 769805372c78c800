"""Classes, enrolment and set-password links.

Reserved in the migration chain so that work landing in parallel keeps one line of
revisions; it changes nothing until it is filled in.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
