"""The teacher's pages mark a provisional integrity score, and stop once the exam settles."""

from __future__ import annotations

import time
from typing import Any

from tests.support import Api
from tests.web.test_pages import sign_in

ESSAY = "The membrane pumps ions against the gradient using energy from the cell " * 4


def _submit(api: Api, student: dict, attempt_id: str, pasted: bool) -> None:
    event = ({"event_type": "paste", "data": {"question_id": "e1", "chars": len(ESSAY)}}
             if pasted else
             {"event_type": "typing", "data": {"question_id": "e1", "keys": len(ESSAY),
                                               "chars_added": len(ESSAY)}})
    sent = api.post("/api/monitor/events/batch", headers=student["headers"], json={
        "attempt_id": attempt_id, "events": [{"event_type": "heartbeat"}, event]})
    assert sent.status_code == 201, sent.text
    assert api.submit(student, attempt_id, {"e1": ESSAY}).status_code == 200


def _wait(db: Any, sql: str, *params: Any) -> None:
    deadline = time.monotonic() + 60
    while not db.execute(sql, params).fetchone()[0]:
        assert time.monotonic() < deadline, sql
        time.sleep(0.2)


def test_the_pages_mark_provisional_integrity_scores(
    api: Api, db: Any, open_page: Any, page_errors: list[str]
) -> None:
    teacher, paster, writer = api.user("teacher"), api.user(), api.user()
    exam = api.exam(teacher, questions=[
        {"id": "e1", "type": "essay", "prompt": "Explain.", "points": 5}],
        max_score=5, passing_score=3)
    pasted = api.start(paster, exam)["attempt_id"]
    writing = api.start(writer, exam)["attempt_id"]
    _submit(api, paster, pasted, pasted=True)
    _wait(db, "SELECT analysis_status = 'done' FROM exam_attempts WHERE id = %s", pasted)

    page = open_page()
    sign_in(page, teacher)
    page.goto(f"/#/teacher/exams/{exam['id']}/analytics")
    page.get_by_role("heading", name=f"Analytics: {exam['title']}").wait_for()
    average = page.locator("dl.facts dt", has_text="Average integrity").locator(
        "xpath=following-sibling::dd[1]")
    assert "provisional" in average.inner_text()
    assert page.locator("table .badge-provisional").count() == 1  # the paster's row
    page.goto(f"/#/teacher/attempts/{pasted}")
    page.get_by_role("heading", name=f"Attempt timeline: {exam['title']}").wait_for()
    integrity = page.locator("dl.facts dt", has_text="Integrity score").locator(
        "xpath=following-sibling::dd[1]")
    assert "provisional" in integrity.inner_text()
    page.goto(f"/#/teacher/alerts?exam={exam['id']}")
    alert = page.locator("tr[data-kind=low_integrity]")
    alert.wait_for()
    assert alert.locator(".badge-provisional").count() == 1

    _submit(api, writer, writing, pasted=False)  # the last open attempt: the exam settles
    _wait(db, "SELECT bool_and(integrity_score_status = 'final') AND count(*) = 2"
              " FROM exam_attempts WHERE exam_id = %s", exam["id"])
    page.goto(f"/#/teacher/exams/{exam['id']}/analytics")  # drawn afresh from the API
    page.get_by_role("heading", name=f"Analytics: {exam['title']}").wait_for()
    page.locator("table tbody tr").nth(1).wait_for()
    assert page.locator(".badge-provisional").count() == 0
    assert "provisional" not in average.inner_text()
    assert page_errors == []
