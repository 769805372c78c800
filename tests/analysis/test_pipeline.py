"""The analysis pipeline end to end: jobs, behavior analyses, denormalized rows, recompute."""

from __future__ import annotations

import random
import subprocess
import sys
import time
import uuid

import pytest
from tests.support import Api, ServerProcess, drop_database, make_database


def _wait_for_analysis(api: Api, teacher: dict, attempt_id: str, seconds: float = 20) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = api.get(f"/api/teacher/attempts/{attempt_id}", headers=teacher["headers"]).json()
        if body["behavior_analysis"]:
            return body
        time.sleep(0.2)
    raise AssertionError("no analysis within the time limit")


def _paste_heavy(api: Api, student: dict, exam: dict) -> str:
    attempt = api.start(student, exam)
    api.post("/api/monitor/events/batch", headers=student["headers"], json={
        "attempt_id": attempt["attempt_id"],
        "events": [{"event_type": "heartbeat"},
                   {"event_type": "paste", "data": {"chars": 900, "question_id": "e1"}}]})
    api.submit(student, attempt["attempt_id"], {"e1": "pasted " * 150})
    return attempt["attempt_id"]


ESSAY_EXAM = {"questions": [{"id": "e1", "type": "essay", "prompt": "Explain.", "points": 5}],
              "max_score": 5, "passing_score": 3}


def test_submit_gets_an_analysis_from_the_server_worker(api: Api) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher, **ESSAY_EXAM)
    attempt_id = _paste_heavy(api, student, exam)
    detail = _wait_for_analysis(api, teacher, attempt_id)
    assert detail["analysis_status"] == "done"
    analysis = detail["behavior_analysis"]
    for column in ("total_monitoring_events", "anomaly_count", "critical_events",
                   "integrity_score", "originality_indicators", "improvement_trend",
                   "llm_summary", "llm_recommendations", "llm_model_version",
                   "requires_instructor_attention", "requires_recap", "analysis_version"):
        assert analysis[column] is not None, column
    assert analysis["total_monitoring_events"] == 2 and analysis["anomaly_count"] == 1
    contributions = analysis["details"]["integrity"]["contributions"]
    total = sum(c["contribution"] for c in contributions.values())
    assert abs(total - (1 - analysis["integrity_score"])) < 1e-9
    assert max(contributions, key=lambda k: contributions[k]["contribution"]) == "paste_ratio"
    # The dropout risk in plain words, with the model's version and validity beside it.
    risk = analysis["details"]["risk"]
    assert all(f["in_words"].endswith(("raises the risk", "lowers the risk"))
               for f in risk["factors"])
    assert risk["model"]["version"].startswith("dropout-")
    assert risk["model"]["fitted_on"] == ["2013B", "2013J"]
    assert risk["model"]["held_out"]["tested_on"] == ["2013J"]
    assert set(risk["model"]["held_out"]["roc_auc"]) == {"30", "60", "90", "120"}
    mine = api.get(f"/api/student/attempts/{attempt_id}", headers=student["headers"]).json()
    assert mine["feedback"]["summary"] == analysis["llm_summary"]
    assert "contributions" not in str(mine) and "details" not in mine
    alerts = api.get("/api/teacher/alerts", headers=teacher["headers"],
                     params={"exam_id": exam["id"], "limit": 500}).json()["items"]
    assert any(a["kind"] == "low_integrity" for a in alerts)


def test_jobs_wait_for_a_worker_and_survive_restarts(database_url: str,
                                                    server_env: dict[str, str]) -> None:
    # A database of its own: the suite's main server runs a worker that would take the job.
    from veritas.db.migrate import upgrade

    url = make_database(database_url, "veritas_jobs_" + uuid.uuid4().hex[:8])
    try:
        upgrade(url)
        env = server_env | {"DATABASE_URL": url, "EMBEDDED_WORKER": "false"}
        with ServerProcess(env) as quiet, Api(quiet.base_url) as client:
            client.create_admin_cli(env)
            teacher, student = client.user("teacher"), client.user()
            exam = client.exam(teacher, **ESSAY_EXAM)
            attempt = client.start(student, exam)
            assert client.submit(student, attempt["attempt_id"], {"e1": "mine"}).status_code == 200
            time.sleep(1)
            detail = client.get(f"/api/teacher/attempts/{attempt['attempt_id']}",
                                headers=teacher["headers"]).json()
            assert detail["behavior_analysis"] is None  # queued, and no worker anywhere
            assert detail["analysis_status"] == "pending"
        # The server that took the submit is gone; the job waits in PostgreSQL for a worker.
        with ServerProcess(env) as again, Api(again.base_url) as client:
            worker = subprocess.Popen([sys.executable, "-m", "veritas.cli", "worker"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                teacher_again = client.login(teacher["email"])
                done = _wait_for_analysis(client, teacher_again, attempt["attempt_id"])
                # The view reads the attempt and its analysis in two statements, so a poll can
                # land between them as the analysis commits: read once more to settle.
                if done["analysis_status"] != "done":
                    time.sleep(0.5)
                    done = client.get(f"/api/teacher/attempts/{attempt['attempt_id']}",
                                      headers=teacher_again["headers"]).json()
                assert done["analysis_status"] == "done"
            finally:
                worker.terminate()
                worker.wait(timeout=30)
    finally:
        drop_database(database_url, url)


def _snapshot(db, student_ids: list[str]) -> list[tuple]:
    return db.execute(
        "SELECT p.user_id, p.total_exams_attempted, p.total_exams_passed,"
        " round(p.cumulative_integrity_score::numeric, 9), round(p.cumulative_lmi::numeric, 9),"
        " p.current_dropout_risk, p.flagged_for_review, m.total_attempts, m.total_passed,"
        " round(m.avg_score::numeric, 6), m.subject_scores, m.strengths, m.weaknesses,"
        " round(m.avg_integrity_score::numeric, 9), m.integrity_trend, m.lmi_trend,"
        " m.current_risk_label, m.flagged_for_intervention, m.last_attempt_date"
        " FROM student_profiles p JOIN performance_metrics m ON m.student_id = p.user_id"
        " WHERE p.user_id = ANY(%s::uuid[]) ORDER BY p.user_id", (student_ids,)).fetchall()


def test_incremental_updates_equal_a_recompute(api: Api, db, server_env: dict[str, str]) -> None:
    rng = random.Random(7)
    teacher = api.user("teacher")
    exams = [api.exam(teacher, subject=subject, topic=topic)
             for subject, topic in (("Mathematics", "Algebra"), ("Physics", "Optics"),
                                    ("History", "Rome"))]
    students = [api.user() for _ in range(3)]
    attempts = []
    for _ in range(10):
        student, exam = rng.choice(students), rng.choice(exams)
        attempt = api.start(student, exam)
        answers = {"q1": rng.choice(["3", "4"]), "q2": rng.choice([["2", "3"], ["4"]]),
                   "q3": rng.choice(["Paris", "Rome"])}
        api.submit(student, attempt["attempt_id"], answers)
        attempts.append(attempt["attempt_id"])
    for attempt_id in attempts:
        _wait_for_analysis(api, teacher, attempt_id)
    ids = [s["id"] for s in students]
    before = _snapshot(db, ids)
    result = subprocess.run([sys.executable, "-m", "veritas.cli", "recompute"], env=server_env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert _snapshot(db, ids) == before
    assert sum(row[1] for row in before) == 10


def test_rescore_requeues_an_exams_attempts(api: Api, server_env: dict[str, str]) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher, **ESSAY_EXAM)
    attempt_id = _paste_heavy(api, student, exam)
    first = _wait_for_analysis(api, teacher, attempt_id)["behavior_analysis"]
    relaxed = api.patch(f"/api/teacher/exams/{exam['id']}", headers=teacher["headers"],
                        json={"metadata": {"integrity_policy": "relaxed"}})
    assert relaxed.status_code == 200
    result = subprocess.run([sys.executable, "-m", "veritas.cli", "rescore", "--exam",
                             exam["id"]], env=server_env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "queued 1" in result.stdout
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        again = api.get(f"/api/teacher/attempts/{attempt_id}",
                        headers=teacher["headers"]).json()["behavior_analysis"]
        if again["analysis_version"] != first["analysis_version"]:
            break
        time.sleep(0.2)
    assert again["analysis_version"].endswith("relaxed-1")
    assert again["integrity_score"] >= first["integrity_score"]
    bad = subprocess.run([sys.executable, "-m", "veritas.cli", "rescore", "--exam", "nope"],
                         env=server_env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0


@pytest.mark.parametrize("who", ["student", "teacher"])
def test_external_analysis_needs_an_admin(api: Api, admin: dict, who: str) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher)
    attempt = api.start(student, exam)
    api.submit(student, attempt["attempt_id"], {"q1": "4"})
    body = {"integrity_score": 0.9, "lmi_score": 0.1, "dropout_label": "safe",
            "llm_summary": "Scored by the district model.", "model_version": "district-7"}
    url = f"/api/analysis/attempts/{attempt['attempt_id']}"
    caller = student if who == "student" else teacher
    assert api.put(url, json=body, headers=caller["headers"]).status_code == 403
    stored = api.put(url, json=body, headers=admin["headers"])
    assert stored.status_code == 200
    assert stored.json()["analysis_version"] == "external:district-7"
    assert api.put(url, json=body | {"integrity_score": 1.5},
                   headers=admin["headers"]).status_code == 422
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    assert api.put(url, json=body | {"details": {"x": deep}},
                   headers=admin["headers"]).status_code == 422
    assert api.get(f"/api/teacher/attempts/{attempt['attempt_id']}",
                   headers=admin["headers"]).status_code == 200


def test_review_workflow_second_reviewer_audit_and_student_view(api: Api, db) -> None:
    owner, colleague, stranger = api.user("teacher"), api.user("teacher"), api.user("teacher")
    student = api.user()
    exam = api.exam(owner, metadata={"review": {"require_second_reviewer": True}})
    api.grant(owner, exam, colleague, can_view_analytics=True)
    attempt = api.start(student, exam)
    api.submit(student, attempt["attempt_id"], {"q1": "4"})
    url = f"/api/teacher/attempts/{attempt['attempt_id']}/reviews"
    secret_note = "Compared with the seating plan"
    first = api.post(url, headers=owner["headers"],
                     json={"decision": "confirmed", "note": secret_note})
    assert first.status_code == 201 and first.json()["outcome"] == "pending_second_review"
    again = api.post(url, headers=owner["headers"], json={"decision": "confirmed"})
    assert again.json()["outcome"] == "pending_second_review"  # the same reviewer twice
    second = api.post(url, headers=colleague["headers"], json={"decision": "confirmed"})
    assert second.json()["outcome"] == "confirmed"
    assert api.post(url, headers=stranger["headers"],
                    json={"decision": "dismissed"}).status_code == 403
    assert api.post(url, headers=owner["headers"],
                    json={"decision": "maybe"}).status_code == 422
    listed = api.get(url, headers=owner["headers"]).json()
    assert [d["decision"] for d in listed["items"]] == ["confirmed"] * 3
    mine = api.get(f"/api/student/attempts/{attempt['attempt_id']}",
                   headers=student["headers"]).json()
    assert mine["review"] == {"status": "confirmed"}
    assert secret_note not in str(mine) and owner["id"] not in str(mine)
    dismissed = api.post(url, headers=colleague["headers"], json={"decision": "dismissed"})
    assert dismissed.json()["outcome"] == "cleared"
    rows = db.execute("SELECT count(*) FROM review_decisions WHERE exam_attempt_id = %s",
                      (attempt["attempt_id"],)).fetchone()[0]
    assert rows == 4  # superseded, never edited
    audited = db.execute("SELECT count(*) FROM audit_logs WHERE action = 'review_decision'"
                         " AND resource_id = %s", (attempt["attempt_id"],)).fetchone()[0]
    assert audited == 4
