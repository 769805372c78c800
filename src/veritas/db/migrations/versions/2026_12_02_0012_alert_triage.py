"""Alert triage: each alert's status (`open`, `acknowledged`, `dismissed`) and its history.

- Both kinds of alert (monitoring_alerts, analysis_alerts) gain `status` (default `open`)
  and the latest change's `status_note`, `status_by` (NULL: Veritas itself) and `status_at`.
- `alert_status_changes` keeps every change: who, when, from, to, note. A trigger writes it
  whenever `status_at` moves, so no writer can change a status without leaving its line;
  the runtime may only read and append it.
- A repeat at a higher severity reopens an acknowledged or dismissed alert (a trigger, so the
  ingestion writer, the analysis and any later writer all keep the rule): the teacher judged
  the alert at a lower severity. Repeats at the same or a lower severity only grow the count.
- Teachers holding `can_view_analytics` on the alert's exam may update an alert's status
  columns and nothing else: a row-level security policy for UPDATE, and a trigger refusing
  any other column (or a change under another user's name) from anyone but an admin or the
  system identity.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from alembic import op

from veritas.db.roles import RUNTIME_GROUP

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLES = ("monitoring_alerts", "analysis_alerts")
STATUSES = "('open', 'acknowledged', 'dismissed')"
NOTE_LIMIT = 2000  # the API's bound (alerts/schemas.py), enforced here too
ALL = "veritas_sees_all()"
ANALYZED = "(SELECT * FROM veritas_analyzed_exams())"
STATUS_COLUMNS = "ARRAY['status', 'status_note', 'status_by', 'status_at']"


def _alert_table(table: str) -> str:
    return f"""
    ALTER TABLE {table}
        ADD COLUMN status text NOT NULL DEFAULT 'open'
            CONSTRAINT ck_{table}_status CHECK (status IN {STATUSES}),
        ADD COLUMN status_note text
            CONSTRAINT ck_{table}_status_note CHECK (length(status_note) <= {NOTE_LIMIT}),
        ADD COLUMN status_by uuid,
        ADD COLUMN status_at timestamptz;
    -- The live stream polls for alerts whose status changed since its last poll.
    CREATE INDEX ix_{table}_status_at ON {table} (status_at) WHERE status_at IS NOT NULL;

    CREATE POLICY {table}_triage ON {table} FOR UPDATE
        USING (exam_id IN {ANALYZED}) WITH CHECK (exam_id IN {ANALYZED});
    CREATE TRIGGER {table}_triage_only BEFORE UPDATE ON {table} FOR EACH ROW
        WHEN (NOT veritas_sees_all()) EXECUTE FUNCTION veritas_alert_triage_only();
    CREATE TRIGGER {table}_reopen BEFORE UPDATE OF severity ON {table} FOR EACH ROW
        WHEN (NEW.severity > OLD.severity AND OLD.status <> 'open')
        EXECUTE FUNCTION veritas_alert_reopen();
    CREATE TRIGGER {table}_status_logged AFTER UPDATE ON {table} FOR EACH ROW
        WHEN (NEW.status_at IS DISTINCT FROM OLD.status_at)
        EXECUTE FUNCTION veritas_alert_status_logged();
    """


def upgrade() -> None:
    op.execute(f"""
    -- The exams on which the calling teacher holds can_view_analytics (the API's rule for
    -- alerts: exams.permissions.ExamRight.analytics).
    CREATE FUNCTION veritas_analyzed_exams() RETURNS SETOF uuid LANGUAGE sql STABLE AS $$
        SELECT p.exam_id FROM teacher_exam_permissions p
        WHERE veritas_caller_role() = 'teacher' AND p.teacher_id = veritas_caller_id()
          AND p.can_view_analytics
    $$;

    CREATE TABLE alert_status_changes (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        -- An alert of monitoring_alerts or analysis_alerts (ids are unique across both).
        alert_id uuid NOT NULL,
        exam_attempt_id uuid NOT NULL
            CONSTRAINT fk_alert_status_changes_exam_attempt_id_exam_attempts
            REFERENCES exam_attempts (id) ON DELETE CASCADE,
        exam_id uuid NOT NULL
            CONSTRAINT fk_alert_status_changes_exam_id_exams
            REFERENCES exams (id) ON DELETE CASCADE,
        -- NULL: Veritas itself (a repeat at a higher severity reopened the alert). No foreign
        -- key, as in audit_logs: the line outlives its author's account.
        changed_by uuid,
        from_status text NOT NULL CONSTRAINT ck_alert_status_changes_from_status
            CHECK (from_status IN {STATUSES}),
        to_status text NOT NULL CONSTRAINT ck_alert_status_changes_to_status
            CHECK (to_status IN {STATUSES}),
        note text CONSTRAINT ck_alert_status_changes_note CHECK (length(note) <= {NOTE_LIMIT}),
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX ix_alert_status_changes_alert_id ON alert_status_changes (alert_id, created_at);

    -- History is appended by the trigger below, never edited.
    GRANT SELECT, INSERT ON alert_status_changes TO {RUNTIME_GROUP};
    REVOKE UPDATE, DELETE, TRUNCATE ON alert_status_changes FROM {RUNTIME_GROUP};
    ALTER TABLE alert_status_changes ENABLE ROW LEVEL SECURITY;
    ALTER TABLE alert_status_changes FORCE ROW LEVEL SECURITY;
    -- Teachers of the exam read it (students never see triage); a teacher appends only
    -- under their own name, on an exam they analyze.
    CREATE POLICY alert_status_changes_read ON alert_status_changes FOR SELECT
        USING ({ALL} OR exam_id IN (SELECT * FROM veritas_taught_exams()));
    CREATE POLICY alert_status_changes_write ON alert_status_changes FOR INSERT
        WITH CHECK ({ALL} OR (changed_by = veritas_caller_id() AND exam_id IN {ANALYZED}));

    -- A teacher (or anyone short of an admin and the system) changes the status columns
    -- alone, and only in their own name.
    CREATE FUNCTION veritas_alert_triage_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF to_jsonb(NEW) - {STATUS_COLUMNS} <> to_jsonb(OLD) - {STATUS_COLUMNS}
           OR NEW.status_by IS DISTINCT FROM veritas_caller_id() THEN
            RAISE EXCEPTION 'only an alert''s status may be changed, in the caller''s name'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END $$;

    -- A repeat at a higher severity reopens an alert a teacher had set aside.
    CREATE FUNCTION veritas_alert_reopen() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.status := 'open';
        NEW.status_by := NULL;
        NEW.status_at := clock_timestamp();
        NEW.status_note := format('reopened: the severity rose from %s to %s',
                                  OLD.severity, NEW.severity);
        RETURN NEW;
    END $$;

    -- Every change of status (status_at moved) leaves its line in the history.
    CREATE FUNCTION veritas_alert_status_logged() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO alert_status_changes (alert_id, exam_attempt_id, exam_id, changed_by,
                                          from_status, to_status, note, created_at)
        VALUES (NEW.id, NEW.exam_attempt_id, NEW.exam_id, NEW.status_by, OLD.status,
                NEW.status, NEW.status_note, NEW.status_at);
        RETURN NULL;
    END $$;
    """)
    for table in TABLES:
        op.execute(_alert_table(table))


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"""
        DROP TRIGGER IF EXISTS {table}_status_logged ON {table};
        DROP TRIGGER IF EXISTS {table}_reopen ON {table};
        DROP TRIGGER IF EXISTS {table}_triage_only ON {table};
        DROP POLICY IF EXISTS {table}_triage ON {table};
        DROP INDEX IF EXISTS ix_{table}_status_at;
        ALTER TABLE {table} DROP COLUMN IF EXISTS status, DROP COLUMN IF EXISTS status_note,
            DROP COLUMN IF EXISTS status_by, DROP COLUMN IF EXISTS status_at;
        """)
    op.execute("""
    DROP TABLE IF EXISTS alert_status_changes;
    DROP FUNCTION IF EXISTS veritas_alert_status_logged(), veritas_alert_reopen(),
        veritas_alert_triage_only(), veritas_analyzed_exams();
    """)
