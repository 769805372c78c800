"""The teacher's alert pages in Chromium: triage with a note and its history, filters, paging,
the live stream putting new and changed alerts in their place, the exports and the printable
report."""

from __future__ import annotations

import csv
import re
from typing import Any

from tests.support import Api
from tests.web.test_pages import shot, sign_in


def _send(api: Api, student: dict, attempt: dict, *events: dict) -> None:
    response = api.post("/api/monitor/events/batch", headers=student["headers"],
                        json={"attempt_id": attempt["attempt_id"], "events": list(events)})
    assert response.status_code == 201, response.text


def _shown(page: Any) -> list[str]:
    return page.locator("table.alerts tbody tr[data-alert-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.alertId)")


def _listed(api: Api, teacher: dict, **params: Any) -> list[str]:
    return [a["id"] for a in api.get("/api/teacher/alerts", headers=teacher["headers"],
                                     params={"limit": 500, **params}).json()["items"]]


def test_a_teacher_triages_alerts_as_they_arrive(
    api: Api, admin: dict, new_context: Any, open_page: Any, page_errors: list[str]
) -> None:
    teacher, colleague, student = api.user("teacher"), api.user("teacher"), api.user()
    exam = api.exam(teacher)
    assert api.grant(teacher, exam, colleague, can_view_analytics=True).status_code == 201
    attempt = api.start(student, exam)
    _send(api, student, attempt, {"event_type": "paste", "data": {"chars": 300}},
          {"event_type": "focus_lost", "data": {"duration_ms": 60_000}})

    page = open_page()
    sign_in(page, teacher)
    page.get_by_role("link", name="Live alerts").click()
    page.get_by_role("heading", name="Alerts").wait_for()
    page.locator("tr[data-event-type=paste]").wait_for()
    scope = {"exam_id": exam["id"]}
    assert _shown(page) == _listed(api, teacher)
    paste = page.locator("tr[data-event-type=paste]")
    # Plain words, not the event's name.
    assert "Pasted text" in paste.inner_text() and "Needs a look" in paste.inner_text()

    # New alerts from the stream land at their rank: a critical one above the warnings.
    _send(api, student, attempt, {"event_type": "multiple_faces", "data": {"count": 4}})
    page.locator("tr[data-event-type=multiple_faces]").wait_for(timeout=10_000)
    assert _shown(page) == _listed(api, teacher)
    assert _shown(page)[0] == page.locator("tr[data-event-type=multiple_faces]").get_attribute(
        "data-alert-id")
    shot(page, "teacher-alerts")

    # Dismiss the paste with a note: it leaves the open list.
    paste.get_by_role("button", name=re.compile("^Dismiss")).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Note (optional)").fill("A quotation from the set text.")
    shot(page, "teacher-alert-triage")
    dialog.get_by_role("button", name="Save").click()
    paste.wait_for(state="detached")
    assert _shown(page) == _listed(api, teacher)

    # Another teacher acknowledges the focus alert: this page follows without a reload.
    focus_id = page.locator("tr[data-event-type=focus_lost]").get_attribute("data-alert-id")
    assert api.post(f"/api/teacher/alerts/{focus_id}/status", headers=colleague["headers"],
                    json={"status": "acknowledged", "note": "on it"}).status_code == 200
    page.locator("tr[data-event-type=focus_lost]").wait_for(state="detached", timeout=10_000)

    # The set-aside ones, with their notes and history.
    page.get_by_label("Status", exact=True).select_option(label="Set aside")
    row = page.locator("tr[data-event-type=paste]")
    row.wait_for()
    assert "A quotation from the set text." in row.inner_text()
    row.get_by_role("button", name=re.compile("^Reopen")).click()
    history = page.get_by_role("dialog").locator("ol.history")
    history.get_by_text("Set aside").wait_for()
    assert teacher["username"] in history.inner_text()
    assert "A quotation from the set text." in history.inner_text()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()

    # A repeat at a higher severity reopens it, and the stream brings it back to the open list.
    page.get_by_label("Status", exact=True).select_option(label="Needs a look")
    page.locator("tr[data-event-type=multiple_faces]").wait_for()
    _send(api, student, attempt, {"event_type": "paste", "data": {"chars": 5000}})
    page.locator("tr[data-event-type=paste]").wait_for(timeout=10_000)
    assert _shown(page) == _listed(api, teacher)

    # Filters by exam and kind.
    other_exam, other_student = api.exam(teacher), api.user()
    _send(api, other_student, api.start(other_student, other_exam),
          {"event_type": "gaze_off", "data": {"duration_ms": 60_000}})
    page.get_by_label("Kind", exact=True).select_option(label="Looked away from the screen")
    page.wait_for_function("() => [...document.querySelectorAll('table.alerts tbody tr[data-alert-id]')]"
                           ".every(r => r.dataset.eventType === 'gaze_off')")
    assert _shown(page) == _listed(api, teacher, kind="gaze_off")
    page.get_by_label("Kind", exact=True).select_option(label="All kinds")
    page.get_by_label("Exam", exact=True).select_option(label=exam["title"])
    page.wait_for_function("n => document.querySelectorAll('table.alerts tbody tr[data-alert-id]').length === n",
                           arg=len(_listed(api, teacher, **scope)))

    # The exam's alerts as a CSV download.
    with page.expect_download() as info:
        page.get_by_role("button", name="Download this exam's alerts (CSV)").click()
    download = info.value
    assert download.suggested_filename == f"alerts-{exam['id']}.csv"
    with open(download.path(), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["alert_id"] for r in rows} == set(_listed(api, teacher, **scope, status="all"))
    assert page_errors == []


def test_paging_and_the_reports_from_the_pages(
    api: Api, admin: dict, open_page: Any, page_errors: list[str]
) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher)
    attempt = api.start(student, exam)
    # 55 kinds of critical event from a monitoring module: 55 alerts, more than a page.
    _send(api, student, attempt, *({"event_type": f"module.alarm{i}", "severity": "critical",
                                    "data": {}} for i in range(55)))
    page = open_page()
    sign_in(page, teacher)
    page.goto(f"/#/teacher/alerts?exam={exam['id']}")
    page.locator("tr[data-kind=monitoring_anomaly]").first.wait_for()
    assert len(_shown(page)) == 50
    page.get_by_role("button", name="Load more").click()
    page.wait_for_function("() => document.querySelectorAll('table.alerts tbody tr[data-alert-id]').length === 55")
    assert _shown(page) == _listed(api, teacher, exam_id=exam["id"])
    assert page.get_by_role("button", name="Load more").is_hidden()

    # The grades from the exam's analytics page.
    assert api.submit(student, attempt["attempt_id"], {"q1": "4"}).status_code == 200
    page.goto(f"/#/teacher/exams/{exam['id']}/analytics")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download grades (CSV)").click()
    with open(info.value.path(), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["attempt_id"], r["username"]) for r in rows] == [
        (attempt["attempt_id"], student["username"])]

    # The printable report from the attempt page, styled by its own stylesheet.
    page.goto(f"/#/teacher/attempts/{attempt['attempt_id']}")
    with page.context.expect_page() as popup:
        page.get_by_role("button", name="Printable report").click()
    report = popup.value
    report.wait_for_load_state()
    report.get_by_role("heading", name=re.compile("^Incident report: ")).wait_for()
    assert report.evaluate("getComputedStyle(document.querySelector('.disclaimer'))"
                           ".borderTopStyle") == "solid"
    assert "Timeline of anomalies" in report.content()
    shot(report, "incident-report")
    report.emulate_media(media="print")
    shot(report, "incident-report-print")

    # The admin's audit log, as filtered, downloads whole.
    office = open_page()
    sign_in(office, admin)
    office.goto("/#/admin/audit")
    office.get_by_label("User id").fill(teacher["id"])
    with office.expect_download() as info:
        office.get_by_role("button", name="Download (CSV)").click()
    with open(info.value.path(), encoding="utf-8") as f:
        audited = list(csv.DictReader(f))
    assert audited and {r["user_id"] for r in audited} == {teacher["id"]}
    assert "view_student_data" in {r["action"] for r in audited}
    assert page_errors == []
