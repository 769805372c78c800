"""Grading over HTTP against the real server and database: an attempt's answers, grades and
regrades, the score, passed, grading_status and the student's profile kept with them, the
queue of attempts waiting for a grade, and what students see as show_results allows."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support import Api, drop_database, make_database

from veritas.db.migrate import upgrade

QUESTIONS = [
    {"id": "q1", "type": "single_choice", "prompt": "2+2?", "points": 4,
     "options": ["3", "4", "5"], "correct": "4"},
    {"id": "q2", "type": "short_text", "prompt": "Capital of France?", "points": 3,
     "correct": ["Paris"]},
    {"id": "q3", "type": "essay", "prompt": "Explain your reasoning.", "points": 3},
]
RIGHT = {"q1": "4", "q2": "Paris", "q3": "Because two and two make four."}


def essay_exam(api: Api, teacher: dict, **overrides: Any) -> dict:
    return api.exam(teacher, questions=overrides.pop("questions", QUESTIONS), **overrides)


def submitted(api: Api, student: dict, exam: dict, answers: dict | None = None) -> dict:
    attempt = api.start(student, exam)
    response = api.submit(student, attempt["attempt_id"], RIGHT if answers is None else answers)
    assert response.status_code == 200, response.text
    return response.json()


def grade(api: Api, who: dict, attempt_id: str, question_id: str, points: Any,
          feedback: str | None = None):
    body: dict[str, Any] = {"points": points}
    if feedback is not None:
        body["feedback"] = feedback
    return api.put(f"/api/teacher/attempts/{attempt_id}/grades/{question_id}", json=body,
                   headers=who["headers"])


def responses(api: Api, who: dict, attempt_id: str) -> dict:
    response = api.get(f"/api/teacher/attempts/{attempt_id}/responses", headers=who["headers"])
    assert response.status_code == 200, response.text
    return response.json()


def test_essay_and_short_answer_stay_pending_until_graded(api: Api, admin: dict) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = essay_exam(api, teacher)
    result = submitted(api, student, exam)
    assert (result["score"], result["passed"], result["grading_status"]) == (7, True, "pending")
    aid = result["attempt_id"]

    view = responses(api, teacher, aid)
    assert view["grading_status"] == "pending" and view["can_grade"] is True
    assert view["status"] == "completed" and view["student_id"] == student["id"]
    assert view["student_name"] == student["username"]
    by_id = {q["id"]: q for q in view["questions"]}
    assert [q["id"] for q in view["questions"]] == ["q1", "q2", "q3"]
    assert by_id["q1"]["response"] == "4" and by_id["q1"]["correct"] == "4"
    assert [by_id[q]["auto_points"] for q in ("q1", "q2", "q3")] == [4, 3, None]
    assert [by_id[q]["earned_points"] for q in ("q1", "q2", "q3")] == [4, 3, 0]
    assert [by_id[q]["needs_grading"] for q in ("q1", "q2", "q3")] == [False, True, True]
    assert all(q["awarded_points"] is None and q["graded_by"] is None
               for q in view["questions"])

    essay = grade(api, teacher, aid, "q3", 2.5, "Clear, but say why.")
    assert essay.status_code == 200, essay.text
    body = essay.json()
    assert body["points"] == 2.5 and body["feedback"] == "Clear, but say why."
    assert body["auto_points"] is None and body["graded_by"] == teacher["id"]
    # The short answer still waits for its teacher.
    assert body["attempt"] == {"score": 9.5, "max_score": 10, "percentage": 95.0,
                               "passed": True, "grading_status": "pending"}
    short = grade(api, teacher, aid, "q2", 3).json()
    assert short["auto_points"] == 3 and short["feedback"] is None
    assert short["attempt"]["grading_status"] == "graded"
    assert short["attempt"]["score"] == 9.5

    view = responses(api, teacher, aid)
    q3 = next(q for q in view["questions"] if q["id"] == "q3")
    assert (q3["awarded_points"], q3["earned_points"], q3["feedback"]) == (
        2.5, 2.5, "Clear, but say why.")
    assert q3["graded_by_name"] == teacher["username"] and q3["graded_at"]
    assert view["grading_status"] == "graded" and view["score"] == 9.5

    # Every view that shows the score shows the grading status next to it.
    history = api.get("/api/student/dashboard", headers=student["headers"]).json()
    mine = next(h for h in history["exam_history"] if h["attempt_id"] == aid)
    assert (mine["score"], mine["grading_status"]) == (9.5, "graded")
    own = api.get(f"/api/student/attempts/{aid}", headers=student["headers"]).json()
    assert (own["score"], own["percentage"], own["grading_status"]) == (9.5, 95.0, "graded")
    detail = api.get(f"/api/teacher/attempts/{aid}", headers=teacher["headers"]).json()
    assert detail["grading_status"] == "graded"
    student_view = api.get(f"/api/teacher/students/{student['id']}",
                           headers=teacher["headers"]).json()
    assert student_view["attempts"][0]["grading_status"] == "graded"
    analytics = api.get(f"/api/teacher/exams/{exam['id']}/analytics",
                        headers=teacher["headers"]).json()
    assert analytics["analytics"]["pending_grading"] == 0
    (listed,) = next(s for s in analytics["students"]
                     if s["student_id"] == student["id"])["attempts"]
    assert (listed["score"], listed["grading_status"]) == (9.5, "graded")

    audit = api.get("/api/admin/audit-logs", headers=admin["headers"],
                    params={"action": "grade_question", "resource_id": aid}).json()["items"]
    assert [(a["details"]["question_id"], a["details"]["old_points"],
             a["details"]["new_points"]) for a in reversed(audit)] == [("q3", 0, 2.5),
                                                                       ("q2", 3, 3)]
    assert all(a["user_id"] == teacher["id"] for a in audit)


def test_an_exam_without_essays_or_short_answers_is_graded_on_submit(api: Api) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = essay_exam(api, teacher, questions=QUESTIONS[:1])
    result = submitted(api, student, exam, {"q1": "3"})
    assert (result["score"], result["passed"], result["grading_status"]) == (0, False, "graded")
    # An objective question may be regraded too: the awarded points replace the automatic ones.
    regraded = grade(api, teacher, result["attempt_id"], "q1", 4, "Accepted on appeal.")
    assert regraded.status_code == 200, regraded.text
    assert regraded.json()["auto_points"] == 0
    assert regraded.json()["attempt"] == {"score": 4, "max_score": 10, "percentage": 40.0,
                                          "passed": False, "grading_status": "graded"}


def test_grade_errors(api: Api, db: Any) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = essay_exam(api, teacher)
    aid = submitted(api, student, exam)["attempt_id"]
    for points in (3.01, -1, "a lot", None, "NaN", "Infinity", 1e308):
        assert grade(api, teacher, aid, "q3", points).status_code == 422, points
    url = f"/api/teacher/attempts/{aid}/grades/q3"
    h = teacher["headers"]
    assert api.put(url, json={}, headers=h).status_code == 422
    assert api.put(url, json={"points": 1, "note": "x"}, headers=h).status_code == 422
    assert api.put(url, json={"points": 1, "feedback": "x" * 20_001},
                   headers=h).status_code == 422
    assert api.put(url, content=b"[", headers=h | {"content-type": "application/json"}
                   ).status_code == 422
    assert grade(api, teacher, aid, "q9", 1).status_code == 404
    assert grade(api, teacher, aid, "x" * 65, 1).status_code == 422
    unknown = "00000000-0000-4000-8000-000000000000"
    assert grade(api, teacher, unknown, "q3", 1).status_code == 404
    assert api.get(f"/api/teacher/attempts/{unknown}/responses", headers=h).status_code == 404
    assert api.put("/api/teacher/attempts/not-a-uuid/grades/q3", json={"points": 1},
                   headers=h).status_code == 422
    # Nothing was written by any of those.
    assert responses(api, teacher, aid)["questions"][2]["awarded_points"] is None
    # The boundaries themselves are fine.
    assert grade(api, teacher, aid, "q3", 0).status_code == 200
    assert grade(api, teacher, aid, "q3", 3).status_code == 200

    running = api.start(student, api.exam(teacher, questions=QUESTIONS))["attempt_id"]
    refused = grade(api, teacher, running, "q3", 1)
    assert refused.status_code == 409 and "in progress" in refused.json()["detail"]
    view = responses(api, teacher, running)  # readable: the answers so far, nothing scored
    assert view["status"] == "in_progress" and view["grading_status"] is None
    assert all(q["auto_points"] is None and q["earned_points"] is None
               for q in view["questions"])

    # An attempt whose time ran out is abandoned by the lifecycle: nothing submitted to grade.
    db.execute("UPDATE exam_attempts SET expires_at = now() - interval '1 day' WHERE id = %s",
               (running,))
    assert api.submit(student, running, RIGHT).status_code == 409
    abandoned = grade(api, teacher, running, "q3", 1)
    assert abandoned.status_code == 409 and "abandoned" in abandoned.json()["detail"]


def test_a_regrade_changes_passed_and_the_students_profile(api: Api) -> None:
    teacher, other_teacher, student = api.user("teacher"), api.user("teacher"), api.user()
    # Another teacher's exam, passed: the profile counts it whoever grades.
    elsewhere = api.exam(other_teacher, questions=QUESTIONS[:1], max_score=4,
                         passing_score=2)
    assert submitted(api, student, elsewhere, {"q1": "4"})["passed"] is True
    exam = essay_exam(api, teacher)
    result = submitted(api, student, exam, {"q1": "3", "q2": "Paris", "q3": "Hm."})
    assert (result["score"], result["passed"]) == (3, False)
    aid = result["attempt_id"]

    def profile() -> dict:
        return api.get("/api/student/dashboard", headers=student["headers"]).json()["profile"]

    before = profile()
    assert (before["total_exams_attempted"], before["total_exams_passed"]) == (2, 1)
    assert before["avg_score"] == pytest.approx((100 + 30) / 2)

    totals = grade(api, teacher, aid, "q3", 3).json()["attempt"]
    assert (totals["score"], totals["passed"]) == (6, True)
    after = profile()
    assert (after["total_exams_attempted"], after["total_exams_passed"]) == (2, 2)
    assert after["avg_score"] == pytest.approx((100 + 60) / 2)

    totals = grade(api, teacher, aid, "q3", 1).json()["attempt"]
    assert (totals["score"], totals["passed"]) == (4, False)
    assert profile()["total_exams_passed"] == 1
    totals = grade(api, teacher, aid, "q1", 4).json()["attempt"]
    assert (totals["score"], totals["passed"]) == (8, True)
    final = profile()
    assert final["total_exams_passed"] == 2
    assert final["avg_score"] == pytest.approx((100 + 80) / 2)
    assert final["subject_scores"]["Mathematics"]["avg"] == pytest.approx(90)


def test_parallel_grades_of_one_attempt_all_count(api: Api) -> None:
    teacher, student = api.user("teacher"), api.user()
    essays = [{"id": f"e{i}", "type": "essay", "prompt": f"Essay {i}", "points": 2}
              for i in range(6)]
    exam = api.exam(teacher, questions=essays, max_score=12, passing_score=6)
    for _round in range(3):
        aid = submitted(api, student, exam, {e["id"]: "words" for e in essays})["attempt_id"]
        gate = threading.Barrier(len(essays))

        def one(question: dict, aid: str = aid, gate: threading.Barrier = gate) -> int:
            gate.wait()
            return grade(api, teacher, aid, question["id"], 1.5).status_code

        with ThreadPoolExecutor(len(essays)) as pool:
            assert list(pool.map(one, essays)) == [200] * len(essays)
        view = responses(api, teacher, aid)
        assert view["score"] == pytest.approx(9) and view["passed"] is True
        assert view["grading_status"] == "graded"
        assert [q["awarded_points"] for q in view["questions"]] == [1.5] * len(essays)


GRADEABLE = st.lists(
    st.tuples(st.sampled_from(["q1", "q2", "q3"]), st.integers(0, 100)), max_size=6)


@pytest.fixture(scope="module")
def property_exam(api: Api) -> tuple[dict, dict]:
    teacher = api.user("teacher")
    return teacher, essay_exam(api, teacher)


@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(answers=st.fixed_dictionaries({
    "q1": st.sampled_from(["3", "4", "5"]), "q2": st.sampled_from(["Paris", " paris ", "Lyon"]),
    "q3": st.text(max_size=20)}), grades=GRADEABLE)
def test_the_score_is_the_sum_of_effective_points(
    api: Api, property_exam: tuple[dict, dict], answers: dict, grades: list,
) -> None:
    teacher, exam = property_exam
    student = api.user()
    aid = submitted(api, student, exam, answers)["attempt_id"]
    worth = {q["id"]: q["points"] for q in QUESTIONS}
    awarded: dict[str, float] = {}
    for question_id, share in grades:
        points = worth[question_id] * share / 100
        assert grade(api, teacher, aid, question_id, points).status_code == 200
        awarded[question_id] = points
    view = responses(api, teacher, aid)
    auto = {"q1": 4.0 if answers["q1"] == "4" else 0.0,
            "q2": 3.0 if answers["q2"].strip().lower() == "paris" else 0.0, "q3": 0.0}
    effective = {q: awarded.get(q, auto[q]) for q in worth}
    assert {q["id"]: q["earned_points"] for q in view["questions"]} == pytest.approx(effective)
    assert view["score"] == pytest.approx(sum(effective.values()))
    assert view["score"] == pytest.approx(sum(q["earned_points"] for q in view["questions"]))
    assert view["percentage"] == pytest.approx(view["score"] * 10)
    assert view["passed"] == (view["score"] >= exam["passing_score"])
    assert view["grading_status"] == ("graded" if {"q2", "q3"} <= awarded.keys()
                                      else "pending")


def test_the_grading_queue(api: Api) -> None:
    owner, viewer, stranger = api.user("teacher"), api.user("teacher"), api.user("teacher")
    exam, graded_only = essay_exam(api, owner), essay_exam(api, owner, questions=QUESTIONS[:1])
    assert api.grant(owner, exam, viewer, can_view_analytics=False).status_code == 201
    students = [api.user() for _ in range(3)]
    attempts = [submitted(api, s, exam)["attempt_id"] for s in students]
    done = submitted(api, students[0], graded_only, {"q1": "4"})["attempt_id"]
    api.start(api.user(), exam)  # in progress: in no queue
    h = owner["headers"]

    pending = api.get("/api/teacher/grading", headers=h, params={"exam_id": exam["id"]})
    assert pending.status_code == 200, pending.text
    items = pending.json()["items"]
    assert [i["attempt_id"] for i in items] == attempts  # oldest submission first
    first = items[0]
    assert first["questions_to_grade"] == 2 and first["can_grade"] is True
    assert (first["username"], first["exam_title"]) == (students[0]["username"], exam["title"])
    assert (first["score"], first["grading_status"]) == (7, "pending")

    grade(api, owner, attempts[0], "q3", 3)
    assert api.get("/api/teacher/grading", headers=h).json()["items"][0][
        "questions_to_grade"] == 1
    grade(api, owner, attempts[0], "q2", 3)
    walked, cursor = [], None
    while True:
        page = api.get("/api/teacher/grading", headers=h,
                       params={"limit": 1} | ({"cursor": cursor} if cursor else {})).json()
        walked += [i["attempt_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == attempts[1:]
    graded = api.get("/api/teacher/grading", headers=h, params={"status": "graded"}).json()
    assert {i["attempt_id"] for i in graded["items"]} == {attempts[0], done}

    # A view-only colleague sees the queue but may not grade; a stranger sees nothing of it.
    seen = api.get("/api/teacher/grading", headers=viewer["headers"]).json()["items"]
    assert [i["attempt_id"] for i in seen] == attempts[1:]
    assert not any(i["can_grade"] for i in seen)
    assert responses(api, viewer, attempts[1])["can_grade"] is False
    assert api.get("/api/teacher/grading", headers=stranger["headers"]).json()["items"] == []
    assert api.get("/api/teacher/grading", headers=stranger["headers"],
                   params={"exam_id": exam["id"]}).status_code == 403
    assert api.get("/api/teacher/grading", headers=h, params={
        "exam_id": "00000000-0000-4000-8000-000000000000"}).status_code == 404
    for bad in ({"status": "done"}, {"limit": 0}, {"limit": 501}, {"cursor": "@@"},
                {"exam_id": "x"}):
        assert api.get("/api/teacher/grading", headers=h, params=bad).status_code == 422, bad
    assert api.get("/api/teacher/grading", headers=students[0]["headers"]).status_code == 403
    assert api.get("/api/teacher/grading").status_code == 401

    # The exam's figures say how many of its completed attempts wait for a grade.
    stats = api.get(f"/api/teacher/exams/{exam['id']}/analytics", headers=h).json()
    assert stats["analytics"]["pending_grading"] == 2
    dashboard = api.get("/api/teacher/dashboard", headers=h).json()
    assert next(e for e in dashboard["exams"]
                if e["exam_id"] == exam["id"])["pending_grading"] == 2


def _own(api: Api, student: dict, attempt_id: str) -> dict:
    response = api.get(f"/api/student/attempts/{attempt_id}", headers=student["headers"])
    assert response.status_code == 200, response.text
    return response.json()


def test_students_see_results_only_as_show_results_allows(api: Api) -> None:
    teacher, student = api.user("teacher"), api.user()
    hidden = essay_exam(api, teacher)
    assert hidden["show_results"] == "never"
    aid = submitted(api, student, hidden)["attempt_id"]
    grade(api, teacher, aid, "q3", 2, "Nice argument.")
    view = _own(api, student, aid)
    assert (view["show_results"], view["results_visible"], view["questions"]) == (
        "never", False, None)
    assert "correct" not in api.get(f"/api/student/attempts/{aid}",
                                    headers=student["headers"]).text
    assert "Nice argument." not in str(view)

    shown = essay_exam(api, teacher, show_results="after_submit")
    running = api.start(student, shown)["attempt_id"]
    assert _own(api, student, running)["questions"] is None  # not before the submit
    api.submit(student, running, {"q1": "3", "q2": "Paris", "q3": "My essay."})
    questions = _own(api, student, running)["questions"]
    assert [(q["id"], q["points_awarded"], q["correct"]) for q in questions] == [
        ("q1", 0, "4"), ("q2", 3, ["Paris"]), ("q3", None, None)]
    assert questions[2]["response"] == "My essay." and questions[2]["feedback"] is None
    grade(api, teacher, running, "q3", 1.5, "Say more.")
    q3 = _own(api, student, running)["questions"][2]
    assert (q3["points_awarded"], q3["feedback"]) == (1.5, "Say more.")

    # The teacher may change it later, and the view follows.
    changed = api.patch(f"/api/teacher/exams/{hidden['id']}", headers=teacher["headers"],
                        json={"show_results": "after_submit"})
    assert changed.status_code == 200 and changed.json()["show_results"] == "after_submit"
    q3 = _own(api, student, aid)["questions"][2]
    assert (q3["points_awarded"], q3["feedback"]) == (2, "Nice argument.")
    for bad in ("sometimes", None):
        assert api.patch(f"/api/teacher/exams/{hidden['id']}", headers=teacher["headers"],
                         json={"show_results": bad}).status_code == 422


def test_after_close_waits_until_no_one_can_still_be_writing(api: Api) -> None:
    teacher, early, late = api.user("teacher"), api.user(), api.user()
    exam = essay_exam(api, teacher, show_results="after_close")
    aid = submitted(api, early, exam)["attempt_id"]
    still_writing = api.start(late, exam)["attempt_id"]
    assert _own(api, early, aid)["results_visible"] is False  # published: others may start

    closed = api.patch(f"/api/teacher/exams/{exam['id']}", headers=teacher["headers"],
                       json={"is_published": False})
    assert closed.status_code == 200
    # Unpublished, but a classmate is still writing.
    assert _own(api, early, aid)["results_visible"] is False
    api.submit(late, still_writing, {"q1": "5"})
    view = _own(api, early, aid)
    assert view["results_visible"] is True
    assert [q["correct"] for q in view["questions"]] == ["4", ["Paris"], None]
    # The other student's results are theirs alone.
    assert api.get(f"/api/student/attempts/{aid}", headers=late["headers"]).status_code == 404


def test_the_migration_gives_existing_attempts_their_grading_status(database_url: str) -> None:
    url = make_database(database_url, f"veritas_grading_{uuid.uuid4().hex[:8]}")
    try:
        upgrade(url, "0010")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET veritas.role = 'system'")
            user = conn.execute(
                "INSERT INTO users (email, username, password_hash, role) VALUES"
                " ('t@x.example', 't', 'x', 'teacher') RETURNING id").fetchone()[0]
            exam = conn.execute(
                "INSERT INTO exams (creator_id, title, subject, max_score, duration_minutes,"
                " passing_score) VALUES (%s, 'E', 'S', 10, 30, 5) RETURNING id",
                (user,)).fetchone()[0]
            kinds = {"essay": [{"id": "a", "type": "essay"}],
                     "objective": [{"id": "a", "type": "single_choice"}],
                     "short": [{"id": "a", "type": "single_choice"},
                               {"id": "b", "type": "short_text"}]}
            ids = {}
            for name, questions in kinds.items():
                ids[name] = conn.execute(
                    "INSERT INTO exam_attempts (exam_id, student_id, status, max_score,"
                    " expires_at, submission_data) VALUES (%s, %s, 'completed', 10, now(),"
                    " %s) RETURNING id",
                    (exam, user, json.dumps({"questions": questions}))).fetchone()[0]
            for name, status, data in (("imported", "completed", "{}"),
                                       ("running", "in_progress", '{"questions": []}')):
                ids[name] = conn.execute(
                    "INSERT INTO exam_attempts (exam_id, student_id, status, max_score,"
                    " expires_at, submission_data) VALUES (%s, %s, %s, 10, now(), %s)"
                    " RETURNING id", (exam, user, status, data)).fetchone()[0]
        upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET veritas.role = 'system'")
            got = dict(conn.execute("SELECT id, grading_status FROM exam_attempts").fetchall())
            assert conn.execute("SELECT show_results FROM exams").fetchone()[0] == "never"
        assert {name: got[i] for name, i in ids.items()} == {
            "essay": "pending", "objective": "graded", "short": "pending", "imported": None,
            "running": None}
    finally:
        drop_database(database_url, url)
