"""An attempt's analysis status, so a failed analysis is visible rather than silent.

`exam_attempts.analysis_status`: NULL while no analysis is due (the attempt is in progress,
or was imported with none asked for), `pending` from the moment its analysis is queued (in
the transaction that queues it), `done` once an analysis is stored, `failed` when the job
gave up for good (jobs.py). A new column of an existing table: the runtime role's table
grants and the row-level security policies of 0007 already cover it.

Existing attempts: `done` where an analysis is stored; otherwise `failed` or `pending` by
their analysis job's state in the job queue.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE exam_attempts ADD COLUMN analysis_status text
        CONSTRAINT ck_exam_attempts_analysis_status
        CHECK (analysis_status IN ('pending', 'done', 'failed'));
    -- /metrics counts the unsettled ones on every scrape; done is nearly every row.
    CREATE INDEX ix_exam_attempts_analysis_unsettled ON exam_attempts (analysis_status)
        WHERE analysis_status IN ('pending', 'failed');

    UPDATE exam_attempts a SET analysis_status = 'done'
    WHERE EXISTS (SELECT 1 FROM behavior_analysis b WHERE b.exam_attempt_id = a.id);
    UPDATE exam_attempts a SET analysis_status = job.state
    FROM (
        SELECT DISTINCT ON (args->>'attempt_id') args->>'attempt_id' AS attempt_id,
               CASE WHEN status::text = 'failed' THEN 'failed' ELSE 'pending' END AS state
        FROM procrastinate_jobs
        WHERE task_name = 'veritas.analyze_attempt' AND status::text IN ('todo', 'doing', 'failed')
        ORDER BY args->>'attempt_id', id DESC
    ) job
    WHERE a.id::text = job.attempt_id AND a.analysis_status IS NULL
      AND a.status <> 'in_progress';
    """)


def downgrade() -> None:
    op.execute("ALTER TABLE exam_attempts DROP COLUMN analysis_status")
