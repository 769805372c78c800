"""The grading pages in Chromium: a teacher finds a submitted attempt in the grading list,
reads the answers, grades the essay and the short answer, and the student sees the points and
the feedback on their result page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support import PASSWORD, Api

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
ESSAY = "Two and two make four,\nbecause counting on from two twice gives four."


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, user: dict[str, Any]) -> None:
    page.goto("/#/login")
    page.get_by_label("Email or username").fill(user["username"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()


def test_a_teacher_grades_an_essay_and_the_student_sees_it(
    api: Api, admin: dict, open_page: Any, page_errors: list[str]
) -> None:
    teacher = api.user("teacher")
    student = api.user("student", full_name="Ada Lovelace")
    exam = api.exam(teacher, show_results="after_submit", questions=[
        {"id": "q1", "type": "single_choice", "prompt": "2+2?", "points": 4,
         "options": ["3", "4", "5"], "correct": "4"},
        {"id": "q2", "type": "short_text", "prompt": "Capital of France?", "points": 3,
         "correct": ["Paris"]},
        {"id": "q3", "type": "essay", "prompt": "Explain your reasoning.", "points": 3},
    ])
    attempt_id = api.start(student, exam)["attempt_id"]
    submitted = api.submit(student, attempt_id, {"q1": "4", "q2": "Paris, France", "q3": ESSAY})
    assert submitted.json()["grading_status"] == "pending"

    page = open_page()
    sign_in(page, teacher)
    page.get_by_role("link", name="Grading", exact=True).click()
    page.get_by_role("heading", name="Grading", exact=True).wait_for()
    row = page.locator(f"tr[data-attempt-id='{attempt_id}']")
    row.wait_for()
    assert "Ada Lovelace" in row.inner_text() and "2 questions" in row.inner_text()
    assert "Awaiting grading" in row.inner_text()
    shot(page, "teacher-grading-list")

    row.get_by_role("link", name="Grade Ada Lovelace's attempt").click()
    page.get_by_role("heading", name=f"Grading: {exam['title']}, Ada Lovelace").wait_for()
    essay = page.locator("section[data-question-id=q3]")
    assert "counting on from two twice" in essay.locator(".answer").inner_text()
    essay.get_by_label("Points (0 to 3)").fill("2.5")
    essay.get_by_label("Feedback for the student (optional)").fill("Good; name the rule you use.")
    essay.get_by_role("button", name="Save grade").click()
    essay.get_by_text("Saved.").wait_for()
    assert "Graded: 2.5 points by you" in essay.inner_text()
    summary = page.locator("dl.facts")
    assert "6.5 of 10" in summary.inner_text() and "Awaiting grading" in summary.inner_text()

    # The short answer was marked wrong automatically ("Paris, France" is no exact match);
    # the teacher gives it full points.
    short = page.locator("section[data-question-id=q2]")
    assert "Automatic: 0" in short.inner_text()
    short.get_by_label("Points (0 to 3)").fill("3")
    short.get_by_role("button", name="Save grade").click()
    short.get_by_text("Saved.").wait_for()
    page.locator("dl.facts [data-grading-status=graded]").wait_for()
    assert "9.5 of 10 (95.0 %)" in summary.inner_text()
    # Out of range: refused on the page, nothing sent.
    short.get_by_label("Points (0 to 3)").fill("4")
    short.get_by_role("button", name="Regrade").click()
    short.get_by_text("Points must be between 0 and 3.").wait_for()
    shot(page, "teacher-grading-attempt")

    page.get_by_role("link", name="Back to the grading list").click()
    page.get_by_text("Nothing is waiting for a grade.").wait_for()
    page.get_by_label("Show").select_option("graded")
    page.locator(f"tr[data-attempt-id='{attempt_id}']").wait_for()

    mine = open_page()
    sign_in(mine, student)
    mine.goto(f"/#/student/attempts/{attempt_id}")
    mine.get_by_role("heading", name="Your answers").wait_for()
    essay_result = mine.locator("article[data-question-id=q3]")
    assert "2.5 of 3" in essay_result.inner_text()
    assert "Good; name the rule you use." in essay_result.inner_text()
    assert "Paris" in mine.locator("article[data-question-id=q2]").inner_text()
    assert mine.locator("dl.facts [data-grading-status=graded]").count() == 1
    shot(mine, "student-graded-result")
    mine.get_by_role("link", name="Back to my dashboard").click()
    mine.get_by_role("heading", name="Exam history").wait_for()
    assert "Graded" in mine.locator("table").inner_text()
    assert page_errors == []
