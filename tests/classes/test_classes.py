"""Classes and enrolment over HTTP: create, list, read, enrol, unenrol, who may, the audit."""

from __future__ import annotations

import uuid

import pytest
from tests.support import Api


def _audited(db, action: str, actor: dict, resource_id: str) -> list[dict]:
    return [r[0] for r in db.execute(
        "SELECT details FROM audit_logs WHERE action = %s AND user_id = %s AND resource_id = %s"
        " ORDER BY created_at", (action, actor["id"], resource_id))]


def test_create_a_class_and_read_it(api: Api, db) -> None:
    teacher = api.user("teacher")
    response = api.post("/api/teacher/classes", headers=teacher["headers"],
                        json={"name": "  Year 9 Maths  ", "subject": "Mathematics",
                              "term": "2026 autumn"})
    assert response.status_code == 201, response.text
    klass = response.json()
    assert set(klass) == {"id", "name", "subject", "term", "owner_id", "created_at"}
    assert klass["name"] == "Year 9 Maths" and klass["owner_id"] == teacher["id"]
    detail = api.get(f"/api/teacher/classes/{klass['id']}", headers=teacher["headers"])
    assert detail.status_code == 200
    assert detail.json() | {"students": []} == klass | {"students": []}
    assert _audited(db, "create_class", teacher, klass["id"]) == [{"name": "Year 9 Maths"}]
    only_name = api.klass(teacher, name="Homeroom", subject=None, term=None)
    assert (only_name["subject"], only_name["term"]) == (None, None)


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 201},
                                  {"name": "ok", "owner_id": str(uuid.uuid4())},
                                  {"name": "ok", "term": "t" * 101}, {"name": 7}])
def test_a_bad_class_is_a_422(api: Api, body: dict) -> None:
    teacher = api.user("teacher")
    response = api.post("/api/teacher/classes", headers=teacher["headers"], json=body)
    assert response.status_code == 422, response.text


def test_students_and_strangers_get_no_class(api: Api) -> None:
    student = api.user()
    assert api.post("/api/teacher/classes", json={"name": "mine"}).status_code == 401
    assert api.post("/api/teacher/classes", json={"name": "mine"},
                    headers=student["headers"]).status_code == 403
    assert api.get("/api/teacher/classes", headers=student["headers"]).status_code == 403
    teacher = api.user("teacher")
    assert api.get(f"/api/teacher/classes/{uuid.uuid4()}",
                   headers=teacher["headers"]).status_code == 404
    assert api.get("/api/teacher/classes/not-a-uuid",
                   headers=teacher["headers"]).status_code == 422


def test_lists_show_the_callers_classes_and_walk_in_pages(api: Api, admin: dict) -> None:
    teacher, other = api.user("teacher"), api.user("teacher")
    mine = [api.klass(teacher) for _ in range(3)]
    theirs = api.klass(other)
    student = api.user()
    assert api.enrol(teacher, mine[0], student).status_code == 200
    walked, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.get("/api/teacher/classes", headers=teacher["headers"], params=params).json()
        walked += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [c["id"] for c in walked] == [c["id"] for c in reversed(mine)]  # newest first
    assert {c["id"]: c["student_count"] for c in walked}[mine[0]["id"]] == 1
    everything = api.get("/api/teacher/classes", headers=admin["headers"],
                         params={"limit": 500}).json()["items"]
    assert {mine[0]["id"], theirs["id"]} <= {c["id"] for c in everything}
    assert api.get("/api/teacher/classes", headers=teacher["headers"],
                   params={"cursor": "@@"}).status_code == 422


def test_enrol_by_id_and_by_email(api: Api, db) -> None:
    teacher = api.user("teacher")
    klass = api.klass(teacher)
    one, two = api.user(enrollment_id="S-1"), api.user()
    url = f"/api/teacher/classes/{klass['id']}/students"
    first = api.post(url, headers=teacher["headers"], json={"student_ids": [one["id"]] * 2})
    assert first.status_code == 200 and first.json() == {"enrolled": 1, "already": 0}
    by_email = api.post(url, headers=teacher["headers"],
                        json={"emails": [one["email"], two["email"].upper()]})
    assert by_email.status_code == 200 and by_email.json() == {"enrolled": 1, "already": 1}
    students = api.get(f"/api/teacher/classes/{klass['id']}",
                       headers=teacher["headers"]).json()["students"]
    assert {s["id"] for s in students} == {one["id"], two["id"]}
    row = next(s for s in students if s["id"] == one["id"])
    assert row == {"id": one["id"], "username": one["username"], "full_name": None,
                   "email": one["email"], "enrollment_id": "S-1"}
    assert _audited(db, "enrol_students", teacher, klass["id"])[0] == {
        "student_ids": [one["id"]], "already": 0}
    viewed = _audited(db, "view_student_data", teacher, klass["id"])
    assert viewed and set(viewed[0]["student_ids"]) == {one["id"], two["id"]}


def test_unknown_or_non_student_accounts_enrol_nobody(api: Api) -> None:
    teacher, colleague = api.user("teacher"), api.user("teacher")
    klass = api.klass(teacher)
    student = api.user()
    url = f"/api/teacher/classes/{klass['id']}/students"
    ghost = str(uuid.uuid4())
    for body, named in (({"student_ids": [student["id"], ghost]}, ghost),
                        ({"student_ids": [colleague["id"]]}, colleague["id"]),
                        ({"emails": [student["email"], "nobody@school.example"]},
                         "nobody@school.example"),
                        ({"emails": [colleague["email"]]}, colleague["email"])):
        response = api.post(url, headers=teacher["headers"], json=body)
        assert response.status_code == 422, response.text
        assert named in response.json()["detail"]
    for body in ({}, {"student_ids": []}, {"emails": ["not-an-email"]},
                 {"student_ids": [student["id"]], "emails": [student["email"]]},
                 {"student_ids": ["nope"]}, {"student_ids": [student["id"]] * 1001}):
        assert api.post(url, headers=teacher["headers"], json=body).status_code == 422, body
    assert api.get(f"/api/teacher/classes/{klass['id']}",
                   headers=teacher["headers"]).json()["students"] == []


def test_unenrol(api: Api, db) -> None:
    teacher = api.user("teacher")
    klass = api.klass(teacher)
    student = api.user()
    api.enrol(teacher, klass, student)
    url = f"/api/teacher/classes/{klass['id']}/students/{student['id']}"
    assert api.delete(url, headers=teacher["headers"]).status_code == 204
    assert api.delete(url, headers=teacher["headers"]).status_code == 404
    assert api.get(f"/api/teacher/classes/{klass['id']}",
                   headers=teacher["headers"]).json()["students"] == []
    assert _audited(db, "unenrol_student", teacher, klass["id"]) == [
        {"student_id": student["id"]}]
    # The account and its login stay.
    assert api.login(student["email"])["id"] == student["id"]


def test_another_teachers_class_is_not_found_for_every_route(api: Api, admin: dict) -> None:
    owner, stranger = api.user("teacher"), api.user("teacher")
    klass = api.klass(owner)
    student = api.user()
    assert api.enrol(owner, klass, student).status_code == 200
    base = f"/api/teacher/classes/{klass['id']}"
    calls = (("GET", base, {}), ("POST", f"{base}/students", {"json": {"student_ids": [
        student["id"]]}}), ("DELETE", f"{base}/students/{student['id']}", {}),
        ("POST", f"{base}/roster", {"content": "email,username,full_name,enrollment_id\n",
                                    "headers": {"Content-Type": "text/csv"}}))
    for method, url, extra in calls:
        headers = stranger["headers"] | extra.pop("headers", {})
        response = api.request(method, url, headers=headers, **extra)
        assert response.status_code == 404, (method, url, response.text)
        assert student["email"] not in response.text
    # The admin reaches the class like its owner; the student is still enrolled.
    detail = api.get(base, headers=admin["headers"])
    assert detail.status_code == 200
    assert [s["id"] for s in detail.json()["students"]] == [student["id"]]
