"""The CSV exports over HTTP: headers, one row per attempt or alert, the audit trail with the
list's filters, formulas neutralized, who may export, and that each export is audited."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

import pytest
from tests.support import PASSWORD, Api, unique

HOSTILE = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+SUM(1,2)", "-2+3", "@cmd",
           "\t=1+1", "\r=1+1"]


def _csv(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))


def _student(api: Api, full_name: str, enrollment_id: str) -> dict:
    username = unique("student")
    body = {"email": f"{username}@school.example", "username": username, "password": PASSWORD,
            "full_name": full_name, "enrollment_id": enrollment_id}
    assert api.post("/api/auth/register", json=body).status_code == 201
    return api.login(body["email"])


@pytest.fixture(scope="module")
def term(api: Api, admin: dict) -> dict:
    """An exam with three attempts: one passed and reviewed, one with hostile text in the
    student's name and alerts, one still in progress."""
    owner, viewer, stranger = api.user("teacher"), api.user("teacher"), api.user("teacher")
    exam = api.exam(owner)
    assert api.grant(owner, exam, viewer, can_view_analytics=False).status_code == 201
    good = _student(api, "Zoë Ñúñez-Łukasz 李", "E-001")
    hostile = _student(api, HOSTILE[0], "@E-002")
    waiting = _student(api, "Pat Pending", "E-003")
    passed = api.start(good, exam)["attempt_id"]
    assert api.submit(good, passed, {"q1": "4", "q2": ["2", "3"], "q3": "Paris"}
                      ).status_code == 200
    flagged = api.start(hostile, exam)["attempt_id"]
    api.post("/api/monitor/events/batch", headers=hostile["headers"], json={
        "attempt_id": flagged, "events": [{"event_type": "paste", "data": {"chars": 900}},
                                          {"event_type": "focus_lost",
                                           "data": {"duration_ms": 60_000}}]})
    assert api.submit(hostile, flagged, {"q1": "3"}).status_code == 200
    open_attempt = api.start(waiting, exam)["attempt_id"]
    review = api.post(f"/api/teacher/attempts/{passed}/reviews", headers=owner["headers"],
                      json={"decision": "dismissed", "note": "nothing to see"})
    assert review.status_code in (200, 201), review.text
    alerts = api.get("/api/teacher/alerts", headers=owner["headers"],
                     params={"exam_id": exam["id"], "status": "all"}).json()["items"]
    paste = next(a for a in alerts if a["event_type"] == "paste")
    assert api.post(f"/api/teacher/alerts/{paste['id']}/status", headers=owner["headers"],
                    json={"status": "dismissed", "note": HOSTILE[1]}).status_code == 200
    return {"owner": owner, "viewer": viewer, "stranger": stranger, "admin": admin,
            "exam": exam, "good": good, "hostile": hostile, "waiting": waiting,
            "passed": passed, "flagged": flagged, "open": open_attempt, "paste": paste}


def test_grades_export_has_one_row_per_attempt(api: Api, term: dict) -> None:
    url = f"/api/teacher/exams/{term['exam']['id']}/export/grades.csv"
    response = api.get(url, headers=term["owner"]["headers"])
    rows = _csv(response)
    assert response.headers["content-disposition"] == (
        f'attachment; filename="grades-{term["exam"]["id"]}.csv"')
    assert list(rows[0]) == ["student", "username", "email", "enrollment_id", "attempt_id",
                             "status", "started_at", "completed_at", "score", "max_score",
                             "percentage", "passed", "grading_status", "integrity_score",
                             "integrity_score_status", "review_outcome"]
    by_attempt = {r["attempt_id"]: r for r in rows}
    assert set(by_attempt) == {term["passed"], term["flagged"], term["open"]}
    good = by_attempt[term["passed"]]
    assert good["student"] == "Zoë Ñúñez-Łukasz 李" and good["enrollment_id"] == "E-001"
    assert (good["status"], good["score"], good["max_score"], good["percentage"],
            good["passed"], good["grading_status"]) == (
        "completed", "10.0", "10.0", "100.0", "true", "pending")  # the short answer waits
    assert good["review_outcome"] == "cleared"
    waiting = by_attempt[term["open"]]
    assert (waiting["status"], waiting["score"], waiting["passed"], waiting["completed_at"],
            waiting["grading_status"], waiting["review_outcome"]) == (
        "in_progress", "", "", "", "", "not_reviewed")
    # Rows come by student username, then start time.
    assert [r["username"] for r in rows] == sorted(r["username"] for r in rows)


def test_text_that_a_spreadsheet_would_run_is_neutralized(api: Api, term: dict) -> None:
    url = f"/api/teacher/exams/{term['exam']['id']}/export/grades.csv"
    rows = _csv(api.get(url, headers=term["owner"]["headers"]))
    hostile = next(r for r in rows if r["attempt_id"] == term["flagged"])
    assert hostile["student"] == "'" + HOSTILE[0]
    assert hostile["enrollment_id"] == "'@E-002"
    alerts = _csv(api.get(f"/api/teacher/exams/{term['exam']['id']}/export/alerts.csv",
                          headers=term["owner"]["headers"]))
    paste = next(r for r in alerts if r["alert_id"] == term["paste"]["id"])
    assert paste["status_note"] == "'" + HOSTILE[1]
    assert paste["student"] == "'" + HOSTILE[0]
    for row in rows + alerts:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (row, value)


def test_alerts_export_lists_every_alert_with_its_triage(api: Api, term: dict) -> None:
    rows = _csv(api.get(f"/api/teacher/exams/{term['exam']['id']}/export/alerts.csv",
                        headers=term["owner"]["headers"]))
    assert list(rows[0]) == ["alert_id", "severity", "status", "kind", "event_type", "count",
                             "first_at", "latest_at", "student", "username", "enrollment_id",
                             "attempt_id", "description", "anomaly_score", "status_note",
                             "status_changed_at", "score_status"]
    paste = next(r for r in rows if r["alert_id"] == term["paste"]["id"])
    # Dismissed alerts are exported too: an export is the whole record.
    assert (paste["status"], paste["kind"], paste["event_type"], paste["count"],
            paste["enrollment_id"], paste["attempt_id"]) == (
        "dismissed", "monitoring_anomaly", "paste", "1", "'@E-002", term["flagged"])
    assert {r["event_type"] for r in rows if r["kind"] == "monitoring_anomaly"} == {
        "paste", "focus_lost"}
    assert all(r["attempt_id"] in (term["passed"], term["flagged"], term["open"]) for r in rows)


@pytest.mark.parametrize("export", ["grades.csv", "alerts.csv"])
def test_who_may_export(api: Api, term: dict, export: str) -> None:
    url = f"/api/teacher/exams/{term['exam']['id']}/export/{export}"
    assert api.get(url).status_code == 401
    for who, status in (("viewer", 403), ("stranger", 403), ("good", 403)):
        response = api.get(url, headers=term[who]["headers"])
        assert response.status_code == status, (who, response.text)
        assert term["hostile"]["email"] not in response.text
    assert api.get(url, headers=term["admin"]["headers"]).status_code == 200
    unknown = f"/api/teacher/exams/{uuid.uuid4()}/export/{export}"
    assert api.get(unknown, headers=term["owner"]["headers"]).status_code == 404
    assert api.get(f"/api/teacher/exams/nope/export/{export}",
                   headers=term["owner"]["headers"]).status_code == 422


def test_each_export_is_audited_as_a_read_of_student_data(
    api: Api, term: dict, db: Any
) -> None:
    owner = term["owner"]
    for export in ("grades.csv", "alerts.csv"):
        before = db.execute("SELECT count(*) FROM audit_logs WHERE user_id = %s"
                            " AND action = 'view_student_data' AND details->>'export' = %s",
                            (owner["id"], export)).fetchone()[0]
        _csv(api.get(f"/api/teacher/exams/{term['exam']['id']}/export/{export}",
                     headers=owner["headers"]))
        after = db.execute("SELECT count(*), max(resource_id) FROM audit_logs"
                           " WHERE user_id = %s AND action = 'view_student_data'"
                           " AND details->>'export' = %s", (owner["id"], export)).fetchone()
        assert after == (before + 1, term["exam"]["id"])


def test_the_audit_log_export_takes_the_lists_filters(api: Api, term: dict, db: Any) -> None:
    admin, owner = term["admin"], term["owner"]
    url = "/api/admin/audit-logs/export.csv"
    for who in ("owner", "good"):
        assert api.get(url, headers=term[who]["headers"]).status_code == 403
    assert api.get(url).status_code == 401
    response = api.get(url, headers=admin["headers"],
                       params={"user_id": owner["id"], "action": "set_alert_status"})
    rows = _csv(response)
    assert list(rows[0]) == ["created_at", "id", "user_id", "username", "action",
                             "resource_type", "resource_id", "ip_address", "user_agent",
                             "details"]
    assert [(r["user_id"], r["username"], r["action"], r["resource_id"]) for r in rows] == [
        (owner["id"], owner["username"], "set_alert_status", term["paste"]["id"])]
    assert json.loads(rows[0]["details"])["note"] == HOSTILE[1]  # JSON text: starts with {
    listed = api.get("/api/admin/audit-logs", headers=admin["headers"],
                     params={"user_id": owner["id"]}).json()["items"]
    exported = _csv(api.get(url, headers=admin["headers"], params={"user_id": owner["id"]}))
    # The same records as the list, newest first (the list's own read is recorded as the
    # admin's, so it is not among the owner's).
    assert [r["id"] for r in exported][:len(listed)] == [r["id"] for r in listed]
    assert api.get(url, headers=admin["headers"], params={"since": "yesterday"}
                   ).status_code == 422
    audited = db.execute(
        "SELECT details FROM audit_logs WHERE user_id = %s AND action = 'view_audit_logs'"
        " AND details ? 'export' ORDER BY created_at DESC LIMIT 1", (admin["id"],)).fetchone()
    assert audited[0] == {"export": "csv", "filters": {"user_id": owner["id"]}}
