"""PostgreSQL stops trusting the application: runtime role, row-level security, append-only audit.

- Grants: the group role `veritas_runtime` (created here when missing and allowed) may read
  and write what the server needs and no more: no DDL, no ownership, audit_logs only
  SELECT and INSERT, review_decisions immutable, event partitions INSERT only. Default
  privileges give tables of later migrations the same grants.
- Row-level security, ENABLEd and FORCEd, on every table with personal data. The policies
  read the caller that veritas.db.unit_of_work sets in each transaction (`veritas.user_id`,
  `veritas.role`): a student sees their own rows, a teacher the rows of exams they created or
  hold a grant on, an admin and the system identity (jobs, the ingestion writer, the CLI)
  everything, and a transaction that names nobody sees nothing.
- Functions the runtime may call to do what only the owner can: create an event partition,
  refresh the materialized views. SECURITY DEFINER, with a fixed search_path.
- audit_logs is append-only (a trigger refuses UPDATE, DELETE and TRUNCATE, whoever asks)
  and hash-chained: at commit each row is sealed with its position, the previous row's hash
  and its own, so `veritas audit verify` finds a row edited or removed even by the owner.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from alembic import op

from veritas.db.roles import ENSURE_GROUP_SQL

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

RUNTIME = "veritas_runtime"

# The canonical text of an audit row that its hash covers; veritas.audit.chain reads the
# same expression (with {seq} = chain_seq) to verify. Times in UTC whatever the session's zone.
AUDIT_ROW_TEXT = (
    "jsonb_build_array({seq}, a.id, a.user_id, a.action, a.resource_type, a.resource_id,"
    " a.details, a.ip_address::text, a.user_agent,"
    " to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'))::text"
)

IDENTITY_FUNCTIONS = """
-- Who the transaction's caller is (veritas.db.unit_of_work sets both, transaction-local).
CREATE FUNCTION veritas_caller_role() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('veritas.role', true), ''), 'anonymous')
$$;
CREATE FUNCTION veritas_caller_id() RETURNS uuid LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('veritas.user_id', true), '')::uuid
$$;
-- Admins, and the system identity of jobs, the ingestion writer and the CLI.
CREATE FUNCTION veritas_sees_all() RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT veritas_caller_role() IN ('admin', 'system')
$$;
-- What the caller teaches, as sets: a policy asks `x IN (SELECT * FROM ...)`, which PostgreSQL
-- computes once per query into a hash (a function holding EXISTS would run once per row).
-- Exams: created by the caller, or granted to them.
CREATE FUNCTION veritas_taught_exams() RETURNS SETOF uuid LANGUAGE sql STABLE AS $$
    SELECT p.exam_id FROM teacher_exam_permissions p
    WHERE veritas_caller_role() = 'teacher' AND p.teacher_id = veritas_caller_id()
    UNION
    SELECT e.id FROM exams e
    WHERE veritas_caller_role() = 'teacher' AND e.creator_id = veritas_caller_id()
$$;
-- Attempts of those exams, and the students who made them.
CREATE FUNCTION veritas_taught_attempts() RETURNS SETOF uuid LANGUAGE sql STABLE AS $$
    SELECT a.id FROM exam_attempts a WHERE a.exam_id IN (SELECT * FROM veritas_taught_exams())
$$;
CREATE FUNCTION veritas_taught_students() RETURNS SETOF uuid LANGUAGE sql STABLE AS $$
    SELECT a.student_id FROM exam_attempts a
    WHERE a.exam_id IN (SELECT * FROM veritas_taught_exams())
$$;
"""

# table: (who may read, who may write). Reads are the product's visibility rules; writes are
# narrower where the product never lets a reader write.
ALL = "veritas_sees_all()"
OWN = "veritas_caller_id()"
EXAMS = "(SELECT * FROM veritas_taught_exams())"
ATTEMPTS = "(SELECT * FROM veritas_taught_attempts())"
STUDENTS = "(SELECT * FROM veritas_taught_students())"
POLICIES = {
    "users": (
        f"{ALL} OR id = {OWN} OR (veritas_caller_role() = 'teacher'"
        f" AND (role <> 'student' OR id IN {STUDENTS}))",
        f"{ALL} OR id = {OWN}",
    ),
    "student_profiles": (
        f"{ALL} OR user_id = {OWN} OR user_id IN {STUDENTS}",
        f"{ALL} OR user_id = {OWN}",
    ),
    "teacher_profiles": (
        f"{ALL} OR user_id = {OWN} OR veritas_caller_role() = 'teacher'",
        f"{ALL} OR user_id = {OWN}",
    ),
    "exam_attempts": (
        f"{ALL} OR student_id = {OWN} OR exam_id IN {EXAMS}",
        f"{ALL} OR student_id = {OWN} OR exam_id IN {EXAMS}",
    ),
    "monitoring_events": (
        f"{ALL} OR student_id = {OWN} OR exam_attempt_id IN {ATTEMPTS}",
        f"{ALL} OR student_id = {OWN}",
    ),
    "behavior_analysis": (
        f"{ALL} OR student_id = {OWN} OR exam_attempt_id IN {ATTEMPTS}",
        ALL,
    ),
    "performance_metrics": (
        f"{ALL} OR student_id = {OWN} OR student_id IN {STUDENTS}",
        f"{ALL} OR student_id = {OWN}",
    ),
    "review_decisions": (
        f"{ALL} OR exam_attempt_id IN {ATTEMPTS}"
        f" OR exam_attempt_id IN (SELECT id FROM exam_attempts WHERE student_id = {OWN})",
        f"{ALL} OR (reviewer_id = {OWN} AND exam_attempt_id IN {ATTEMPTS})",
    ),
    "analysis_alerts": (
        f"{ALL} OR student_id = {OWN} OR exam_id IN {EXAMS}",
        ALL,
    ),
    # Anomalies folded per attempt and event type (migration 0005); the writer keeps them.
    "monitoring_alerts": (
        f"{ALL} OR student_id = {OWN} OR exam_id IN {EXAMS}",
        ALL,
    ),
}


def _grants() -> str:
    return f"""
    GRANT USAGE ON SCHEMA public TO {RUNTIME};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {RUNTIME};
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {RUNTIME};
    -- Tables and sequences later migrations create (as the owner) get the same.
    ALTER DEFAULT PRIVILEGES IN SCHEMA public
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {RUNTIME};
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {RUNTIME};

    REVOKE ALL ON alembic_version FROM {RUNTIME};
    REVOKE UPDATE, DELETE ON audit_logs FROM {RUNTIME};
    -- Decisions are immutable: a new one supersedes.
    REVOKE UPDATE, DELETE ON review_decisions FROM {RUNTIME};
    REVOKE INSERT, UPDATE, DELETE ON exam_performance_summary, student_risk_summary
        FROM {RUNTIME};
    -- Events are written once and read through the parent (and its policies) only.
    REVOKE DELETE ON monitoring_events FROM {RUNTIME};
    """


PARTITIONS = f"""
-- Creates the month partition holding `started`, if it is missing, as the owner. Serialized
-- by an advisory lock so concurrent writers in several processes never race on the catalog.
-- A partition has no policies of its own, so the runtime may only INSERT (COPY) into it;
-- reads go through monitoring_events, whose policies apply.
CREATE OR REPLACE FUNCTION veritas_ensure_event_partition(started timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    month_start timestamptz := date_trunc('month', started AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name text := 'monitoring_events_' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('veritas_event_partitions'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF monitoring_events FOR VALUES FROM (%L) TO (%L)',
                name, month_start, month_start + interval '1 month');
            EXECUTE format('REVOKE ALL ON %I FROM {RUNTIME}', name);
            EXECUTE format('GRANT INSERT ON %I TO {RUNTIME}', name);
        END IF;
    END IF;
    RETURN name;
END $$;
REVOKE ALL ON FUNCTION veritas_ensure_event_partition(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION veritas_ensure_event_partition(timestamptz) TO {RUNTIME};

DO $$
DECLARE part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits
                WHERE inhparent = 'monitoring_events'::regclass LOOP
        EXECUTE format('REVOKE ALL ON %s FROM {RUNTIME}', part);
        EXECUTE format('GRANT INSERT ON %s TO {RUNTIME}', part);
    END LOOP;
END $$;

-- The exam of an attempt, whoever asks: a teacher whose policies hide an attempt is told
-- 403 for another teacher's exam and 404 for an unknown id, as before row-level security.
-- It reveals that an attempt id exists and its exam's id, nothing of the student.
CREATE FUNCTION veritas_attempt_exam(attempt uuid) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
SET veritas.role = 'system' AS $$
    SELECT exam_id FROM exam_attempts WHERE id = attempt
$$;
REVOKE ALL ON FUNCTION veritas_attempt_exam(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION veritas_attempt_exam(uuid) TO {RUNTIME};

-- Refreshing a materialized view needs its owner: the job and the CLI call this.
CREATE FUNCTION veritas_refresh_views() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
SET veritas.role = 'system' AS $$
DECLARE view text;
BEGIN
    FOREACH view IN ARRAY ARRAY['exam_performance_summary', 'student_risk_summary'] LOOP
        EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %I', view);
        INSERT INTO view_refreshes VALUES (view, now())
        ON CONFLICT (view_name) DO UPDATE SET refreshed_at = excluded.refreshed_at;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION veritas_refresh_views() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION veritas_refresh_views() TO {RUNTIME};
"""


def _row_level_security() -> str:
    parts = []
    for table, (read, write) in POLICIES.items():
        parts.append(f"""
        ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
        ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
        CREATE POLICY {table}_read ON {table} FOR SELECT USING ({read});
        CREATE POLICY {table}_write ON {table} FOR ALL USING ({write}) WITH CHECK ({write});
        """)
    # The audit log: everyone appends (a failed login is evidence whoever caused it); a user
    # reads their own records, admins and the system all; only the seal updates (see below).
    parts.append(f"""
        ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
        ALTER TABLE audit_logs FORCE ROW LEVEL SECURITY;
        CREATE POLICY audit_logs_read ON audit_logs FOR SELECT
            USING ({ALL} OR user_id = {OWN});
        CREATE POLICY audit_logs_append ON audit_logs FOR INSERT WITH CHECK (true);
        CREATE POLICY audit_logs_seal ON audit_logs FOR UPDATE
            USING (veritas_caller_role() = 'system') WITH CHECK (true);
        """)
    return "\n".join(parts)


AUDIT_CHAIN = f"""
-- An audit record outlives its user: the id stays as written, with no cascade to rewrite it.
DO $$
DECLARE fk text;
BEGIN
    FOR fk IN SELECT conname FROM pg_constraint
              WHERE conrelid = 'audit_logs'::regclass AND contype = 'f' LOOP
        EXECUTE format('ALTER TABLE audit_logs DROP CONSTRAINT %I', fk);
    END LOOP;
END $$;

ALTER TABLE audit_logs ADD COLUMN chain_seq bigint, ADD COLUMN prev_hash bytea,
    ADD COLUMN row_hash bytea;
CREATE UNIQUE INDEX uq_audit_logs_chain_seq ON audit_logs (chain_seq);

-- The chain's last link. Its row lock orders the seals: a transaction holds it only from
-- its commit's start to its end, so audited transactions serialize for a moment, not for
-- their whole length.
CREATE TABLE audit_chain_head (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq bigint NOT NULL,
    hash bytea NOT NULL
);
INSERT INTO audit_chain_head VALUES (true, 0, '\\x');
REVOKE ALL ON audit_chain_head FROM {RUNTIME};
GRANT SELECT ON audit_chain_head TO {RUNTIME};

CREATE FUNCTION veritas_audit_seal_row(row_id uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
SET veritas.role = 'system' AS $$
DECLARE
    next_seq bigint;
    prev bytea;
    sealed bytea;
BEGIN
    UPDATE audit_chain_head SET seq = seq + 1 RETURNING seq, hash INTO next_seq, prev;
    UPDATE audit_logs a SET chain_seq = next_seq, prev_hash = prev,
        row_hash = sha256(prev || convert_to({AUDIT_ROW_TEXT.format(seq="next_seq")}, 'UTF8'))
    WHERE a.id = row_id AND a.row_hash IS NULL
    RETURNING a.row_hash INTO sealed;
    IF sealed IS NULL THEN
        RAISE EXCEPTION 'audit row % cannot be sealed', row_id;
    END IF;
    UPDATE audit_chain_head SET hash = sealed;
END $$;
REVOKE ALL ON FUNCTION veritas_audit_seal_row(uuid) FROM PUBLIC;

CREATE FUNCTION veritas_audit_seal() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM veritas_audit_seal_row(NEW.id);
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION veritas_audit_seal() FROM PUBLIC;

-- The records written before this migration, in the order they were written.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT id FROM audit_logs ORDER BY created_at, id LOOP
        PERFORM veritas_audit_seal_row(r.id);
    END LOOP;
END $$;

-- Sealed at commit (deferred), so the head's lock is held for the commit alone.
CREATE CONSTRAINT TRIGGER audit_logs_seal AFTER INSERT ON audit_logs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION veritas_audit_seal();

-- Append-only, whoever asks: the one update allowed is the seal of an unsealed row that
-- changes nothing else.
CREATE FUNCTION veritas_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.row_hash IS NULL AND NEW.row_hash IS NOT NULL
       AND to_jsonb(OLD) - ARRAY['chain_seq', 'prev_hash', 'row_hash']
           = to_jsonb(NEW) - ARRAY['chain_seq', 'prev_hash', 'row_hash'] THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION veritas_audit_append_only();
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION veritas_audit_append_only();
"""


def upgrade() -> None:
    op.execute(ENSURE_GROUP_SQL)
    op.execute(IDENTITY_FUNCTIONS)
    op.execute(_grants())
    op.execute(PARTITIONS)
    op.execute(_row_level_security())
    op.execute(AUDIT_CHAIN)


def downgrade() -> None:
    op.execute("""
    DROP TRIGGER IF EXISTS audit_logs_no_truncate ON audit_logs;
    DROP TRIGGER IF EXISTS audit_logs_append_only ON audit_logs;
    DROP TRIGGER IF EXISTS audit_logs_seal ON audit_logs;
    ALTER FUNCTION veritas_ensure_event_partition(timestamptz) SECURITY INVOKER;
    GRANT EXECUTE ON FUNCTION veritas_ensure_event_partition(timestamptz) TO PUBLIC;
    DROP FUNCTION IF EXISTS veritas_audit_append_only(), veritas_audit_seal(),
        veritas_audit_seal_row(uuid), veritas_refresh_views(), veritas_attempt_exam(uuid);
    DROP TABLE IF EXISTS audit_chain_head;
    ALTER TABLE audit_logs DROP COLUMN IF EXISTS chain_seq, DROP COLUMN IF EXISTS prev_hash,
        DROP COLUMN IF EXISTS row_hash;
    """)
    for table in (*POLICIES, "audit_logs"):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;"
                   f" ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;")
        op.execute(f"DROP POLICY IF EXISTS {table}_read ON {table};"
                   f" DROP POLICY IF EXISTS {table}_write ON {table};")
    op.execute("DROP POLICY IF EXISTS audit_logs_append ON audit_logs;"
               " DROP POLICY IF EXISTS audit_logs_seal ON audit_logs;")
    op.execute("""
    DROP FUNCTION IF EXISTS veritas_taught_students(), veritas_taught_attempts(),
        veritas_taught_exams(), veritas_sees_all(), veritas_caller_id(), veritas_caller_role();
    """)
    op.execute(f"""
    ALTER DEFAULT PRIVILEGES IN SCHEMA public
        REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {RUNTIME};
    ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM {RUNTIME};
    REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {RUNTIME};
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {RUNTIME};
    REVOKE ALL ON SCHEMA public FROM {RUNTIME};
    """)
