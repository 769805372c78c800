"""Exam windows, attempt limits, shuffling and accommodations, over HTTP against the real
server and database."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from tests.support import Api


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _now() -> datetime:
    return datetime.now(UTC)


def _start(api: Api, student: dict, exam: dict) -> httpx.Response:
    return api.post(f"/api/student/exams/{exam['id']}/start", headers=student["headers"])


def _accommodate(api: Api, teacher: dict, exam: dict, student: dict | str,
                 **body: object) -> httpx.Response:
    student_id = student if isinstance(student, str) else student["id"]
    return api.put(f"/api/teacher/exams/{exam['id']}/accommodations/{student_id}", json=body,
                   headers=teacher["headers"])


def _available(api: Api, student: dict, exam: dict) -> dict:
    items = api.get("/api/student/exams/available", headers=student["headers"],
                    params={"limit": 500}).json()["items"]
    (mine,) = [e for e in items if e["id"] == exam["id"]]
    return mine


# --- the rules on the exam -----------------------------------------------------------------


def test_rules_are_set_on_create_and_patch_and_returned(api: Api) -> None:
    teacher = api.user("teacher")
    opens, closes = _now() + timedelta(hours=1), _now() + timedelta(hours=3)
    exam = api.exam(teacher, opens_at=_iso(opens), closes_at=_iso(closes), max_attempts=2,
                    shuffle_questions=True, shuffle_options=False)
    assert (_at(exam["opens_at"]), _at(exam["closes_at"]), exam["max_attempts"],
            exam["shuffle_questions"], exam["shuffle_options"]) == (opens, closes, 2, True,
                                                                     False)
    patched = api.patch(f"/api/teacher/exams/{exam['id']}", headers=teacher["headers"],
                        json={"max_attempts": None, "shuffle_options": True,
                              "opens_at": None}).json()
    assert (patched["opens_at"], patched["max_attempts"], patched["shuffle_options"]) == (
        None, None, True)
    assert _at(patched["closes_at"]) == closes
    listed = api.get("/api/teacher/exams", headers=teacher["headers"]).json()["items"]
    assert [e["shuffle_options"] for e in listed if e["id"] == exam["id"]] == [True]
    # Defaults: no window, unlimited, the exam's order.
    plain = api.exam(teacher)
    assert (plain["opens_at"], plain["closes_at"], plain["max_attempts"],
            plain["shuffle_questions"], plain["shuffle_options"]) == (None, None, None, False,
                                                                       False)


@pytest.mark.parametrize("fields", [
    {"opens_at": "2030-01-02T10:00:00Z", "closes_at": "2030-01-02T10:00:00Z"},
    {"opens_at": "2030-01-02T10:00:00Z", "closes_at": "2030-01-01T10:00:00Z"},
    {"opens_at": "2030-01-02T10:00:00"},  # no UTC offset
    {"closes_at": "tomorrow"},
    {"max_attempts": 0},
    {"max_attempts": -1},
    {"max_attempts": 1.5},
    {"max_attempts": 10**9},
    {"shuffle_questions": "maybe"},
], ids=["closes at opening", "closes before opening", "naive time", "not a time",
        "zero attempts", "negative attempts", "fractional attempts", "huge limit",
        "not a boolean"])
def test_bad_rules_are_422_and_change_nothing(api: Api, fields: dict) -> None:
    teacher = api.user("teacher")
    title = f"refused {uuid.uuid4().hex[:8]}"
    created = api.post("/api/teacher/exams", headers=teacher["headers"], json={
        "title": title, "subject": "Mathematics", "max_score": 10, "duration_minutes": 30,
        "passing_score": 6, **fields})
    assert created.status_code == 422, created.text
    exam = api.exam(teacher)
    patched = api.patch(f"/api/teacher/exams/{exam['id']}", headers=teacher["headers"],
                        json=fields)
    assert patched.status_code == 422, patched.text
    again = api.get(f"/api/teacher/exams/{exam['id']}", headers=teacher["headers"]).json()
    assert again == exam
    assert title not in api.get("/api/teacher/exams", headers=teacher["headers"]).text


def test_a_patch_keeps_the_window_in_order_against_the_stored_bound(api: Api) -> None:
    teacher = api.user("teacher")
    exam = api.exam(teacher, opens_at="2030-01-02T10:00:00Z")
    url = f"/api/teacher/exams/{exam['id']}"
    early = api.patch(url, headers=teacher["headers"], json={"closes_at": "2030-01-01T00:00:00Z"})
    assert early.status_code == 422
    assert "closes_at must be after opens_at" in early.json()["detail"]
    ok = api.patch(url, headers=teacher["headers"], json={"closes_at": "2030-01-03T00:00:00Z"})
    assert ok.status_code == 200
    moved = api.patch(url, headers=teacher["headers"], json={"opens_at": "2030-01-04T00:00:00Z"})
    assert moved.status_code == 422


def test_starting_outside_the_window_is_409_saying_when(api: Api) -> None:
    teacher, student = api.user("teacher"), api.user()
    opens = _now() + timedelta(hours=2)
    later = api.exam(teacher, opens_at=_iso(opens))
    early = _start(api, student, later)
    assert early.status_code == 409
    assert "opens at" in early.json()["detail"] and opens.isoformat()[:16] in early.json()[
        "detail"]
    closed = api.exam(teacher, opens_at=_iso(_now() - timedelta(hours=2)),
                      closes_at=_iso(_now() - timedelta(minutes=1)))
    late = _start(api, student, closed)
    assert late.status_code == 409 and "closed" in late.json()["detail"]
    open_now = api.exam(teacher, opens_at=_iso(_now() - timedelta(minutes=1)),
                        closes_at=_iso(_now() + timedelta(hours=1)))
    assert _start(api, student, open_now).status_code == 201
    # Nothing was started by the refusals.
    assert _available(api, student, later)["attempts_used"] == 0
    assert _available(api, student, closed)["attempts_used"] == 0


def test_the_attempt_limit_counts_every_status_but_resuming_is_no_start(api: Api) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher, max_attempts=2)
    first = _start(api, student, exam)
    assert first.status_code == 201
    resumed = _start(api, student, exam)  # a reload: the same attempt, not a new start
    assert resumed.status_code == 200
    assert resumed.json()["attempt_id"] == first.json()["attempt_id"]
    writing = _available(api, student, exam)
    assert (writing["attempts_used"], writing["attempts_left"],
            writing["attempt_in_progress"]) == (1, 1, True)
    # The server's clock comes with the attempt, for the page's countdown.
    assert abs(_at(resumed.json()["server_time"]) - _now()) < timedelta(minutes=1)
    assert api.submit(student, first.json()["attempt_id"], {"q1": "4"}).status_code == 200
    second = _start(api, student, exam)
    assert second.status_code == 201
    assert api.submit(student, second.json()["attempt_id"]).status_code == 200
    third = _start(api, student, exam)
    assert third.status_code == 409
    assert "no attempts left" in third.json()["detail"]
    mine = _available(api, student, exam)
    assert (mine["max_attempts"], mine["attempts_used"], mine["attempts_left"],
            mine["attempt_in_progress"]) == (2, 2, 0, False)
    # Another student's limit is their own.
    other = api.user()
    assert _start(api, other, exam).status_code == 201
    assert _available(api, other, exam)["attempts_left"] == 1


def test_an_abandoned_attempt_counts_toward_the_limit(api: Api, db: psycopg.Connection) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher, max_attempts=1)
    attempt = _start(api, student, exam).json()
    # Its time (and the grace period) ran out: the next start abandons it, then counts it.
    db.execute("UPDATE exam_attempts SET expires_at = now() - interval '1 day',"
               " started_at = now() - interval '1 day 1 hour' WHERE id = %s",
               (attempt["attempt_id"],))
    refused = _start(api, student, exam)
    assert refused.status_code == 409
    status = db.execute("SELECT status FROM exam_attempts WHERE id = %s",
                        (attempt["attempt_id"],)).fetchone()
    assert status == ("abandoned",)


def test_extra_attempts_raise_the_limit_for_that_student_only(api: Api) -> None:
    teacher, student, classmate = api.user("teacher"), api.user(), api.user()
    exam = api.exam(teacher, max_attempts=1)
    for who in (student, classmate):
        attempt = _start(api, student if who is student else classmate, exam).json()
        api.submit(who, attempt["attempt_id"])
    assert _start(api, student, exam).status_code == 409
    assert _accommodate(api, teacher, exam, student, extra_attempts=1).status_code == 200
    mine = _available(api, student, exam)
    assert (mine["max_attempts"], mine["attempts_used"], mine["attempts_left"]) == (2, 1, 1)
    retake = _start(api, student, exam)
    assert retake.status_code == 201
    api.submit(student, retake.json()["attempt_id"])
    assert _start(api, student, exam).status_code == 409
    assert _start(api, classmate, exam).status_code == 409
    assert _available(api, classmate, exam)["max_attempts"] == 1


def test_parallel_starts_open_at_most_one_attempt(api: Api, db: psycopg.Connection) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher, max_attempts=1)
    url = f"{api.base_url}/api/student/exams/{exam['id']}/start"

    def start(_: int) -> httpx.Response:
        return httpx.post(url, headers=student["headers"], timeout=60)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(start, range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 7 + [201], codes
    assert len({r.json()["attempt_id"] for r in responses}) == 1
    count = db.execute("SELECT count(*) FROM exam_attempts WHERE exam_id = %s",
                       (exam["id"],)).fetchone()
    assert count == (1,)
    # Once it is submitted, parallel starts are all refused: the limit holds under the race.
    api.submit(student, responses[0].json()["attempt_id"])
    with ThreadPoolExecutor(8) as pool:
        again = list(pool.map(start, range(8)))
    assert [r.status_code for r in again] == [409] * 8
    assert db.execute("SELECT count(*) FROM exam_attempts WHERE exam_id = %s",
                      (exam["id"],)).fetchone() == (1,)


# --- the attempt's time --------------------------------------------------------------------


def test_expires_at_adds_the_students_extra_time(api: Api) -> None:
    teacher, student, classmate = api.user("teacher"), api.user(), api.user()
    exam = api.exam(teacher, duration_minutes=30)
    assert _accommodate(api, teacher, exam, student, extra_minutes=15).status_code == 200
    mine = _start(api, student, exam).json()
    assert _at(mine["expires_at"]) - _at(mine["started_at"]) == timedelta(minutes=45)
    theirs = _start(api, classmate, exam).json()
    assert _at(theirs["expires_at"]) - _at(theirs["started_at"]) == timedelta(minutes=30)
    assert _available(api, student, exam)["extra_minutes"] == 15
    assert _available(api, classmate, exam)["extra_minutes"] == 0


def test_expires_at_is_capped_by_the_closing_plus_extra_time(api: Api) -> None:
    teacher, student, classmate = api.user("teacher"), api.user(), api.user()
    closes = (_now() + timedelta(minutes=10)).replace(microsecond=0)
    exam = api.exam(teacher, duration_minutes=60, closes_at=_iso(closes))
    _accommodate(api, teacher, exam, student, extra_minutes=5)
    assert _at(_start(api, student, exam).json()["expires_at"]) == closes + timedelta(minutes=5)
    assert _at(_start(api, classmate, exam).json()["expires_at"]) == closes


def test_an_accommodation_applies_to_attempts_started_afterwards(api: Api) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher, duration_minutes=30)
    before = _start(api, student, exam).json()
    _accommodate(api, teacher, exam, student, extra_minutes=20)
    reloaded = _start(api, student, exam).json()
    assert reloaded["expires_at"] == before["expires_at"]
    api.submit(student, before["attempt_id"])
    after = _start(api, student, exam).json()
    assert _at(after["expires_at"]) - _at(after["started_at"]) == timedelta(minutes=50)


# --- shuffling -----------------------------------------------------------------------------

MANY = [{"id": f"q{i}", "type": "single_choice", "prompt": f"Pick {i}", "points": 1,
         "options": [f"{i}-{j}" for j in range(5)], "correct": f"{i}-3"} for i in range(8)]


def _order(start: dict) -> list[tuple[str, tuple[str, ...]]]:
    return [(q["id"], tuple(q["options"])) for q in start["questions"]]


def test_shuffle_is_fixed_per_attempt_and_differs_between_attempts(api: Api) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher, questions=MANY, max_score=8, passing_score=4,
                    shuffle_questions=True, shuffle_options=True)
    orders = []
    for _ in range(6):
        started = _start(api, student, exam)
        assert started.status_code == 201
        first = started.json()
        # A reload (the start again) and another device see the very same order.
        reloaded = _start(api, student, exam).json()
        assert _order(reloaded) == _order(first)
        assert {q["id"] for q in first["questions"]} == {q["id"] for q in MANY}
        assert all(sorted(q["options"]) == [f"{q['id'][1:]}-{j}" for j in range(5)]
                   for q in first["questions"])
        assert all("correct" not in q for q in first["questions"])
        orders.append(_order(first))
        # Answered from the shuffled page, by option value: every answer still counts.
        responses = {q["id"]: f"{q['id'][1:]}-3" for q in first["questions"]}
        done = api.submit(student, first["attempt_id"], responses).json()
        assert done["score"] == 8 and done["passed"] is True
    # 8! question orders times 5!^8 option orders: six equal ones would be a broken shuffle.
    assert len(set(map(tuple, orders))) == 6
    assert len({tuple(q for q, _ in order) for order in orders}) > 1
    assert any(order[0][0] != "q0" or order[0][1][0] != "0-0" for order in orders)


def test_without_shuffling_the_exams_order_is_kept(api: Api) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher, questions=MANY, max_score=8, passing_score=4)
    started = _start(api, student, exam).json()
    assert _order(started) == [(q["id"], tuple(q["options"])) for q in MANY]


def test_options_only_shuffle_keeps_the_question_order(api: Api) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher, questions=MANY, max_score=8, passing_score=4,
                    shuffle_options=True)
    orders = []
    for _ in range(3):
        started = _start(api, student, exam).json()
        assert [q["id"] for q in started["questions"]] == [q["id"] for q in MANY]
        orders.append(_order(started))
        api.submit(student, started["attempt_id"])
    assert len(set(map(tuple, orders))) == 3


# --- accommodations ------------------------------------------------------------------------


def test_accommodations_put_list_delete(api: Api, db: psycopg.Connection) -> None:
    teacher = api.user("teacher")
    students = [api.user() for _ in range(3)]
    exam = api.exam(teacher)
    first = _accommodate(api, teacher, exam, students[0], extra_minutes=15, extra_attempts=1,
                         note="reading support")
    assert first.status_code == 200
    assert first.json() == {"student_id": students[0]["id"], "extra_minutes": 15,
                            "extra_attempts": 1, "note": "reading support"}
    replaced = _accommodate(api, teacher, exam, students[0], extra_minutes=30)
    assert replaced.json() == {"student_id": students[0]["id"], "extra_minutes": 30,
                               "extra_attempts": 0, "note": None}
    for student in students[1:]:
        assert _accommodate(api, teacher, exam, student, extra_minutes=5).status_code == 200
    url = f"/api/teacher/exams/{exam['id']}/accommodations"
    seen, cursor = [], None
    while True:
        listed = api.get(url, headers=teacher["headers"],
                         params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert listed.status_code == 200
        seen += [row["student_id"] for row in listed.json()["items"]]
        cursor = listed.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(s["id"] for s in students)
    gone = api.delete(f"{url}/{students[0]['id']}", headers=teacher["headers"])
    assert gone.status_code == 204
    assert api.delete(f"{url}/{students[0]['id']}",
                      headers=teacher["headers"]).status_code == 404
    left = api.get(url, headers=teacher["headers"]).json()["items"]
    assert students[0]["id"] not in {row["student_id"] for row in left} and len(left) == 2
    actions = db.execute(
        "SELECT action, details->>'student_id' FROM audit_logs WHERE resource_id = %s"
        " AND action LIKE '%%accommodation' ORDER BY created_at, chain_seq",
        (exam["id"],)).fetchall()
    assert actions[:2] == [("set_accommodation", students[0]["id"])] * 2
    assert actions[-1] == ("delete_accommodation", students[0]["id"])


@pytest.mark.parametrize("body", [
    {"extra_minutes": -1}, {"extra_minutes": 100_000}, {"extra_attempts": -1},
    {"extra_attempts": 101}, {"note": "x" * 2001}, {"extra_minutes": "lots"},
    {"student_id": str(uuid.uuid4())}, {"extra_minutes": 1.5},
], ids=["negative minutes", "huge minutes", "negative attempts", "too many attempts",
        "long note", "not a number", "unknown field", "fractional minutes"])
def test_bad_accommodations_are_422_and_write_nothing(api: Api, body: dict) -> None:
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher)
    response = _accommodate(api, teacher, exam, student, **body)
    assert response.status_code == 422, response.text
    listed = api.get(f"/api/teacher/exams/{exam['id']}/accommodations",
                     headers=teacher["headers"]).json()
    assert listed == {"items": [], "next_cursor": None}


def test_accommodation_targets_must_be_students_of_a_known_exam(api: Api) -> None:
    teacher, student, colleague = api.user("teacher"), api.user(), api.user("teacher")
    exam = api.exam(teacher)
    assert _accommodate(api, teacher, exam, str(uuid.uuid4()),
                        extra_minutes=5).status_code == 404
    assert _accommodate(api, teacher, exam, colleague, extra_minutes=5).status_code == 422
    assert _accommodate(api, teacher, exam, teacher, extra_minutes=5).status_code == 422
    unknown = {"id": str(uuid.uuid4())}
    assert _accommodate(api, teacher, unknown, student).status_code == 404
    assert api.get(f"/api/teacher/exams/{unknown['id']}/accommodations",
                   headers=teacher["headers"]).status_code == 404
    assert api.delete(f"/api/teacher/exams/{unknown['id']}/accommodations/{student['id']}",
                      headers=teacher["headers"]).status_code == 404
    assert api.put(f"/api/teacher/exams/{exam['id']}/accommodations/not-a-uuid", json={},
                   headers=teacher["headers"]).status_code == 422


def test_only_editors_change_accommodations_and_viewers_read_them(api: Api) -> None:
    owner, viewer, stranger, student = (api.user("teacher"), api.user("teacher"),
                                        api.user("teacher"), api.user())
    exam = api.exam(owner)
    api.grant(owner, exam, viewer, can_view_analytics=False)
    assert _accommodate(api, owner, exam, student, extra_minutes=10,
                        note="private note").status_code == 200
    url = f"/api/teacher/exams/{exam['id']}/accommodations"
    assert api.get(url, headers=viewer["headers"]).json()["items"][0]["extra_minutes"] == 10
    assert _accommodate(api, viewer, exam, student, extra_minutes=99).status_code == 403
    assert api.delete(f"{url}/{student['id']}", headers=viewer["headers"]).status_code == 403
    for who in (stranger, student):
        for response in (api.get(url, headers=who["headers"]),
                         _accommodate(api, who, exam, student, extra_minutes=99),
                         api.delete(f"{url}/{student['id']}", headers=who["headers"])):
            assert response.status_code == 403
            assert "private note" not in response.text
    assert api.get(url).status_code == 401
    assert api.get(url, headers=owner["headers"]).json()["items"][0]["extra_minutes"] == 10
    # A colleague granted can_edit may change them.
    editor = api.user("teacher")
    api.grant(owner, exam, editor, can_edit=True)
    assert _accommodate(api, editor, exam, student, extra_minutes=20).status_code == 200
