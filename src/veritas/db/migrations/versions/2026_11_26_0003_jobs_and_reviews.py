"""Job queue (procrastinate's schema), review decisions, analysis alerts and view freshness.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The analysis jobs live in PostgreSQL (procrastinate), so they survive restarts and can be
    # enqueued in the same transaction as the submit that causes them. Its schema is applied
    # verbatim through the driver without parameters, so its '%' signs stay literal.
    with op.get_bind().connection.cursor() as cursor:
        cursor.execute(SchemaManager.get_schema())
    op.execute("""
    CREATE TYPE review_decision AS ENUM ('acknowledged', 'confirmed', 'dismissed');

    -- Decisions are immutable: a new decision supersedes, none is ever edited or deleted.
    CREATE TABLE review_decisions (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        exam_attempt_id uuid NOT NULL REFERENCES exam_attempts (id) ON DELETE CASCADE,
        alert_id uuid,
        reviewer_id uuid NOT NULL REFERENCES users (id),
        decision review_decision NOT NULL,
        note text,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX ix_review_decisions_attempt ON review_decisions (exam_attempt_id, created_at);

    -- Alerts that come from an analysis (low integrity, high risk, telemetry gaps); alerts
    -- from single anomalous events are read straight from monitoring_events.
    CREATE TABLE analysis_alerts (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        exam_attempt_id uuid NOT NULL REFERENCES exam_attempts (id) ON DELETE CASCADE,
        exam_id uuid NOT NULL REFERENCES exams (id) ON DELETE CASCADE,
        student_id uuid NOT NULL REFERENCES users (id),
        kind text NOT NULL,
        severity event_severity NOT NULL,
        description text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        UNIQUE (exam_attempt_id, kind)
    );
    CREATE INDEX ix_analysis_alerts_exam ON analysis_alerts (exam_id, severity, created_at);

    -- When each materialized view was last refreshed, so responses can say how fresh they are.
    CREATE TABLE view_refreshes (
        view_name text PRIMARY KEY,
        refreshed_at timestamptz NOT NULL
    );
    INSERT INTO view_refreshes VALUES ('exam_performance_summary', now()),
                                      ('student_risk_summary', now());
    """)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS view_refreshes, analysis_alerts, review_decisions;"
               " DROP TYPE IF EXISTS review_decision;")

