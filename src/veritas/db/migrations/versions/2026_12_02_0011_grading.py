"""Per-question grades, the attempt's grading status, and when students see their results.

- `question_grades`: one row per graded question of an attempt (the points a teacher awarded,
  their feedback, who and when). A regrade replaces the row; the audit log keeps the history
  (`grade_question`, with the old and new points). Row-level security as for the other
  tables of 0007: a student reads the grades of their own attempts, a teacher those of the
  exams they teach; only a teacher of the exam (or an admin, or the system) writes, and only
  under their own name. The runtime may not delete grades.
- `exam_attempts.grading_status`: `pending` while an essay or short-text answer of a
  completed attempt has no awarded points, else `graded`; NULL while the attempt is not
  completed, and for attempts imported with no questions (OULAD), which Veritas cannot grade.
  Kept with the score by the grading service, in the transaction that changes either. Existing
  completed attempts get theirs from their questions (no grade exists yet).
- `exams.show_results`: `never` (the default, what students saw before: totals only),
  `after_submit` or `after_close`.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from alembic import op

from veritas.db.roles import RUNTIME_GROUP

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ALL = "veritas_sees_all()"
TAUGHT = "exam_attempt_id IN (SELECT * FROM veritas_taught_attempts())"
OWN_ATTEMPTS = ("exam_attempt_id IN (SELECT id FROM exam_attempts"
                " WHERE student_id = veritas_caller_id())")


def upgrade() -> None:
    op.execute(f"""
    ALTER TABLE exams ADD COLUMN show_results text NOT NULL DEFAULT 'never'
        CONSTRAINT ck_exams_show_results
        CHECK (show_results IN ('never', 'after_submit', 'after_close'));

    ALTER TABLE exam_attempts ADD COLUMN grading_status text
        CONSTRAINT ck_exam_attempts_grading_status
        CHECK (grading_status IN ('pending', 'graded'));
    -- The teachers' grading queue (GET /api/teacher/grading), oldest submission first; only
    -- the attempts waiting for a grade are in it.
    CREATE INDEX ix_exam_attempts_grading_pending ON exam_attempts (exam_id, completed_at, id)
        WHERE grading_status = 'pending';

    CREATE TABLE question_grades (
        exam_attempt_id uuid NOT NULL
            CONSTRAINT fk_question_grades_exam_attempt_id_exam_attempts
            REFERENCES exam_attempts (id),
        question_id text NOT NULL,
        -- 10,000 is the most a question may be worth; NaN and infinity fail this too.
        points double precision NOT NULL
            CONSTRAINT ck_question_grades_points CHECK (points >= 0 AND points <= 10000),
        feedback text CONSTRAINT ck_question_grades_feedback CHECK (length(feedback) <= 20000),
        graded_by uuid NOT NULL
            CONSTRAINT fk_question_grades_graded_by_users REFERENCES users (id),
        graded_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_question_grades PRIMARY KEY (exam_attempt_id, question_id)
    );

    GRANT SELECT, INSERT, UPDATE ON question_grades TO {RUNTIME_GROUP};
    -- Default privileges (0007) also granted DELETE: a grade is replaced, never removed.
    REVOKE DELETE, TRUNCATE ON question_grades FROM {RUNTIME_GROUP};

    ALTER TABLE question_grades ENABLE ROW LEVEL SECURITY;
    ALTER TABLE question_grades FORCE ROW LEVEL SECURITY;
    CREATE POLICY question_grades_read ON question_grades FOR SELECT
        USING ({ALL} OR {TAUGHT} OR {OWN_ATTEMPTS});
    CREATE POLICY question_grades_write ON question_grades FOR ALL
        USING ({ALL} OR {TAUGHT})
        WITH CHECK ({ALL} OR (graded_by = veritas_caller_id() AND {TAUGHT}));

    UPDATE exam_attempts a SET grading_status = CASE WHEN EXISTS (
            SELECT 1 FROM jsonb_array_elements(a.submission_data->'questions') q
            WHERE q->>'type' IN ('essay', 'short_text')
        ) THEN 'pending' ELSE 'graded' END
    WHERE a.status = 'completed' AND jsonb_typeof(a.submission_data->'questions') = 'array';
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE question_grades;
    ALTER TABLE exam_attempts DROP COLUMN grading_status;
    ALTER TABLE exams DROP COLUMN show_results;
    """)
