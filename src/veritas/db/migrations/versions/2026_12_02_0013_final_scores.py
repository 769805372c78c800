"""Provisional and final integrity scores.

An integrity score is computed against the exam's population of attempts. One computed
while that population is still growing is `provisional`; once the exam settles, its attempts
are rescored as one batch against the whole population and their scores become `final`.

- `score_status` (`provisional`, `final`; NULL without an integrity score) on
  behavior_analysis, mirrored as `integrity_score_status` on exam_attempts like the score,
  and on analysis_alerts for the low_integrity alerts that stand on a score.
- `integrity_populations`: per exam, the population its final scores were computed against
  (see veritas.analysis.final_scores). Only the system identity (jobs) reads or writes it.
- A partial index finds the exams that still have provisional scores.

Existing scores were computed the old way, against whichever attempts had been analysed
before them, so they are provisional; the worker's settle sweep rescores their exams. An
analysis stored by an institution's own module (`external:`) is final: Veritas never rescores
it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

RUNTIME = "veritas_runtime"
STATUSES = "('provisional', 'final')"


def upgrade() -> None:
    op.execute(f"""
    ALTER TABLE behavior_analysis ADD COLUMN score_status text
        CONSTRAINT ck_behavior_analysis_score_status CHECK (score_status IN {STATUSES});
    ALTER TABLE exam_attempts ADD COLUMN integrity_score_status text
        CONSTRAINT ck_exam_attempts_integrity_score_status
        CHECK (integrity_score_status IN {STATUSES});
    ALTER TABLE analysis_alerts ADD COLUMN score_status text
        CONSTRAINT ck_analysis_alerts_score_status CHECK (score_status IN {STATUSES});

    UPDATE behavior_analysis
    SET score_status = CASE WHEN analysis_version LIKE 'external:%' THEN 'final'
                            ELSE 'provisional' END
    WHERE integrity_score IS NOT NULL;
    UPDATE exam_attempts a SET integrity_score_status = b.score_status
    FROM behavior_analysis b
    WHERE b.exam_attempt_id = a.id AND b.score_status IS NOT NULL;
    UPDATE analysis_alerts l SET score_status = a.integrity_score_status
    FROM exam_attempts a
    WHERE a.id = l.exam_attempt_id AND l.kind = 'low_integrity';

    -- The settle sweep and the check after each analysis look for exactly these rows.
    CREATE INDEX ix_exam_attempts_provisional ON exam_attempts (exam_id)
        WHERE integrity_score_status = 'provisional';

    CREATE TABLE integrity_populations (
        exam_id uuid NOT NULL,
        version integer NOT NULL,
        reason text NOT NULL,
        members jsonb NOT NULL,
        signals jsonb NOT NULL,
        settled_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_integrity_populations PRIMARY KEY (exam_id),
        CONSTRAINT fk_integrity_populations_exam_id_exams FOREIGN KEY (exam_id)
            REFERENCES exams (id) ON DELETE CASCADE
    );
    GRANT SELECT, INSERT, UPDATE, DELETE ON integrity_populations TO {RUNTIME};
    -- Attempts' signals by attempt id: the system identity's alone, like the jobs that use it.
    ALTER TABLE integrity_populations ENABLE ROW LEVEL SECURITY;
    ALTER TABLE integrity_populations FORCE ROW LEVEL SECURITY;
    CREATE POLICY integrity_populations_read ON integrity_populations FOR SELECT
        USING (veritas_sees_all());
    CREATE POLICY integrity_populations_write ON integrity_populations FOR ALL
        USING (veritas_sees_all()) WITH CHECK (veritas_sees_all());
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE integrity_populations;
    DROP INDEX ix_exam_attempts_provisional;
    ALTER TABLE analysis_alerts DROP COLUMN score_status;
    ALTER TABLE exam_attempts DROP COLUMN integrity_score_status;
    ALTER TABLE behavior_analysis DROP COLUMN score_status;
    """)
