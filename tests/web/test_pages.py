"""The web pages end to end: a real Chromium against the suite's real server and database.

Each test makes its own users and exams, so they do not see each other's data.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from tests.support import PASSWORD, Api, unique

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

ALL_SENT = """() => { const m = window.veritasMonitor;
  return !!m && m.stats.pending === 0 && m.stats.unsaved === 0; }"""

# A tab switch as the page sees it: the window blurs and the document is hidden, then back.
LEAVE = """() => { window.dispatchEvent(new Event('blur'));
  Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});
  document.dispatchEvent(new Event('visibilitychange')); }"""
RETURN = """() => { delete document.visibilityState;
  document.dispatchEvent(new Event('visibilitychange'));
  window.dispatchEvent(new Event('focus')); }"""


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def filter_users(page: Any, text: str, user_id: str) -> Any:
    """Filter the admin's user list down to one user and return their row, once the filtered
    list is the one shown: the unfiltered list is there first, and a click on its row could
    be redrawn by the filtered answer arriving later, from before the click took effect."""
    page.get_by_label("Email or username contains").fill(text)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_function("""id => { const rows = [...document.querySelectorAll('tr[data-user-id]')];
        return rows.length === 1 && rows[0].dataset.userId === id; }""", arg=str(user_id))
    return page.locator(f"tr[data-user-id='{user_id}']")


def sign_in(page: Any, user: dict[str, Any]) -> None:
    page.goto("/#/login")
    page.get_by_label("Email or username").fill(user["username"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()


def exam_with_essay(api: Api, teacher: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    questions = [
        {"id": "q1", "type": "single_choice", "prompt": "2+2?", "points": 4,
         "options": ["3", "4", "5"], "correct": "4"},
        {"id": "q2", "type": "short_text", "prompt": "Capital of France?", "points": 3,
         "correct": ["Paris"]},
        {"id": "q3", "type": "essay", "prompt": "Explain your reasoning.", "points": 3},
    ]
    return api.exam(teacher, questions=questions, **overrides)


def open_exam(page: Any, exam: dict[str, Any]) -> str:
    """From the student's exam list to a started attempt; returns the attempt id."""
    page.goto("/#/student/exams")
    page.get_by_role("link", name=f"Open exam: {exam['title']}").click()
    page.get_by_role("button", name="Start exam").click()
    page.locator("[data-question-id=q1]").wait_for()
    page.wait_for_function("() => !!window.veritasMonitor")
    return page.evaluate("window.veritasMonitor.attemptId")


def paste(page: Any, selector: str, text: str) -> None:
    """A real Ctrl+V into the field, through the (permission-granted) clipboard."""
    page.evaluate("text => navigator.clipboard.writeText(text)", text)
    page.focus(selector)
    page.keyboard.press("Control+V")


def stats(page: Any) -> dict[str, Any]:
    return page.evaluate("window.veritasMonitor.stats")


def stored_events(db: Any, attempt_id: str) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT event_id, event_type, data_payload, is_anomaly FROM monitoring_events "
        "WHERE exam_attempt_id = %s ORDER BY (data_payload->>'seq')::int", (attempt_id,)
    ).fetchall()


def test_tab_switches_and_paste_reach_the_teachers_live_alerts(
    api: Api, admin: dict, db: Any, new_context: Any, open_page: Any, page_errors: list[str]
) -> None:
    teacher, student = api.user("teacher"), api.user("student")
    # A short absence threshold, so a brief tab switch is an anomaly without a long wait.
    exam = exam_with_essay(api, teacher, metadata={"anomaly_rules": {"focus_lost_ms": 400}})

    watcher = open_page()
    sign_in(watcher, teacher)
    watcher.get_by_role("link", name="Live alerts").click()
    watcher.get_by_text("No alerts.").wait_for()
    watcher.evaluate("window.__sameDocument = true")  # survives only if the page never reloads

    context = new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = open_page(context)
    sign_in(page, student)
    shot(page, "student-exams")
    page.get_by_role("link", name=f"Open exam: {exam['title']}").click()
    page.get_by_role("heading", name="What is recorded").wait_for()
    assert "never the text itself" in page.locator(".vm-disclosure").inner_text()
    shot(page, "exam-intro")
    page.get_by_role("button", name="Start exam").click()
    page.wait_for_function("() => !!window.veritasMonitor")
    attempt_id = page.evaluate("window.veritasMonitor.attemptId")

    page.get_by_role("group", name=re.compile("Question 1 of 3")).get_by_label("4").check()
    page.evaluate(LEAVE)
    page.wait_for_timeout(700)
    page.evaluate(RETURN)
    paste(page, "#answer-q3", "The answer is four because " + "two and two " * 30)
    page.keyboard.type(" I checked it twice.")
    page.get_by_label("Capital of France?").fill("Paris")
    page.wait_for_function(ALL_SENT, timeout=20_000)
    shot(page, "exam-in-progress")

    generated = stats(page)["byType"]
    assert generated["focus_lost"] == 1 and generated["visibility_hidden"] == 1
    assert generated["paste"] == 1

    # The teacher's list picks both up by itself.
    watcher.locator("tr[data-event-type=paste]").wait_for(timeout=10_000)
    watcher.locator("tr[data-event-type=focus_lost]").wait_for(timeout=10_000)
    assert watcher.evaluate("window.__sameDocument") is True
    paste_row = watcher.locator("tr[data-event-type=paste]").inner_text()
    assert "paste of 387 characters" in paste_row
    shot(watcher, "teacher-live-alerts")

    page.get_by_role("button", name="Submit exam").click()
    page.get_by_role("heading", name=f"Submitted: {exam['title']}").wait_for()
    result = page.locator(".result").inner_text()
    # The essay and the short answer wait for the teacher: the 7 points are not final.
    assert "7 of 10 points" in result and "Awaiting grading" in result
    assert "not final yet" in result
    shot(page, "exam-result")
    page.get_by_role("link", name="See the details of this attempt").click()
    page.get_by_role("heading", name="What was recorded").wait_for()
    shot(page, "student-attempt")
    page.get_by_role("link", name="My dashboard").first.click()
    page.get_by_role("heading", name="Exam history").wait_for()
    assert exam["title"] in page.locator("table").inner_text()
    shot(page, "student-dashboard")

    # Content never leaves the browser: only sizes and timings.
    rows = stored_events(db, attempt_id)
    for _, event_type, data, _ in rows:
        if event_type == "paste":
            assert data == {"chars": 387, "question_id": "q3", "seq": data["seq"]}
        if event_type == "typing":
            assert set(data) == {"question_id", "keys", "chars_added", "mean_interval_ms",
                                 "pauses_over_2s", "seq"}

    # The alert leads to the attempt's timeline, where the anomalies are marked.
    watcher.locator("tr[data-event-type=paste]").get_by_role("link", name="Timeline").click()
    watcher.get_by_role("heading", name=f"Attempt timeline: {exam['title']}").wait_for()
    assert watcher.locator(".anomaly-marker").count() >= 2
    # Each event's data_payload, as the monitoring list names it, in the table of events.
    events_table = watcher.locator("table", has=watcher.locator(
        "caption", has_text="Every event of this attempt"))
    assert "chars: 387" in events_table.inner_text()
    # The submitted attempt's analysis: queued, or done by now.
    analysis = watcher.locator("dl.facts dt", has_text="Analysis").locator(
        "xpath=following-sibling::dd[1]")
    assert analysis.inner_text() in ("Pending", "Done")
    shot(watcher, "teacher-attempt-timeline")
    watcher.get_by_role("link", name="Student detail").click()
    watcher.get_by_role("heading", name="Attempts at your exams").wait_for()
    shot(watcher, "teacher-student-detail")
    assert page_errors == []


def test_offline_minutes_and_a_reload_lose_nothing_and_duplicate_nothing(
    api: Api, admin: dict, db: Any, new_context: Any, open_page: Any, page_errors: list[str]
) -> None:
    teacher, student = api.user("teacher"), api.user("student")
    exam = exam_with_essay(api, teacher)
    context = new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = open_page(context)
    sign_in(page, student)
    attempt_id = open_exam(page, exam)
    page.wait_for_function(ALL_SENT)

    context.set_offline(True)
    page.wait_for_function("() => window.veritasMonitor.state === 'offline'")
    page.evaluate(LEAVE)
    page.wait_for_timeout(300)
    page.evaluate(RETURN)
    paste(page, "#answer-q3", "x" * 50)
    page.keyboard.type("offline words")
    page.wait_for_timeout(5_500)  # at least one heartbeat while offline
    assert page.locator(".vm-indicator").get_attribute("data-state") == "offline"
    shot(page, "exam-offline")

    # Back online, but the server still unreachable for events; then the page reloads.
    page.route("**/api/monitor/**", lambda route: route.abort())
    context.set_offline(False)
    page.wait_for_function("() => window.veritasMonitor.stats.byType.network_offline === 1")
    page.wait_for_function("() => window.veritasMonitor.stats.unsaved === 0")
    first = stats(page)
    assert first["pending"] > 0 and first["byType"]["heartbeat"] >= 1
    page.reload()
    page.locator("[data-question-id=q1]").wait_for()  # resumed without asking again
    page.wait_for_function(
        "() => !!window.veritasMonitor && window.veritasMonitor.state !== 'starting'")
    resumed = stats(page)
    assert resumed["nextSeq"] >= first["nextSeq"]
    assert resumed["pending"] >= first["pending"] - 1  # a keepalive on pagehide may have landed
    assert page.get_by_label("Capital of France?").input_value() == ""  # nothing typed there
    assert "offline words" in page.locator("#answer-q3").input_value()  # the draft survived

    page.unroute("**/api/monitor/**")
    page.wait_for_function(ALL_SENT, timeout=45_000)
    page.get_by_role("button", name="Submit exam").click()
    page.get_by_role("heading", name=f"Submitted: {exam['title']}").wait_for()
    final = stats(page)
    assert final["pending"] == 0

    rows = stored_events(db, attempt_id)
    event_ids = [r[0] for r in rows]
    seqs = [r[2]["seq"] for r in rows]
    assert len(event_ids) == len(set(event_ids)), "an event was stored twice"
    assert seqs == list(range(final["nextSeq"])), "an event is missing or duplicated"
    types = [r[1] for r in rows]
    assert types.count("network_offline") == 1 and types.count("paste") == 1
    assert types.count("focus_lost") == 1
    assert page_errors == []


def test_a_student_cannot_reach_teacher_or_admin_pages_or_data(
    api: Api, admin: dict, open_page: Any, page_errors: list[str]
) -> None:
    teacher, student, other = api.user("teacher"), api.user("student"), api.user("student")
    exam = api.exam(teacher)
    others_attempt = api.start(other, exam)
    page = open_page()
    staff_calls: list[str] = []
    page.on("request", lambda r: staff_calls.append(r.url)
            if re.search(r"/api/(teacher|admin)/", r.url) else None)
    sign_in(page, student)

    for path in ("/#/teacher/exams", "/#/teacher/alerts",
                 f"/#/teacher/exams/{exam['id']}/analytics", f"/#/teacher/students/{other['id']}",
                 "/#/admin/users", "/#/admin/audit"):
        page.goto(path)
        page.get_by_role("heading", name="Not available").wait_for()
        assert "You are signed in as a student" in page.get_by_role("alert").inner_text()
    shot(page, "access-denied")
    assert staff_calls == []  # the pages did not even ask

    # And the API refuses the same data when asked directly with the student's token.
    answers = page.evaluate("""async (paths) => {
        const token = JSON.parse(sessionStorage.getItem('veritas.session')).token;
        const out = {};
        for (const p of paths) {
            const r = await fetch(p, {headers: {Authorization: 'Bearer ' + token}});
            out[p] = [r.status, await r.text()];
        }
        return out; }""", [
        "/api/teacher/exams", "/api/teacher/alerts", "/api/teacher/dashboard",
        f"/api/teacher/exams/{exam['id']}/analytics", f"/api/teacher/students/{other['id']}",
        f"/api/teacher/attempts/{others_attempt['attempt_id']}", "/api/admin/users",
        "/api/admin/audit-logs", f"/api/student/attempts/{others_attempt['attempt_id']}",
    ])
    for path, (status, body) in answers.items():
        assert status in (403, 404), (path, status)
        assert exam["title"] not in body and teacher["email"] not in body, path
        assert other["email"] not in body, path

    # A teacher is kept out of the admin pages the same way.
    staff = open_page()
    sign_in(staff, teacher)
    staff.goto("/#/admin/users")
    staff.get_by_role("heading", name="Not available").wait_for()
    assert page_errors == []


def test_the_exam_page_works_with_the_keyboard_alone(
    api: Api, admin: dict, db: Any, open_page: Any, page_errors: list[str]
) -> None:
    teacher, student = api.user("teacher"), api.user("student")
    exam = api.exam(teacher)  # single choice, multiple choice, short text
    page = open_page()

    def tab_until(condition: str, limit: int = 80) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(f"() => {{ const el = document.activeElement; return {condition}; }}"):
                return
        raise AssertionError(f"Tab never reached: {condition}")

    page.goto("/#/login")
    shot(page, "login")
    page.keyboard.type(student["username"])  # the first field has focus already
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Available exams").wait_for()
    tab_until(f"el.getAttribute('aria-label') === {json.dumps('Open exam: ' + exam['title'])}")
    page.keyboard.press("Enter")
    tab_until("el.textContent === 'Start exam'")
    page.keyboard.press("Enter")
    page.locator("[data-question-id=q1]").wait_for()

    # Every control on the page has an accessible name.
    unnamed = page.evaluate("""() => [...document.querySelectorAll(
        'main input, main select, main textarea, main button, main a')].filter(el => !(
        (el.labels && el.labels.length) || el.getAttribute('aria-label') ||
        el.getAttribute('aria-labelledby') || el.textContent.trim())).map(el => el.outerHTML)""")
    assert unnamed == []
    assert page.get_by_role("group", name=re.compile(r"Question 1 of 3 .* 2\+2\?")).count() == 1
    assert page.get_by_role("textbox", name="Capital of France?").count() == 1

    tab_until("el.name === 'q-q1'")
    page.keyboard.press("ArrowDown")  # from "3" to "4", which checks it
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.value") == "2"
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # "3"
    tab_until("el.name === 'q-q3'")
    page.keyboard.type("Paris")
    tab_until("el.textContent === 'Submit exam'")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused button shows no focus ring"
    page.keyboard.press("Enter")
    page.get_by_role("heading", name=f"Submitted: {exam['title']}").wait_for()
    assert "10 of 10 points" in page.locator(".result").inner_text()

    attempt_id = page.evaluate("window.veritasMonitor.attemptId")
    typing = [r[2] for r in stored_events(db, attempt_id) if r[1] == "typing"]
    assert typing and typing[-1]["question_id"] == "q3"
    assert typing[-1]["keys"] == 5 and typing[-1]["chars_added"] == 5
    assert page_errors == []


def test_teacher_builds_publishes_shares_and_reads_an_exam_and_admin_manages_users(
    api: Api, admin: dict, open_page: Any, page_errors: list[str]
) -> None:
    teacher, colleague, student = api.user("teacher"), api.user("teacher"), api.user("student")
    page = open_page()
    sign_in(page, teacher)
    page.get_by_role("link", name="New exam").click()
    title = unique("Geometry check ")
    page.get_by_label("Title").fill(title)
    page.get_by_label("Subject").fill("Mathematics")
    page.get_by_label("Duration in minutes").fill("20")
    page.get_by_label("Passing score (points)").fill("1")
    question = page.get_by_role("group", name="Question 1")
    question.get_by_label("Question", exact=True).fill("How many sides has a triangle?")
    question.get_by_label("Points").fill("2")
    question.get_by_label("Options, one per line").fill("3\n4")
    question.get_by_label("Correct option (exactly as written above)").fill("3")
    shot(page, "teacher-new-exam")
    page.get_by_role("button", name="Create exam").click()
    page.get_by_role("heading", name=f"Exam: {title}").wait_for()
    assert page.get_by_text("Draft: not visible to students.").is_visible()
    page.get_by_role("button", name="Publish").click()
    page.get_by_text("Published: students can now start this exam.").wait_for()
    page.get_by_label("Teacher's user id").fill(colleague["id"])
    page.get_by_role("button", name="Grant access").click()
    page.get_by_text("Access granted.").wait_for()
    shot(page, "teacher-edit-exam")
    exam_id = page.url.rsplit("/", 1)[1]

    # The colleague sees it now; a student's attempt gives the analytics something to show.
    assert any(e["id"] == exam_id for e in
               api.get("/api/teacher/exams", headers=colleague["headers"]).json()["items"])
    attempt = api.start(student, {"id": exam_id})
    questions = attempt["questions"]
    assert api.submit(student, attempt["attempt_id"], {questions[0]["id"]: "3"}).status_code == 200

    page.get_by_role("link", name="Exams", exact=True).click()
    page.get_by_role("link", name=title, exact=True).wait_for()
    shot(page, "teacher-exams")
    page.get_by_role("link", name=f"Analytics for {title}").click()
    page.get_by_role("heading", name=f"Analytics: {title}").wait_for()
    assert page.locator("figure svg[role=img]").count() == 4
    assert "Passed: 1 (100 %)" in page.locator("figure").nth(3).inner_text()
    shot(page, "teacher-analytics")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, admin)
    row = filter_users(page, student["username"], student["id"])
    page.once("dialog", lambda dialog: dialog.accept())  # locking asks to confirm
    row.get_by_role("button", name=f"Lock {student['username']}").click()
    page.get_by_text(f"{student['username']} is now locked.").wait_for()
    login = api.post("/api/auth/login", json={"email": student["email"], "password": PASSWORD})
    assert login.status_code == 403
    row.get_by_role("button", name=f"Unlock {student['username']}").click()
    page.get_by_text(f"{student['username']} is now unlocked.").wait_for()

    new_name = unique("teacher")
    page.get_by_label("Email", exact=True).fill(f"{new_name}@school.example")
    page.get_by_label("Username", exact=True).fill(new_name)
    page.get_by_label("Initial password").fill(PASSWORD)
    page.get_by_role("button", name="Create user").click()
    page.get_by_text(f"Teacher {new_name} created").wait_for()
    shot(page, "admin-users")
    assert api.login(f"{new_name}@school.example")["role"] == "teacher"

    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Action", exact=True).select_option("lock_user")
    page.get_by_role("button", name="Filter").click()
    # The unfiltered page was there first; wait until only the filtered records remain.
    page.wait_for_function("""() => { const actions = [...document.querySelectorAll('tbody tr')]
        .map(r => r.children[1] && r.children[1].textContent);
        return actions.length > 0 && actions.every(a => a === 'lock_user'); }""")
    shot(page, "admin-audit-log")
    assert page_errors == []


SDK_MONITOR = """async ([dbName, attemptId]) => {
    const { VeritasMonitor } = await import('/sdk/veritas-monitor.js');
    const m = new VeritasMonitor({ attemptId, token: 't0k', heartbeatMs: 600000,
                                   batchDelayMs: 20, backoffBaseMs: 100, dbName });
    window.m = m;
    m.addEventListener('ended', () => { window.endedEvent = true; });
    await m.start({ capture: false });
    m.track('paste', { chars: 12, question_id: 'q1' });
    m.track('custom.module', { x: 1 }, { severity: 'warning' });
}"""


def test_the_sdk_delivery_rules_and_the_rest_of_its_capture(
    open_page: Any, page_errors: list[str]
) -> None:
    """Retry-After, halving refused batches, stopping on 409 against scripted answers (no
    real attempt behind them); then full screen, copy and idle, which the other tests skip."""
    page = open_page()
    page.goto("/#/login")
    calls: list[tuple[float, dict[str, Any], str | None]] = []
    answers = [
        (503, {"Retry-After": "1"}, {"detail": "busy"}),  # wait at least the second it asks
        (413, {}, {"detail": "too large"}),  # halve the batch…
        (201, {}, {"recorded": 1, "duplicates": 0}),  # …first half stored
        (422, {}, {"detail": "bad event"}),  # a lone refused event is dropped, not retried forever
        (201, {}, {"recorded": 0, "duplicates": 1}),  # a later event; the server had it already
        (409, {}, {"detail": "the attempt has ended"}),  # stop for good
    ]

    def answer(route: Any) -> None:
        calls.append((time.monotonic(), route.request.post_data_json,
                      route.request.headers.get("authorization")))
        status, headers, body = answers[min(len(calls), len(answers)) - 1]
        route.fulfill(status=status, headers=headers, json=body)

    page.route("**/api/monitor/events/batch", answer)
    attempt_id = "00000000-0000-4000-8000-000000000001"
    page.evaluate(SDK_MONITOR, [unique("sdk-test-"), attempt_id])
    page.wait_for_function("() => m.stats.pending === 0 && m.stats.rejected === 1")
    assert calls[1][0] - calls[0][0] >= 1.0, "Retry-After was not honoured"
    first = calls[0][1]
    assert first["attempt_id"] == attempt_id and calls[0][2] == "Bearer t0k"
    assert [e["data"]["seq"] for e in first["events"]] == [0, 1]
    assert first["events"][0]["data"] == {"chars": 12, "question_id": "q1", "seq": 0}
    assert first["events"][1]["severity"] == "warning"
    assert all(re.fullmatch(r"[0-9a-f-]{36}", e["event_id"]) and e["client_timestamp"]
               for e in first["events"])
    assert [len(c[1]["events"]) for c in calls[1:4]] == [2, 1, 1]

    page.evaluate("m.track('heartbeat', {})")
    page.wait_for_function("() => m.stats.acknowledged === 2")
    page.evaluate("m.track('heartbeat', {})")
    page.wait_for_function("() => m.state === 'ended' && window.endedEvent === true")
    assert page.evaluate("m.track('heartbeat', {})") is None  # an ended monitor records nothing
    assert page.evaluate("m.stats.pending") == 0
    assert page_errors == []

    # Capture: full screen left, clipboard sizes from an input's selection, and idle time.
    sent: list[dict[str, Any]] = []

    def store(route: Any) -> None:
        sent.extend(route.request.post_data_json["events"])
        route.fulfill(status=201, json={"recorded": 1, "duplicates": 0})

    page.unroute("**/api/monitor/events/batch")
    page.route("**/api/monitor/events/batch", store)
    page.evaluate("""async (dbName) => {
        const { VeritasMonitor } = await import('/sdk/veritas-monitor.js');
        window.m2 = new VeritasMonitor({ attemptId: '00000000-0000-4000-8000-000000000002',
            token: 't0k', idleMs: 1000, heartbeatMs: 600000, batchDelayMs: 20, dbName });
        await m2.start(); }""", unique("sdk-test-"))
    page.evaluate("document.documentElement.requestFullscreen()")
    page.wait_for_function("() => !!document.fullscreenElement")
    page.wait_for_timeout(300)  # fullscreenchange fires on the next frame; a person is slower
    page.evaluate("document.exitFullscreen()")
    field = page.get_by_label("Email or username")
    field.fill("hello")
    field.press("Control+A")
    field.press("Control+C")
    page.wait_for_timeout(2_300)  # no input for longer than idleMs
    page.mouse.click(5, 5)
    page.wait_for_function("() => m2.stats.byType.idle === 1 && m2.stats.pending === 0")
    by_type = {e["event_type"]: e["data"] for e in sent}
    assert "fullscreen_exit" in by_type
    assert by_type["copy"]["chars"] == 5
    assert by_type["idle"]["duration_ms"] >= 1_000
    assert page_errors == []
