"""Exam windows, attempt limits, shuffling, and per-student accommodations.

- `exams.opens_at`, `exams.closes_at`: the window in which students may start the exam (either
  may be NULL: no bound on that side; when both are set, closing comes after opening).
  `exams.max_attempts`: NULL for unlimited, else at least 1. `exams.shuffle_questions`,
  `exams.shuffle_options`: each attempt gets its own order, kept in the attempt's
  submission_data when it starts.
- `exam_accommodations`: a student's extra minutes and extra attempts on one exam (with a
  note for the teachers), applied to the attempts started after it is set. Row-level
  security as for the tables of 0007: a student reads their own rows (the start of an
  attempt computes their limit and time from them), a teacher those of the exams they teach;
  only a teacher who may edit the exam (or an admin, or the system) writes them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from alembic import op

from veritas.db.roles import RUNTIME_GROUP

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ALL = "veritas_sees_all()"
OWN = "veritas_caller_id()"
TAUGHT = "exam_id IN (SELECT * FROM veritas_taught_exams())"
# The creator holds a full permission row, so can_edit covers them too.
EDITABLE = ("veritas_caller_role() = 'teacher' AND exam_id IN (SELECT exam_id FROM"
            f" teacher_exam_permissions WHERE teacher_id = {OWN} AND can_edit)")
WRITE = f"{ALL} OR ({EDITABLE})"


def upgrade() -> None:
    op.execute(f"""
    ALTER TABLE exams
        ADD COLUMN opens_at timestamptz,
        ADD COLUMN closes_at timestamptz,
        ADD COLUMN max_attempts integer
            CONSTRAINT ck_exams_max_attempts CHECK (max_attempts >= 1),
        ADD COLUMN shuffle_questions boolean NOT NULL DEFAULT false,
        ADD COLUMN shuffle_options boolean NOT NULL DEFAULT false,
        ADD CONSTRAINT ck_exams_window CHECK (closes_at > opens_at);

    CREATE TABLE exam_accommodations (
        exam_id uuid NOT NULL
            CONSTRAINT fk_exam_accommodations_exam_id_exams REFERENCES exams (id)
            ON DELETE CASCADE,
        student_id uuid NOT NULL
            CONSTRAINT fk_exam_accommodations_student_id_users REFERENCES users (id)
            ON DELETE CASCADE,
        extra_minutes integer NOT NULL DEFAULT 0
            CONSTRAINT ck_exam_accommodations_extra_minutes
            CHECK (extra_minutes BETWEEN 0 AND 1440),
        extra_attempts integer NOT NULL DEFAULT 0
            CONSTRAINT ck_exam_accommodations_extra_attempts
            CHECK (extra_attempts BETWEEN 0 AND 100),
        note text CONSTRAINT ck_exam_accommodations_note CHECK (length(note) <= 2000),
        updated_by uuid
            CONSTRAINT fk_exam_accommodations_updated_by_users REFERENCES users (id)
            ON DELETE SET NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_exam_accommodations PRIMARY KEY (exam_id, student_id)
    );
    -- The teacher's list pages through an exam's rows by (created_at, student_id).
    CREATE INDEX ix_exam_accommodations_exam_created
        ON exam_accommodations (exam_id, created_at, student_id);
    CREATE INDEX ix_exam_accommodations_student ON exam_accommodations (student_id);

    GRANT SELECT, INSERT, UPDATE, DELETE ON exam_accommodations TO {RUNTIME_GROUP};

    ALTER TABLE exam_accommodations ENABLE ROW LEVEL SECURITY;
    ALTER TABLE exam_accommodations FORCE ROW LEVEL SECURITY;
    CREATE POLICY exam_accommodations_read ON exam_accommodations FOR SELECT
        USING ({ALL} OR student_id = {OWN} OR {TAUGHT});
    CREATE POLICY exam_accommodations_insert ON exam_accommodations FOR INSERT
        WITH CHECK ({WRITE});
    CREATE POLICY exam_accommodations_update ON exam_accommodations FOR UPDATE
        USING ({WRITE}) WITH CHECK ({WRITE});
    CREATE POLICY exam_accommodations_delete ON exam_accommodations FOR DELETE
        USING ({WRITE});
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE exam_accommodations;
    ALTER TABLE exams DROP CONSTRAINT ck_exams_window,
        DROP COLUMN shuffle_options, DROP COLUMN shuffle_questions,
        DROP COLUMN max_attempts, DROP COLUMN closes_at, DROP COLUMN opens_at;
    """)
