"""Alert triage over HTTP: statuses and notes, the history, who may change them, repeats of a
dismissed alert, filters, parallel changes and the live stream."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.support import Api


def _send(api: Api, student: dict, attempt: dict, *events: dict) -> None:
    response = api.post("/api/monitor/events/batch", headers=student["headers"],
                        json={"attempt_id": attempt["attempt_id"], "events": list(events)})
    assert response.status_code == 201, response.text


PASTE_WARNING = {"event_type": "paste", "data": {"chars": 300}}  # threshold 200: a warning
PASTE_CRITICAL = {"event_type": "paste", "data": {"chars": 5000}}  # twice over: critical


@pytest.fixture()
def triage(api: Api) -> dict[str, Any]:
    """A teacher's exam with one student's attempt in progress holding a paste alert, a
    colleague granted analytics, one granted viewing only, and an unrelated teacher."""
    owner, analyst, viewer, stranger = (api.user("teacher") for _ in range(4))
    student = api.user()
    exam = api.exam(owner)
    assert api.grant(owner, exam, analyst, can_view_analytics=True).status_code == 201
    assert api.grant(owner, exam, viewer, can_view_analytics=False).status_code == 201
    attempt = api.start(student, exam)
    _send(api, student, attempt, PASTE_WARNING)
    (alert,) = api.get("/api/teacher/alerts", headers=owner["headers"],
                       params={"exam_id": exam["id"]}).json()["items"]
    return {"owner": owner, "analyst": analyst, "viewer": viewer, "stranger": stranger,
            "student": student, "exam": exam, "attempt": attempt, "alert": alert}


def _set(api: Api, who: dict | None, alert_id: str, status: str, note: str | None = None,
         **extra: Any):
    body = {"status": status, **({"note": note} if note is not None else {}), **extra}
    return api.post(f"/api/teacher/alerts/{alert_id}/status", json=body,
                    headers=who["headers"] if who else {})


def _ids(api: Api, who: dict, **params: Any) -> list[str]:
    response = api.get("/api/teacher/alerts", headers=who["headers"], params=params)
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()["items"]]


def test_a_new_alert_is_open_and_counted(api: Api, triage: dict) -> None:
    alert = triage["alert"]
    assert alert["status"] == "open" and alert["count"] == 1
    assert alert["status_note"] is None and alert["status_at"] is None
    assert alert["event_type"] == "paste" and alert["kind"] == "monitoring_anomaly"


def test_acknowledge_then_dismiss_keeps_a_history_and_audits_each_change(
    api: Api, triage: dict, db: Any
) -> None:
    owner, analyst, alert_id = triage["owner"], triage["analyst"], triage["alert"]["id"]
    acknowledged = _set(api, owner, alert_id, "acknowledged", "  Asked the student about it. ")
    assert acknowledged.status_code == 200, acknowledged.text
    body = acknowledged.json()
    assert body["id"] == alert_id and body["status"] == "acknowledged"
    assert body["status_note"] == "Asked the student about it."
    assert body["count"] == 1 and body["student_id"] == triage["student"]["id"]

    dismissed = _set(api, analyst, alert_id, "dismissed", "Pasted from their own notes.")
    assert dismissed.status_code == 200, dismissed.text
    history = dismissed.json()["history"]
    assert [(h["from_status"], h["to_status"], h["note"], h["changed_by"]["id"])
            for h in history] == [
        ("open", "acknowledged", "Asked the student about it.", owner["id"]),
        ("acknowledged", "dismissed", "Pasted from their own notes.", analyst["id"])]
    assert history[1]["changed_by"]["username"] == analyst["username"]
    assert history[0]["created_at"] <= history[1]["created_at"]

    # The same history, read back; the reading is audited as a read of student data.
    detail = api.get(f"/api/teacher/alerts/{alert_id}", headers=owner["headers"])
    assert detail.status_code == 200 and detail.json()["history"] == history
    audited = db.execute(
        "SELECT user_id::text, details FROM audit_logs WHERE action = 'set_alert_status'"
        " AND resource_id = %s ORDER BY created_at", (alert_id,)).fetchall()
    assert audited == [
        (owner["id"], {"from": "open", "to": "acknowledged",
                       "note": "Asked the student about it."}),
        (analyst["id"], {"from": "acknowledged", "to": "dismissed",
                         "note": "Pasted from their own notes."})]
    assert db.execute("SELECT count(*) FROM audit_logs WHERE action = 'view_student_data'"
                      " AND resource_type = 'alert' AND resource_id = %s",
                      (alert_id,)).fetchone()[0] == 1


def test_the_same_status_and_note_again_changes_nothing(api: Api, triage: dict) -> None:
    owner, alert_id = triage["owner"], triage["alert"]["id"]
    first = _set(api, owner, alert_id, "dismissed", "duplicate of another alert").json()
    again = _set(api, owner, alert_id, "dismissed", "duplicate of another alert")
    assert again.status_code == 200 and again.json()["history"] == first["history"]
    # A new note on the same status is a change of its own.
    noted = _set(api, owner, alert_id, "dismissed", "checked the recording too").json()
    assert [(h["from_status"], h["to_status"]) for h in noted["history"]] == [
        ("open", "dismissed"), ("dismissed", "dismissed")]


def test_the_list_shows_open_alerts_unless_asked_for_another_status(
    api: Api, triage: dict
) -> None:
    owner, exam, alert_id = triage["owner"], triage["exam"], triage["alert"]["id"]
    scope = {"exam_id": exam["id"]}
    assert _ids(api, owner, **scope) == [alert_id]
    _set(api, owner, alert_id, "acknowledged")
    assert _ids(api, owner, **scope) == []
    assert _ids(api, owner, **scope, status="acknowledged") == [alert_id]
    assert _ids(api, owner, **scope, status="dismissed") == []
    assert _ids(api, owner, **scope, status="all") == [alert_id]
    listed = api.get("/api/teacher/alerts", headers=owner["headers"],
                     params=scope | {"status": "all"}).json()["items"][0]
    assert listed["status"] == "acknowledged" and listed["status_at"] is not None
    assert api.get("/api/teacher/alerts", headers=owner["headers"],
                   params={"status": "closed"}).status_code == 422
    # The dashboard's glance is of open alerts.
    dashboard = api.get("/api/teacher/dashboard", headers=owner["headers"]).json()
    assert alert_id not in {a["id"] for a in dashboard["alerts"]}


def test_filters_by_exam_and_kind(api: Api, triage: dict) -> None:
    owner, student, attempt = triage["owner"], triage["student"], triage["attempt"]
    _send(api, student, attempt, {"event_type": "focus_lost", "data": {"duration_ms": 60_000}})
    other_exam = api.exam(owner)
    other_student = api.user()
    other_attempt = api.start(other_student, other_exam)
    _send(api, other_student, other_attempt, PASTE_WARNING)
    mine = {"exam_id": triage["exam"]["id"], "status": "all"}
    assert len(_ids(api, owner, **mine)) == 2
    assert _ids(api, owner, **mine, kind="paste") == [triage["alert"]["id"]]
    assert len(_ids(api, owner, **mine, kind="focus_lost")) == 1
    assert len(_ids(api, owner, **mine, kind="monitoring_anomaly")) == 2
    assert _ids(api, owner, **mine, kind="low_integrity") == []
    both = _ids(api, owner, kind="paste", status="all")
    assert triage["alert"]["id"] in both and len(both) == 2
    assert api.get("/api/teacher/alerts", headers=owner["headers"],
                   params={"kind": "x" * 65}).status_code == 422


def test_who_may_change_a_status(api: Api, triage: dict, admin: dict) -> None:
    alert_id = triage["alert"]["id"]
    assert _set(api, None, alert_id, "dismissed").status_code == 401
    assert _set(api, triage["student"], alert_id, "dismissed").status_code == 403
    # Another teacher's alert is not theirs to see: the same answer as an unknown one.
    stranger = _set(api, triage["stranger"], alert_id, "dismissed")
    assert stranger.status_code == 404 and triage["student"]["id"] not in stranger.text
    viewer = _set(api, triage["viewer"], alert_id, "dismissed")
    assert viewer.status_code == 403 and triage["student"]["id"] not in viewer.text
    for who in ("student", "stranger", "viewer"):
        assert api.get(f"/api/teacher/alerts/{alert_id}",
                       headers=triage[who]["headers"]).status_code in (403, 404)
    unchanged = api.get(f"/api/teacher/alerts/{alert_id}", headers=triage["owner"]["headers"])
    assert unchanged.json()["status"] == "open" and unchanged.json()["history"] == []
    by_admin = _set(api, admin, alert_id, "acknowledged", "looked at by the office")
    assert by_admin.status_code == 200
    assert by_admin.json()["history"][0]["changed_by"]["id"] == admin["id"]


def test_bad_requests_are_4xx_and_change_nothing(api: Api, triage: dict) -> None:
    owner, alert_id = triage["owner"], triage["alert"]["id"]
    assert _set(api, owner, str(uuid.uuid4()), "dismissed").status_code == 404
    assert api.post("/api/teacher/alerts/not-a-uuid/status", json={"status": "dismissed"},
                    headers=owner["headers"]).status_code == 422
    for body in ({"status": "closed"}, {"status": "dismissed", "note": "x" * 2001},
                 {"status": "dismissed", "note": 5}, {"note": "no status"},
                 {"status": "dismissed", "extra": True}, {"status": None}):
        response = api.post(f"/api/teacher/alerts/{alert_id}/status", json=body,
                            headers=owner["headers"])
        assert response.status_code == 422, (body, response.text)
    nul = _set(api, owner, alert_id, "dismissed", "a\u0000b")
    assert nul.status_code == 422, nul.text
    assert _set(api, owner, alert_id, "dismissed", "x" * 2000).status_code == 200
    detail = api.get(f"/api/teacher/alerts/{alert_id}", headers=owner["headers"]).json()
    assert len(detail["history"]) == 1


def test_a_dismissed_alert_stays_dismissed_while_it_repeats_and_reopens_when_worse(
    api: Api, triage: dict
) -> None:
    owner, student, attempt, alert_id = (triage["owner"], triage["student"],
                                         triage["attempt"], triage["alert"]["id"])
    _set(api, owner, alert_id, "dismissed", "a short quotation")
    _send(api, student, attempt, PASTE_WARNING, PASTE_WARNING)
    detail = api.get(f"/api/teacher/alerts/{alert_id}", headers=owner["headers"]).json()
    assert (detail["status"], detail["count"], detail["severity"]) == ("dismissed", 3, "warning")
    assert _ids(api, owner, exam_id=triage["exam"]["id"]) == []

    _send(api, student, attempt, PASTE_CRITICAL)
    detail = api.get(f"/api/teacher/alerts/{alert_id}", headers=owner["headers"]).json()
    assert (detail["status"], detail["count"], detail["severity"]) == ("open", 4, "critical")
    reopened = detail["history"][-1]
    assert (reopened["from_status"], reopened["to_status"]) == ("dismissed", "open")
    assert reopened["changed_by"] is None
    assert reopened["note"] == "reopened: the severity rose from warning to critical"
    assert detail["status_note"] == reopened["note"]
    assert _ids(api, owner, exam_id=triage["exam"]["id"]) == [alert_id]

    # Acknowledged, then more critical repeats: nothing is higher than critical, it stays.
    _set(api, owner, alert_id, "acknowledged", "talking to the student")
    _send(api, student, attempt, PASTE_CRITICAL)
    detail = api.get(f"/api/teacher/alerts/{alert_id}", headers=owner["headers"]).json()
    assert (detail["status"], detail["count"]) == ("acknowledged", 5)


def test_parallel_changes_apply_one_after_the_other(api: Api, triage: dict) -> None:
    owner, analyst, alert_id = triage["owner"], triage["analyst"], triage["alert"]["id"]
    changes = [(owner if i % 2 else analyst, ("acknowledged", "dismissed", "open")[i % 3],
                f"change {i}") for i in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda c: _set(api, c[0], alert_id, c[1], c[2]), changes))
    assert [a.status_code for a in answers] == [200] * len(changes)
    detail = api.get(f"/api/teacher/alerts/{alert_id}", headers=owner["headers"]).json()
    history = detail["history"]
    assert sorted(h["note"] for h in history) == sorted(c[2] for c in changes)
    # Each change starts where the one before it ended: none was lost or read stale.
    assert history[0]["from_status"] == "open"
    for before, after in zip(history, history[1:]):
        assert after["from_status"] == before["to_status"]
        assert after["created_at"] >= before["created_at"]
    assert (detail["status"], detail["status_note"]) == (history[-1]["to_status"],
                                                         history[-1]["note"])


def test_the_stream_carries_status_and_sends_a_triaged_alert_again(
    api: Api, triage: dict
) -> None:
    owner, alert_id = triage["owner"], triage["alert"]["id"]
    received: list[dict] = []
    done = threading.Event()

    def read() -> None:
        with api.stream("GET", "/api/teacher/alerts/stream", headers=owner["headers"],
                        params={"exam_id": triage["exam"]["id"]}, timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    received.append(json.loads(line[6:]))
                    if received[-1]["status"] == "dismissed":
                        break  # closes the stream
        done.set()

    threading.Thread(target=read, daemon=True).start()
    time.sleep(0.5)
    assert _set(api, triage["analyst"], alert_id, "dismissed", "seen").status_code == 200
    assert done.wait(10), "the status change never reached the stream"
    sent = received[-1]
    assert (sent["id"], sent["status_note"], sent["count"]) == (alert_id, "seen", 1)
