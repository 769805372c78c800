"""The exam rules on the pages, in a real Chromium: the teacher sets a window, an attempt limit
and shuffling on the exam form and gives a student extra time; the student's list shows the
window and the attempts left, and the exam page counts down the real time, extra included."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support import Api
from tests.web.test_pages import shot, sign_in


def test_teacher_sets_rules_and_accommodations_on_the_exam_page(
    api: Api, open_page: Any, page_errors: list[str]
) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher)
    context_page = open_page()
    page = context_page
    # The browser's zone is the machine's; the form reads and writes times in it.
    sign_in(page, teacher)
    page.goto(f"/#/teacher/exams/{exam['id']}")
    page.get_by_role("heading", name=f"Exam: {exam['title']}").wait_for()
    assert page.get_by_text(re.compile(r"Times are in your time zone, .+\.")).is_visible()
    page.get_by_label("Opens at (optional)").fill("2030-03-01T09:00")
    page.get_by_label("Closes at (optional)").fill("2030-03-01T08:00")
    page.get_by_role("button", name="Save changes").click()
    page.get_by_text("the closing time must come after the opening time").wait_for()
    page.get_by_label("Closes at (optional)").fill("2030-03-01T11:30")
    page.get_by_label("Attempts per student (optional)").fill("2")
    page.get_by_label("Shuffle the questions (each attempt its own order)").check()
    page.get_by_label("Shuffle the options of choice questions").check()
    page.get_by_role("button", name="Save changes").click()
    page.get_by_text("Saved.", exact=True).wait_for()
    saved = api.get(f"/api/teacher/exams/{exam['id']}", headers=teacher["headers"]).json()
    opens, closes = datetime.fromisoformat(saved["opens_at"]), datetime.fromisoformat(
        saved["closes_at"])
    assert closes - opens == timedelta(hours=2, minutes=30)
    assert (saved["max_attempts"], saved["shuffle_questions"], saved["shuffle_options"]) == (
        2, True, True)
    # The browser's wall-clock time, whatever its zone, is what was typed.
    local = page.evaluate("(iso) => { const d = new Date(iso); return [d.getHours(),"
                          " d.getMinutes()]; }", saved["opens_at"])
    assert local == [9, 0]

    section = page.get_by_role("region", name="Accommodations")
    section.get_by_label("Student", exact=True).fill(student["id"])
    section.get_by_label("Extra minutes").fill("15")
    section.get_by_label("Extra attempts").fill("1")
    section.get_by_label("Note for teachers (optional)").fill("reading support")
    section.get_by_role("button", name="Save accommodation").click()
    row = section.locator(f"tr[data-student-id='{student['id']}']")
    row.wait_for()
    assert "15" in row.inner_text() and "reading support" in row.inner_text()
    listed = api.get(f"/api/teacher/exams/{exam['id']}/accommodations",
                     headers=teacher["headers"]).json()["items"]
    assert [(a["student_id"], a["extra_minutes"], a["extra_attempts"]) for a in listed] == [
        (student["id"], 15, 1)]
    shot(page, "teacher-exam-rules")
    section.get_by_label("Student", exact=True).fill("nobody in particular")
    section.get_by_role("button", name="Save accommodation").click()
    section.get_by_text("Pick a student from the list, or paste their user id.").wait_for()
    row.get_by_role("button").click()
    section.get_by_text("No accommodations yet.").wait_for()
    assert api.get(f"/api/teacher/exams/{exam['id']}/accommodations",
                   headers=teacher["headers"]).json()["items"] == []
    assert page_errors == []


def test_student_sees_window_attempts_and_real_time_left(
    api: Api, open_page: Any, page_errors: list[str]
) -> None:
    teacher, student = api.user("teacher"), api.user()
    now = datetime.now(UTC)
    later = api.exam(teacher, opens_at=(now + timedelta(days=2)).isoformat())
    limited = api.exam(teacher, duration_minutes=30, max_attempts=1,
                       closes_at=(now + timedelta(days=1)).isoformat())
    assert api.put(f"/api/teacher/exams/{limited['id']}/accommodations/{student['id']}",
                   json={"extra_minutes": 15}, headers=teacher["headers"]).status_code == 200
    page = open_page()
    sign_in(page, student)
    page.goto("/#/student/exams")
    card = page.get_by_role("listitem").filter(has_text=later["title"])
    card.get_by_text(re.compile(r"^Opens ")).wait_for()
    assert card.get_by_role("link").count() == 0  # not open yet: nothing to start
    mine = page.get_by_role("listitem").filter(has_text=limited["title"])
    text = mine.inner_text()
    assert "1 of 1" in text and "30 min + 15 min extra time" in text
    # The closing time is shown in the viewer's zone, with the zone named.
    zone = page.evaluate("() => new Date().toLocaleString(undefined, {timeZoneName: 'short'})"
                         ".split(' ').pop()")
    assert zone in text
    shot(page, "student-exam-rules")
    mine.get_by_role("link", name=f"Open exam: {limited['title']}").click()
    page.get_by_text("30 min + 15 min extra time (the clock starts when you press Start)").wait_for()
    page.get_by_role("button", name="Start exam").click()
    timer = page.get_by_role("timer")
    timer.wait_for()
    page.wait_for_function("() => /:/.test(document.querySelector('[role=timer]').textContent)")
    minutes = int(timer.inner_text().split(":")[-2])
    assert 43 <= minutes <= 44, timer.inner_text()
    assert page.locator(".ends-at").is_visible()
    shot(page, "student-exam-extra-time")
    # Back in the list: the attempt in progress can be continued though no attempt is left.
    page.goto("/#/student/exams")
    again = page.get_by_role("listitem").filter(has_text=limited["title"])
    again.get_by_role("link", name=f"Continue exam: {limited['title']}").wait_for()
    assert "0 of 1" in again.inner_text()
    assert page_errors == []
