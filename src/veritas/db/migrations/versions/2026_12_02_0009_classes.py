"""Classes, enrolment, exams assigned to classes, and set-password links.

- `classes`: a teacher's group of students (its owner is the teacher or admin who made it);
  `class_enrolments`: who is in it; `exam_classes`: the classes an exam is assigned to. An
  exam with no row there is open to every student, as before; an exam with rows is open only
  to students enrolled in one of its classes.
- `password_links`: one-time set-password links. Only the SHA-256 of the token is stored; a
  link is used up by the first password set through it and dies at `expires_at`.
- `users.password_hash` may be NULL: an account made from a class roster has no password
  until its student sets one through their link (login treats it as a wrong password).
- Row-level security, as in 0007: a teacher reads and writes the classes they own and their
  enrolments; a student reads their own enrolments. `exams` gets policies of its own: a
  student's session reads an exam only when it is open to them (no classes, or one of theirs)
  or they already have an attempt at it; teachers read every exam as before (their rights are
  checked against teacher_exam_permissions) and write the ones they created or may edit.
  Which classes an exam is assigned to is readable by every signed-in user: a student's
  session must see all of an exam's rows to tell a restricted exam from an open one, and the
  rows are two opaque ids. password_links are the system's alone.
- A teacher's students (veritas_taught_students) now include the students enrolled in the
  classes they own, so their names, profiles and figures are readable to that teacher.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

RUNTIME = "veritas_runtime"

TABLES = """
CREATE TABLE classes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id uuid NOT NULL REFERENCES users (id),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    subject text CHECK (length(subject) <= 200),
    term text CHECK (length(term) <= 100),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_classes_owner_created ON classes (owner_id, created_at);
CREATE INDEX ix_classes_created ON classes (created_at, id);

CREATE TABLE class_enrolments (
    class_id uuid NOT NULL REFERENCES classes (id) ON DELETE CASCADE,
    student_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    enrolled_by uuid REFERENCES users (id) ON DELETE SET NULL,
    enrolled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (class_id, student_id)
);
-- "Which classes is this student in?": every student query asks it.
CREATE INDEX ix_class_enrolments_student ON class_enrolments (student_id, class_id);

CREATE TABLE exam_classes (
    exam_id uuid NOT NULL REFERENCES exams (id) ON DELETE CASCADE,
    class_id uuid NOT NULL REFERENCES classes (id) ON DELETE CASCADE,
    PRIMARY KEY (exam_id, class_id)
);
CREATE INDEX ix_exam_classes_class ON exam_classes (class_id);

CREATE TABLE password_links (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL,
    purpose text NOT NULL CHECK (purpose IN ('setup', 'reset')),
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE UNIQUE INDEX uq_password_links_token_hash ON password_links (token_hash);
CREATE INDEX ix_password_links_user_unused ON password_links (user_id) WHERE used_at IS NULL;

ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
"""

FUNCTIONS = """
-- The exams closed to the calling student: assigned to classes, none of them theirs, and not
-- attempted by them. Read as the system, in a function the planner does not inline: the
-- policy on exams stays one set (computed once per query), and reads neither exam_attempts
-- nor the class tables as the caller, whose policies lead back to exams.
CREATE FUNCTION veritas_closed_exams() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
SET veritas.role = 'system' AS $$
    SELECT ec.exam_id FROM exam_classes ec
    GROUP BY ec.exam_id
    HAVING NOT bool_or(ec.class_id IN (
        SELECT class_id FROM class_enrolments WHERE student_id = veritas_caller_id()))
    EXCEPT
    SELECT exam_id FROM exam_attempts WHERE student_id = veritas_caller_id()
$$;
REVOKE ALL ON FUNCTION veritas_closed_exams() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION veritas_closed_exams() TO {runtime};

-- A teacher's students: those who attempted an exam the teacher may view, and those enrolled
-- in a class the teacher owns.
CREATE OR REPLACE FUNCTION veritas_taught_students() RETURNS SETOF uuid LANGUAGE sql STABLE AS $$
    SELECT a.student_id FROM exam_attempts a
    WHERE a.exam_id IN (SELECT * FROM veritas_taught_exams())
    UNION
    SELECT ce.student_id FROM class_enrolments ce JOIN classes c ON c.id = ce.class_id
    WHERE veritas_caller_role() = 'teacher' AND c.owner_id = veritas_caller_id()
$$;
"""

ORIGINAL_TAUGHT_STUDENTS = """
CREATE OR REPLACE FUNCTION veritas_taught_students() RETURNS SETOF uuid LANGUAGE sql STABLE AS $$
    SELECT a.student_id FROM exam_attempts a
    WHERE a.exam_id IN (SELECT * FROM veritas_taught_exams())
$$;
"""

ALL = "veritas_sees_all()"
OWN = "veritas_caller_id()"
TEACHER = "veritas_caller_role() = 'teacher'"
OWNED_CLASSES = f"(SELECT id FROM classes WHERE owner_id = {OWN})"
# The student visibility rule, as the application's queries state it too
# (veritas.exams.permissions.open_to_student), but for exams the student already attempted.
OPEN_TO_STUDENT = "id NOT IN (SELECT * FROM veritas_closed_exams())"
EDITABLE = (f"(creator_id = {OWN} OR id IN (SELECT exam_id FROM teacher_exam_permissions"
            f" WHERE teacher_id = {OWN} AND can_edit))")

# table: (who may read, who may write)
POLICIES = {
    "classes": (f"{ALL} OR ({TEACHER} AND owner_id = {OWN})",
                f"{ALL} OR ({TEACHER} AND owner_id = {OWN})"),
    "class_enrolments": (f"{ALL} OR student_id = {OWN} OR class_id IN {OWNED_CLASSES}",
                         f"{ALL} OR class_id IN {OWNED_CLASSES}"),
    "exam_classes": (f"{ALL} OR veritas_caller_role() IN ('teacher', 'student')",
                     f"{ALL} OR ({TEACHER} AND class_id IN {OWNED_CLASSES}"
                     " AND exam_id IN (SELECT * FROM veritas_taught_exams()))"),
    "exams": (f"{ALL} OR {TEACHER} OR (veritas_caller_role() = 'student' AND {OPEN_TO_STUDENT})",
              f"{ALL} OR ({TEACHER} AND {EDITABLE})"),
    "password_links": (ALL, ALL),
}


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(FUNCTIONS.format(runtime=RUNTIME))
    # The default privileges of 0007 granted the runtime SELECT, INSERT, UPDATE, DELETE on the
    # new tables; links are never deleted (a used one is evidence), only marked used.
    op.execute(f"REVOKE DELETE ON password_links FROM {RUNTIME}")
    # Writes get one policy per command rather than FOR ALL, which PostgreSQL would also
    # apply to reads: the write rule of exam_classes names the caller's exams, whose own read
    # rule names exam_classes, and the planner would inline that loop without end.
    for table, (read, write) in POLICIES.items():
        op.execute(f"""
        ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
        ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
        CREATE POLICY {table}_read ON {table} FOR SELECT USING ({read});
        CREATE POLICY {table}_insert ON {table} FOR INSERT WITH CHECK ({write});
        CREATE POLICY {table}_update ON {table} FOR UPDATE USING ({write}) WITH CHECK ({write});
        CREATE POLICY {table}_delete ON {table} FOR DELETE USING ({write});
        """)


def downgrade() -> None:
    op.execute("""
    ALTER TABLE exams NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE exams DISABLE ROW LEVEL SECURITY;
    DROP POLICY IF EXISTS exams_read ON exams;
    DROP POLICY IF EXISTS exams_insert ON exams;
    DROP POLICY IF EXISTS exams_update ON exams;
    DROP POLICY IF EXISTS exams_delete ON exams;
    """)
    op.execute(ORIGINAL_TAUGHT_STUDENTS)
    op.execute("""
    DROP FUNCTION IF EXISTS veritas_closed_exams();
    DROP TABLE IF EXISTS password_links, exam_classes, class_enrolments, classes;
    -- Accounts that never set a password get a value no password matches.
    UPDATE users SET password_hash = '!' WHERE password_hash IS NULL;
    ALTER TABLE users ALTER COLUMN password_hash SET NOT NULL;
    """)
