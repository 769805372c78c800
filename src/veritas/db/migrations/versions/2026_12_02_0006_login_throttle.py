"""The login throttle's counters, reserved before the password is checked.

One row per throttled key: a (account, client address) pair, a client address, or an
address's registrations (veritas.auth.throttle). `hits` counts failures (or registrations),
`last_hit` starts the growing delay and `window_started` the registration window. Rows are
locked with SELECT ... FOR UPDATE, so concurrent attempts on one key take turns.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE throttle_counters (
            key text PRIMARY KEY,
            hits integer NOT NULL DEFAULT 0,
            window_started timestamptz NOT NULL DEFAULT clock_timestamp(),
            last_hit timestamptz NOT NULL DEFAULT clock_timestamp()
        )
    """)
    # The sweeper forgets idle keys by this column.
    op.execute("CREATE INDEX ix_throttle_counters_last_hit ON throttle_counters (last_hit)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS throttle_counters")
