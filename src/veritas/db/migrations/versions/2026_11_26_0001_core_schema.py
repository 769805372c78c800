"""Core schema: users, exams, attempts, analyses, audit log, partitioned monitoring events,
materialized views.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCORE = "CHECK ({col} IS NULL OR ({col} >= 0 AND {col} <= 1))"
MOMENTUM = "CHECK ({col} IS NULL OR ({col} >= -1 AND {col} <= 1))"


def _score(col: str) -> str:
    return f"CONSTRAINT ck_{col}_0_1 " + SCORE.format(col=col)


def _momentum(col: str) -> str:
    return f"CONSTRAINT ck_{col}_range " + MOMENTUM.format(col=col)


def upgrade() -> None:
    op.execute("""
    CREATE TYPE user_role AS ENUM ('student', 'teacher', 'admin');
    CREATE TYPE attempt_status AS ENUM ('in_progress', 'completed', 'abandoned');
    CREATE TYPE event_severity AS ENUM ('normal', 'warning', 'critical');
    CREATE TYPE dropout_risk AS ENUM ('safe', 'at_risk', 'high_risk');

    CREATE TABLE users (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        email text NOT NULL,
        username text NOT NULL,
        password_hash text NOT NULL,
        role user_role NOT NULL,
        full_name text,
        is_active boolean NOT NULL DEFAULT true,
        is_verified boolean NOT NULL DEFAULT false,
        last_login timestamptz,
        last_login_ip inet,
        metadata jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT ck_users_email_lower CHECK (email = lower(email))
    );
    -- Login by email or username; usernames are unique regardless of case.
    CREATE UNIQUE INDEX uq_users_email ON users (email);
    CREATE UNIQUE INDEX uq_users_username ON users (lower(username));
    CREATE INDEX ix_users_role ON users (role);
    CREATE INDEX ix_users_active_role ON users (is_active, role);
    """)

    op.execute(f"""
    CREATE TABLE student_profiles (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
        enrollment_id text,
        cohort text,
        cumulative_integrity_score double precision {_score("cumulative_integrity_score")},
        cumulative_lmi double precision {_momentum("cumulative_lmi")},
        total_exams_attempted integer NOT NULL DEFAULT 0 CHECK (total_exams_attempted >= 0),
        total_exams_passed integer NOT NULL DEFAULT 0 CHECK (total_exams_passed >= 0),
        current_dropout_risk dropout_risk,
        flagged_for_review boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX ix_student_profiles_dropout_risk ON student_profiles (current_dropout_risk);
    CREATE INDEX ix_student_profiles_flagged ON student_profiles (user_id)
        WHERE flagged_for_review;

    -- teacher_exam_permissions points at teacher_profiles.user_id (unique), so the
    -- "teacher_id" of the API is the teacher's user id and no join is needed to check it.
    CREATE TABLE teacher_profiles (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
        department text,
        created_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE exams (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        creator_id uuid NOT NULL REFERENCES users (id),
        title text NOT NULL,
        description text,
        subject text NOT NULL,
        topic text,
        max_score double precision NOT NULL CHECK (max_score > 0),
        duration_minutes integer NOT NULL CHECK (duration_minutes > 0),
        passing_score double precision NOT NULL CHECK (passing_score >= 0),
        is_published boolean NOT NULL DEFAULT false,
        enable_monitoring boolean NOT NULL DEFAULT true,
        enable_integrity_analysis boolean NOT NULL DEFAULT true,
        questions jsonb NOT NULL DEFAULT '[]',
        metadata jsonb NOT NULL DEFAULT '{{}}',
        due_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT ck_exams_passing_le_max CHECK (passing_score <= max_score)
    );
    CREATE INDEX ix_exams_creator_published ON exams (creator_id, is_published);
    CREATE INDEX ix_exams_subject_topic ON exams (subject, topic);
    CREATE INDEX ix_exams_published ON exams (created_at) WHERE is_published;

    CREATE TABLE teacher_exam_permissions (
        teacher_id uuid NOT NULL REFERENCES teacher_profiles (user_id) ON DELETE CASCADE,
        exam_id uuid NOT NULL REFERENCES exams (id) ON DELETE CASCADE,
        can_view boolean NOT NULL DEFAULT true,
        can_edit boolean NOT NULL DEFAULT false,
        can_view_analytics boolean NOT NULL DEFAULT false,
        granted_by uuid REFERENCES users (id) ON DELETE SET NULL,
        granted_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (teacher_id, exam_id)
    );
    CREATE INDEX ix_teacher_exam_permissions_exam ON teacher_exam_permissions (exam_id);

    CREATE TABLE exam_attempts (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        exam_id uuid NOT NULL REFERENCES exams (id),
        student_id uuid NOT NULL REFERENCES users (id),
        status attempt_status NOT NULL DEFAULT 'in_progress',
        score double precision CHECK (score IS NULL OR score >= 0),
        max_score double precision NOT NULL CHECK (max_score > 0),
        percentage double precision CHECK (percentage IS NULL OR percentage >= 0),
        passed boolean,
        integrity_score double precision {_score("integrity_score")},
        lmi double precision {_momentum("lmi")},
        dropout_label dropout_risk,
        flagged boolean NOT NULL DEFAULT false,
        started_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        completed_at timestamptz,
        duration_seconds integer CHECK (duration_seconds IS NULL OR duration_seconds >= 0),
        submission_data jsonb NOT NULL DEFAULT '{{}}',
        metadata jsonb NOT NULL DEFAULT '{{}}'
    );
    CREATE INDEX ix_exam_attempts_exam_student ON exam_attempts (exam_id, student_id);
    CREATE INDEX ix_exam_attempts_student_status ON exam_attempts (student_id, status);
    CREATE INDEX ix_exam_attempts_dropout_label ON exam_attempts (dropout_label);
    CREATE INDEX ix_exam_attempts_flagged ON exam_attempts (exam_id) WHERE flagged;
    CREATE INDEX ix_exam_attempts_completed_at ON exam_attempts (completed_at);
    -- Serves the sweeper that abandons attempts whose time ran out.
    CREATE INDEX ix_exam_attempts_open_expiry ON exam_attempts (expires_at)
        WHERE status = 'in_progress';
    -- Two concurrent "start" requests cannot open two attempts at the same exam.
    CREATE UNIQUE INDEX uq_exam_attempts_one_open ON exam_attempts (exam_id, student_id)
        WHERE status = 'in_progress';
    """)

    # monitoring_events is partitioned by the attempt's start time, not by the event's own
    # time. A unique key on a partitioned table must contain the partition key; since every
    # event of an attempt shares its attempt's start time, the key (id, attempt_started_at)
    # identifies an event however late it is retried, even in a later month, and all of an
    # attempt's events sit in one partition, which the per-attempt queries then prune to.
    # `id` is derived from (attempt, client event id), so the key is also the dedup key.
    op.execute(f"""
    CREATE TABLE monitoring_events (
        id uuid NOT NULL,
        attempt_started_at timestamptz NOT NULL,
        exam_attempt_id uuid NOT NULL REFERENCES exam_attempts (id),
        student_id uuid NOT NULL REFERENCES users (id),
        event_id uuid NOT NULL,
        event_type text NOT NULL,
        severity event_severity NOT NULL DEFAULT 'normal',
        data_payload jsonb NOT NULL DEFAULT '{{}}',
        is_anomaly boolean NOT NULL DEFAULT false,
        anomaly_score real {_score("anomaly_score")},
        description text,
        analysis_notes text,
        client_timestamp timestamptz,
        server_timestamp timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (id, attempt_started_at)
    ) PARTITION BY RANGE (attempt_started_at);

    -- Each index below serves a named query; every extra index slows ingestion. There are
    -- no attempt_id, student_id, type_severity or is_anomaly indexes: attempt_id is
    -- the leading column of the composite below; events are only ever read per attempt
    -- (a student's events are reached through their attempts), so student_id and
    -- type/severity filters run inside one attempt's rows; is_anomaly is the partial index.
    -- The teacher's event list of one attempt and the analysis scan, in time order
    -- (also covers lookups by attempt id alone).
    CREATE INDEX ix_monitoring_events_attempt_time
        ON monitoring_events (exam_attempt_id, server_timestamp);
    -- The `payload` filter (containment, @>) of the teacher's event list.
    CREATE INDEX ix_monitoring_events_payload
        ON monitoring_events USING gin (data_payload jsonb_path_ops);
    -- Alerts: the anomalies of given attempts, newest first; small because anomalies are rare.
    CREATE INDEX ix_monitoring_events_anomalies
        ON monitoring_events (exam_attempt_id, server_timestamp) WHERE is_anomaly;
    -- Retention and time-range scans on append-only partitions: BRIN costs almost nothing.
    CREATE INDEX ix_monitoring_events_server_time
        ON monitoring_events USING brin (server_timestamp);

    -- Creates the month partition holding `started`, if it is missing. Serialized by an
    -- advisory lock so concurrent writers in several processes never race on the catalog.
    CREATE FUNCTION veritas_ensure_event_partition(started timestamptz) RETURNS text
    LANGUAGE plpgsql AS $$
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
            END IF;
        END IF;
        RETURN name;
    END $$;

    -- Partitions ahead of time: last month to three months on.
    SELECT veritas_ensure_event_partition(now() + make_interval(months => m))
    FROM generate_series(-1, 3) AS m;
    """)

    op.execute(f"""
    CREATE TABLE behavior_analysis (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        exam_attempt_id uuid NOT NULL UNIQUE REFERENCES exam_attempts (id) ON DELETE CASCADE,
        student_id uuid NOT NULL REFERENCES users (id),
        total_monitoring_events integer NOT NULL DEFAULT 0,
        anomaly_count integer NOT NULL DEFAULT 0,
        critical_events integer NOT NULL DEFAULT 0,
        integrity_score double precision {_score("integrity_score")},
        originality_indicators jsonb NOT NULL DEFAULT '{{}}',
        lmi_score double precision {_momentum("lmi_score")},
        improvement_trend text,
        dropout_label dropout_risk,
        dropout_confidence double precision {_score("dropout_confidence")},
        llm_summary text,
        llm_recommendations jsonb NOT NULL DEFAULT '[]',
        llm_model_version text,
        requires_instructor_attention boolean NOT NULL DEFAULT false,
        requires_recap boolean NOT NULL DEFAULT false,
        analysis_version text,
        details jsonb NOT NULL DEFAULT '{{}}',
        completed_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX ix_behavior_analysis_student ON behavior_analysis (student_id);
    CREATE INDEX ix_behavior_analysis_dropout_label ON behavior_analysis (dropout_label);
    CREATE INDEX ix_behavior_analysis_flagged ON behavior_analysis (completed_at)
        WHERE requires_instructor_attention;
    CREATE INDEX ix_behavior_analysis_completed_at ON behavior_analysis (completed_at);

    CREATE TABLE performance_metrics (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        student_id uuid NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
        total_attempts integer NOT NULL DEFAULT 0,
        total_passed integer NOT NULL DEFAULT 0,
        avg_score double precision,
        strengths jsonb NOT NULL DEFAULT '[]',
        weaknesses jsonb NOT NULL DEFAULT '[]',
        subject_scores jsonb NOT NULL DEFAULT '{{}}',
        avg_integrity_score double precision {_score("avg_integrity_score")},
        integrity_trend text,
        avg_lmi double precision {_momentum("avg_lmi")},
        lmi_trend text,
        current_risk_label dropout_risk,
        flagged_for_intervention boolean NOT NULL DEFAULT false,
        last_updated timestamptz NOT NULL DEFAULT now(),
        last_attempt_date timestamptz
    );
    CREATE INDEX ix_performance_metrics_student_risk
        ON performance_metrics (current_risk_label, student_id);
    CREATE INDEX ix_performance_metrics_flagged ON performance_metrics (student_id)
        WHERE flagged_for_intervention;

    CREATE TABLE audit_logs (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid REFERENCES users (id) ON DELETE SET NULL,
        action text NOT NULL,
        resource_type text,
        resource_id text,
        details jsonb NOT NULL DEFAULT '{{}}',
        ip_address inet,
        user_agent text,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX ix_audit_logs_user_action ON audit_logs (user_id, action);
    CREATE INDEX ix_audit_logs_resource ON audit_logs (resource_type, resource_id);
    CREATE INDEX ix_audit_logs_created_at ON audit_logs (created_at, id);
    -- Login throttling counts recent failures by action and time.
    CREATE INDEX ix_audit_logs_action_created ON audit_logs (action, created_at);

    -- Every issued token, so that logout, rotation and locks can revoke them by id.
    CREATE TABLE auth_tokens (
        jti uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        token_type text NOT NULL CHECK (token_type IN ('access', 'refresh')),
        family_id uuid NOT NULL,
        issued_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        revoked_at timestamptz
    );
    CREATE INDEX ix_auth_tokens_user_live ON auth_tokens (user_id) WHERE revoked_at IS NULL;
    CREATE INDEX ix_auth_tokens_family ON auth_tokens (family_id);
    CREATE INDEX ix_auth_tokens_revoked ON auth_tokens (expires_at) WHERE revoked_at IS NOT NULL;
    """)

    op.execute("""
    CREATE MATERIALIZED VIEW exam_performance_summary AS
    SELECT e.id AS exam_id,
           e.title,
           e.subject,
           count(DISTINCT a.student_id) AS unique_students,
           count(a.id) AS total_attempts,
           avg(a.percentage) AS avg_score,
           avg(a.passed::int)::double precision AS pass_rate,
           avg(a.integrity_score) AS avg_integrity,
           count(a.id) FILTER (WHERE a.dropout_label = 'high_risk') AS high_risk_count,
           count(a.id) FILTER (WHERE a.flagged) AS flagged_count,
           max(a.completed_at) AS last_attempt
    FROM exams e
    LEFT JOIN exam_attempts a ON a.exam_id = e.id AND a.status = 'completed'
    GROUP BY e.id, e.title, e.subject
    WITH DATA;
    CREATE UNIQUE INDEX uq_exam_performance_summary ON exam_performance_summary (exam_id);

    CREATE MATERIALIZED VIEW student_risk_summary AS
    SELECT u.id AS student_id,
           sp.current_dropout_risk,
           sp.cumulative_integrity_score AS cumulative_integrity,
           sp.cumulative_lmi,
           count(a.id) AS attempt_count,
           count(a.id) FILTER (WHERE a.flagged) AS flagged_count,
           max(a.completed_at) AS last_attempt
    FROM users u
    JOIN student_profiles sp ON sp.user_id = u.id
    LEFT JOIN exam_attempts a ON a.student_id = u.id AND a.status = 'completed'
    WHERE u.role = 'student'
    GROUP BY u.id, sp.current_dropout_risk, sp.cumulative_integrity_score, sp.cumulative_lmi
    WITH DATA;
    CREATE UNIQUE INDEX uq_student_risk_summary ON student_risk_summary (student_id);
    """)


def downgrade() -> None:
    op.execute("""
    DROP MATERIALIZED VIEW IF EXISTS student_risk_summary;
    DROP MATERIALIZED VIEW IF EXISTS exam_performance_summary;
    DROP TABLE IF EXISTS auth_tokens, audit_logs, performance_metrics, behavior_analysis,
        monitoring_events, exam_attempts, teacher_exam_permissions, exams, teacher_profiles,
        student_profiles, users CASCADE;
    DROP FUNCTION IF EXISTS veritas_ensure_event_partition(timestamptz);
    DROP TYPE IF EXISTS dropout_risk, event_severity, attempt_status, user_role;
    """)
