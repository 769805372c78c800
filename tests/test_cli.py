"""The `veritas` command against the test database."""

from __future__ import annotations

import subprocess
import sys
import time


def _veritas(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "veritas.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_migrate_and_refresh_views(server_env: dict[str, str]) -> None:
    assert _veritas(server_env, "migrate").returncode == 0
    result = _veritas(server_env, "refresh-views")
    assert result.returncode == 0, result.stderr


def test_create_admin_refuses_bad_input(server_env: dict[str, str], api) -> None:
    weak = _veritas(server_env, "create-admin", "--email", "w@school.example",
                    "--username", "weakadmin", "--password", "password")
    assert weak.returncode != 0 and "common" in weak.stderr
    taken = _veritas(server_env, "create-admin", "--email", api.admin["email"],
                     "--username", "another", "--password", "Tr0ub4dor&3-horse")
    assert taken.returncode != 0 and "already" in taken.stderr
    missing = subprocess.run([sys.executable, "-m", "veritas.cli", "create-admin"],
                             env=server_env, capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    assert missing.returncode != 0


def test_demo_refuses_a_weak_password_without_a_traceback(server_env: dict[str, str]) -> None:
    weak = _veritas(server_env, "demo", "--students", "2", "--password", "short")
    assert weak.returncode == 1 and weak.stderr.startswith("error: password must be")
    assert "Traceback" not in weak.stderr


def test_demo_fills_a_school(server_env: dict[str, str], db, api) -> None:
    result = _veritas(server_env, "demo", "--students", "12", "--password", "Demo-pass-2026!")
    assert result.returncode == 0, result.stderr
    counts = db.execute(
        "SELECT (SELECT count(*) FROM users WHERE email LIKE '%%@demo.veritas.school'),"
        " (SELECT count(*) FROM exams e JOIN users u ON u.id = e.creator_id"
        "   WHERE u.email LIKE '%%@demo.veritas.school' AND e.is_published),"
        " (SELECT count(*) FROM exam_attempts a JOIN users u ON u.id = a.student_id"
        "   WHERE u.email LIKE '%%@demo.veritas.school' AND a.status = 'completed'),"
        " (SELECT count(*) FROM monitoring_events m JOIN users u ON u.id = m.student_id"
        "   WHERE u.email LIKE '%%@demo.veritas.school')").fetchone()
    users, exams, attempts, events = counts
    assert users >= 15 and exams >= 3 and attempts >= 12 and events > 100
    # Its anomalies are the teachers' alerts, folded per attempt and event type.
    anomalies, folded, alerts = db.execute(
        "SELECT (SELECT count(*) FROM monitoring_events m JOIN users u ON u.id = m.student_id"
        "   WHERE u.email LIKE '%%@demo.veritas.school' AND m.is_anomaly),"
        " (SELECT sum(count) FROM monitoring_alerts m JOIN users u ON u.id = m.student_id"
        "   WHERE u.email LIKE '%%@demo.veritas.school'),"
        " (SELECT count(*) FROM monitoring_alerts m JOIN users u ON u.id = m.student_id"
        "   WHERE u.email LIKE '%%@demo.veritas.school')").fetchone()
    assert anomalies > 0 and folded == anomalies and 0 < alerts <= anomalies
    teacher = db.execute("SELECT email FROM users WHERE role = 'teacher'"
                         " AND email LIKE '%%@demo.veritas.school' LIMIT 1").fetchone()[0]
    login = api.post("/api/auth/login", json={"email": teacher, "password": "Demo-pass-2026!"})
    assert login.status_code == 200
    again = _veritas(server_env, "demo", "--students", "12", "--password", "Demo-pass-2026!")
    assert again.returncode != 0 and "--reset-passwords" in (again.stderr + again.stdout)
    # Run again with --reset-passwords: one new password for every demo account, printed; the
    # old password and the sessions opened with it end.
    session = {"Authorization": f"Bearer {login.json()['access_token']}"}
    reset = _veritas(server_env, "demo", "--reset-passwords", "--password", "Fresh-pass-2027?")
    assert reset.returncode == 0, reset.stderr
    assert "Fresh-pass-2027?" in reset.stdout and "Demo-pass-2026!" not in reset.stdout
    assert api.post("/api/auth/login", json={"email": teacher, "password": "Demo-pass-2026!"}
                    ).status_code == 401
    assert api.post("/api/auth/login", json={"email": teacher, "password": "Fresh-pass-2027?"}
                    ).status_code == 200
    deadline = time.monotonic() + 5
    while api.get("/api/auth/me", headers=session).status_code != 401:
        assert time.monotonic() < deadline, "a session from before the reset still works"
        time.sleep(0.1)
    assert db.execute("SELECT details->>'accounts' FROM audit_logs"
                      " WHERE action = 'reset_demo_passwords'").fetchone()[0] == str(users)
    # Its attempts are queued for analysis like real submits, and the server's worker runs
    # them: a newcomer sees integrity scores, not blanks.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        missing = db.execute(
            "SELECT count(*) FROM exam_attempts a JOIN users u ON u.id = a.student_id"
            " LEFT JOIN behavior_analysis b ON b.exam_attempt_id = a.id"
            " WHERE u.email LIKE '%%@demo.veritas.school' AND b.id IS NULL").fetchone()[0]
        if missing == 0:
            break
        time.sleep(0.5)
    assert missing == 0



def test_create_admin_writes_through_the_services(db, api) -> None:
    """The command's admin is a verified admin, and its audit record went through the audit
    service (the same scrubbing and chain as every other record)."""
    admin_id = api.admin["id"]
    assert db.execute("SELECT role::text, is_verified FROM users WHERE id = %s",
                      (admin_id,)).fetchone() == ("admin", True)
    records = db.execute(
        "SELECT user_id::text, resource_type, resource_id, details FROM audit_logs"
        " WHERE action = 'create_admin' AND resource_id = %s", (str(admin_id),)).fetchall()
    assert records == [(str(admin_id), "user", str(admin_id), {"via": "cli"})]
