"""An analysis that fails for good is never silent: the teacher's attempt view says `failed`,
/metrics counts it, and the server log names the attempt."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb
from tests.support import METRICS_TOKEN, Api, ServerProcess, bearer, drop_database, make_database


def _wait_for_status(api: Api, teacher: dict, attempt_id: str, status: str,
                     seconds: float = 30) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = api.get(f"/api/teacher/attempts/{attempt_id}", headers=teacher["headers"]).json()
        if body["analysis_status"] == status:
            return body
        time.sleep(0.2)
    raise AssertionError(f"analysis_status is {body['analysis_status']}, not {status}")


def test_a_permanently_failing_analysis_shows_failed_everywhere(
        database_url: str, server_env: dict[str, str], tmp_path: Path) -> None:
    # A database of its own: the suite's main server runs a worker that would take the job,
    # and its log would hold the line.
    from veritas.db.migrate import upgrade
    from veritas.db.roles import ensure_runtime_login

    url = make_database(database_url, "veritas_failing_" + uuid.uuid4().hex[:8])
    log = tmp_path / "server.log"
    try:
        upgrade(url)
        env = server_env | {"DATABASE_URL": ensure_runtime_login(url),
                            "MIGRATION_DATABASE_URL": url}
        with ServerProcess(env, log_path=log) as server, Api(server.base_url) as client, \
                psycopg.connect(url, autocommit=True) as db:
            client.create_admin_cli(env)
            teacher, student = client.user("teacher"), client.user()
            good, broken = client.exam(teacher), client.exam(teacher)
            in_progress = client.start(student, broken)["attempt_id"]
            detail = client.get(f"/api/teacher/attempts/{in_progress}",
                                headers=teacher["headers"]).json()
            assert detail["analysis_status"] is None  # no analysis is due yet
            # Settings written past the API (by an older version, or by hand): no retry can
            # make this analysis succeed.
            db.execute("UPDATE exams SET metadata = %s WHERE id = %s",
                       (Jsonb({"integrity_policy": "bogus"}), broken["id"]))
            assert client.submit(student, in_progress).status_code == 200
            other = client.user()
            fine = client.start(other, good)["attempt_id"]
            assert client.submit(other, fine).status_code == 200

            failed = _wait_for_status(client, teacher, in_progress, "failed")
            assert failed["behavior_analysis"] is None
            assert _wait_for_status(client, teacher, fine, "done")["behavior_analysis"]
            # Given up at once, not retried for a minute.
            job = db.execute("SELECT status::text, attempts FROM procrastinate_jobs"
                             " WHERE args->>'attempt_id' = %s", (in_progress,)).fetchone()
            assert job is not None and job[0] == "failed" and job[1] <= 1

            metrics = client.get("/metrics", headers=bearer(METRICS_TOKEN))
            assert metrics.status_code == 200
            lines = metrics.text.splitlines()
            assert "# TYPE veritas_attempt_analyses gauge" in lines
            assert 'veritas_attempt_analyses{status="failed"} 1' in lines
            assert 'veritas_attempt_analyses{status="pending"} 0' in lines

            # The way back: fix the settings, queue the exam's analyses again.
            fixed = client.patch(f"/api/teacher/exams/{broken['id']}", headers=teacher["headers"],
                                 json={"metadata": {"integrity_policy": "standard"}})
            assert fixed.status_code == 200
            rescore = subprocess.run([sys.executable, "-m", "veritas.cli", "rescore", "--exam",
                                      broken["id"]], env=env, capture_output=True, text=True,
                                     timeout=60)
            assert rescore.returncode == 0, rescore.stderr
            assert _wait_for_status(client, teacher, in_progress, "done")["behavior_analysis"]
            metrics = client.get("/metrics", headers=bearer(METRICS_TOKEN)).text.splitlines()
            assert 'veritas_attempt_analyses{status="failed"} 0' in metrics
        logged = [line for line in log.read_text().splitlines() if in_progress in line]
        assert any("ERROR" in line and "failed for good" in line and "integrity_policy" in line
                   for line in logged), logged
    finally:
        drop_database(database_url, url)
