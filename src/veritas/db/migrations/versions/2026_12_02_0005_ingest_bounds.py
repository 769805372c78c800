"""Bounds on what one attempt can write: folded alerts, bounded drafts.

Anomalous events used to be alerts one by one, read straight from monitoring_events, so one
attempt sending thousands of them filled every teacher's list. `monitoring_alerts` holds one
row per (attempt, event type): how many anomalies of that type the attempt has had, when the
first and the latest arrived, the highest severity and score, and the latest description.
The ingestion writer keeps it in the same transaction as the events (monitoring/ingest.py);
existing anomalies are folded here. Draft bounds are settings and need no schema.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE monitoring_alerts (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        exam_attempt_id uuid NOT NULL REFERENCES exam_attempts (id) ON DELETE CASCADE,
        exam_id uuid NOT NULL REFERENCES exams (id) ON DELETE CASCADE,
        student_id uuid NOT NULL REFERENCES users (id),
        event_type text NOT NULL,
        severity event_severity NOT NULL,
        anomaly_score real CHECK (anomaly_score BETWEEN 0 AND 1),
        description text,
        count bigint NOT NULL CHECK (count > 0),
        first_at timestamptz NOT NULL,
        last_at timestamptz NOT NULL,
        CONSTRAINT uq_monitoring_alerts_attempt_type UNIQUE (exam_attempt_id, event_type)
    );
    -- The teacher's alert list: the exams they may analyze, latest first.
    CREATE INDEX ix_monitoring_alerts_exam_last ON monitoring_alerts (exam_id, last_at);
    -- The same list for an admin (every exam) and the live stream: by time alone.
    CREATE INDEX ix_monitoring_alerts_last ON monitoring_alerts (last_at);

    INSERT INTO monitoring_alerts (exam_attempt_id, exam_id, student_id, event_type, severity,
                                   anomaly_score, description, count, first_at, last_at)
    SELECT e.exam_attempt_id, a.exam_id, e.student_id, e.event_type, max(e.severity),
           max(e.anomaly_score),
           (array_agg(e.description ORDER BY e.server_timestamp DESC))[1],
           count(*), min(e.server_timestamp), max(e.server_timestamp)
    FROM monitoring_events e
    JOIN exam_attempts a ON a.id = e.exam_attempt_id AND a.started_at = e.attempt_started_at
    WHERE e.is_anomaly
    GROUP BY e.exam_attempt_id, a.exam_id, e.student_id, e.event_type;
    """)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS monitoring_alerts")
