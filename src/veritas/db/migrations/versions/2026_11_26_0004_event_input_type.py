"""A composite type for the rows the ingestion writer sends: one array instead of eleven.

The group-commit writer (veritas.monitoring.ingest) sends each flush as one parameter,
`unnest($2::monitoring_event_in[])`. asyncpg checks every element of an array parameter
against several abstract base classes before encoding it, so eleven parallel column arrays
cost ~10 us of Python per event and one array of records ~6 us (PostgreSQL's cost is the
same). Fields are in the order of veritas.monitoring.ingest.Row; `is_anomaly` is not sent
(it is `anomaly_score IS NOT NULL`), nor are the student and the partition key (they come
from the attempt row the statement locks).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TYPE monitoring_event_in AS (
            id uuid,
            exam_attempt_id uuid,
            event_id uuid,
            event_type text,
            severity event_severity,
            data_payload jsonb,
            anomaly_score real,
            description text,
            analysis_notes text,
            client_timestamp timestamptz
        )
    """)


def downgrade() -> None:
    op.execute("DROP TYPE IF EXISTS monitoring_event_in")
