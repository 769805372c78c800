"""Exams assigned to classes: who assigns them, which students see them (in every student
query and in the database's own policies), and which students a teacher sees."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select, text
from tests.support import Api

from veritas.auth.models import User
from veritas.classes.models import ClassEnrolment, ExamClass, SchoolClass
from veritas.config import Settings
from veritas.db.engine import create_engine, create_sessionmaker
from veritas.db.unit_of_work import Caller, unit_of_work
from veritas.exams.models import Exam


@pytest.fixture(scope="module")
def school(api: Api) -> dict:
    """A teacher with a class of one student, an exam for that class, an open exam, and a
    student in no class."""
    teacher = api.user("teacher")
    klass = api.klass(teacher)
    enrolled, outsider = api.user(), api.user()
    assert api.enrol(teacher, klass, enrolled).status_code == 200
    restricted = api.exam(teacher, class_ids=[klass["id"]])
    open_exam = api.exam(teacher)
    return {"teacher": teacher, "class": klass, "enrolled": enrolled, "outsider": outsider,
            "restricted": restricted, "open": open_exam}


def _available(api: Api, student: dict) -> set[str]:
    response = api.get("/api/student/exams/available", headers=student["headers"],
                       params={"limit": 500})
    assert response.status_code == 200
    return {e["id"] for e in response.json()["items"]}


def test_an_exam_for_a_class_is_listed_and_started_by_its_students_only(
    api: Api, school: dict,
) -> None:
    restricted, open_exam = school["restricted"]["id"], school["open"]["id"]
    assert school["restricted"]["class_ids"] == [school["class"]["id"]]
    assert school["open"]["class_ids"] == []
    assert {restricted, open_exam} <= _available(api, school["enrolled"])
    outsider = _available(api, school["outsider"])
    assert open_exam in outsider and restricted not in outsider
    start = f"/api/student/exams/{restricted}/start"
    assert api.post(start, headers=school["outsider"]["headers"]).status_code == 404
    assert api.post(start, headers=school["enrolled"]["headers"]).status_code == 201


def test_leaving_the_class_hides_the_exam_and_its_attempt(api: Api, school: dict) -> None:
    teacher, klass = school["teacher"], school["class"]
    leaver = api.user()
    api.enrol(teacher, klass, leaver)
    done = api.start(leaver, school["restricted"])["attempt_id"]
    assert api.submit(leaver, done, {"q1": "4"}).status_code == 200
    exam = api.exam(teacher, class_ids=[klass["id"]])
    attempt = api.start(leaver, exam)["attempt_id"]
    h = leaver["headers"]
    assert api.delete(f"/api/teacher/classes/{klass['id']}/students/{leaver['id']}",
                      headers=teacher["headers"]).status_code == 204
    assert exam["id"] not in _available(api, leaver)
    assert api.post(f"/api/student/exams/{exam['id']}/start", headers=h).status_code == 404
    assert api.get(f"/api/student/attempts/{attempt}", headers=h).status_code == 404
    assert api.get(f"/api/student/attempts/{done}", headers=h).status_code == 404
    assert api.post(f"/api/student/attempts/{attempt}/drafts", headers=h,
                    json={"responses": {"q1": "4"}}).status_code == 404
    assert api.post(f"/api/student/exams/{attempt}/submit", headers=h,
                    json={"responses": {}}).status_code == 404
    dashboard = api.get("/api/student/dashboard", headers=h)
    assert dashboard.status_code == 200
    assert exam["id"] not in dashboard.text and attempt not in dashboard.text
    # Their own figures still count what they did.
    assert dashboard.json()["profile"]["total_exams_attempted"] == 1
    # Back in the class, it is all there again.
    api.enrol(teacher, klass, leaver)
    assert api.get(f"/api/student/attempts/{attempt}", headers=h).status_code == 200
    assert api.submit(leaver, attempt, {"q1": "4"}).status_code == 200


def test_class_ids_on_create_and_patch(api: Api, admin: dict) -> None:
    owner, colleague = api.user("teacher"), api.user("teacher")
    mine, theirs = api.klass(owner), api.klass(colleague)
    for class_ids, status in (([theirs["id"]], 422), ([str(uuid.uuid4())], 422),
                              (["nope"], 422), ([mine["id"]] * 101, 422)):
        body = {"title": "t", "subject": "s", "max_score": 1, "duration_minutes": 5,
                "passing_score": 1, "class_ids": class_ids}
        response = api.post("/api/teacher/exams", headers=owner["headers"], json=body)
        assert response.status_code == status, response.text
    exam = api.exam(owner, class_ids=[mine["id"], mine["id"]])
    assert exam["class_ids"] == [mine["id"]]
    url = f"/api/teacher/exams/{exam['id']}"
    assert api.patch(url, headers=owner["headers"],
                     json={"class_ids": [theirs["id"]]}).status_code == 422
    assert api.patch(url, headers=owner["headers"], json={"class_ids": None}).status_code == 422
    # A colleague who may edit adds their own class; they cannot take the owner's off.
    assert api.grant(owner, exam, colleague, can_edit=True).status_code == 201
    both = api.patch(url, headers=colleague["headers"],
                     json={"class_ids": [mine["id"], theirs["id"]]})
    assert both.status_code == 200, both.text
    assert sorted(both.json()["class_ids"]) == sorted([mine["id"], theirs["id"]])
    refused = api.patch(url, headers=colleague["headers"], json={"class_ids": [theirs["id"]]})
    assert refused.status_code == 403
    # A teacher who may only view the exam changes nothing.
    viewer = api.user("teacher")
    api.grant(owner, exam, viewer, can_edit=False)
    assert api.patch(url, headers=viewer["headers"], json={"class_ids": []}).status_code == 403
    # The admin sets any class; an empty list opens the exam to every student again.
    other = api.klass(api.user("teacher"))
    assert api.patch(url, headers=admin["headers"],
                     json={"class_ids": [other["id"]]}).json()["class_ids"] == [other["id"]]
    opened = api.patch(url, headers=admin["headers"], json={"class_ids": []})
    assert opened.status_code == 200 and opened.json()["class_ids"] == []
    assert exam["id"] in _available(api, api.user())
    listed = api.get("/api/teacher/exams", headers=owner["headers"]).json()["items"]
    assert next(e for e in listed if e["id"] == exam["id"])["class_ids"] == []


def test_a_teacher_sees_the_students_of_their_classes(api: Api, school: dict) -> None:
    teacher, enrolled = school["teacher"], school["enrolled"]
    newcomer = api.user()  # enrolled, never attempted anything
    api.enrol(teacher, school["class"], newcomer)
    other_teacher = api.user("teacher")
    # An exam of someone else's the newcomer took: none of it shows.
    foreign = api.exam(other_teacher)
    foreign_attempt = api.start(newcomer, foreign)["attempt_id"]
    api.submit(newcomer, foreign_attempt, {"q1": "4", "q2": ["2", "3"], "q3": "Paris"})
    detail = api.get(f"/api/teacher/students/{newcomer['id']}", headers=teacher["headers"])
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["attempts"] == [] and body["email"] == newcomer["email"]
    assert body["profile"]["total_exams_attempted"] == 0
    assert foreign["id"] not in detail.text and foreign_attempt not in detail.text
    assert api.get(f"/api/teacher/students/{newcomer['id']}",
                   headers=api.user("teacher")["headers"]).status_code in (403, 404)
    assert api.get(f"/api/teacher/students/{enrolled['id']}",
                   headers=teacher["headers"]).status_code == 200
    # Out of the class (and no attempt at the teacher's exams): not theirs any more.
    api.delete(f"/api/teacher/classes/{school['class']['id']}/students/{newcomer['id']}",
               headers=teacher["headers"])
    assert api.get(f"/api/teacher/students/{newcomer['id']}",
                   headers=teacher["headers"]).status_code == 404


# --- the database's own rules (row-level security, as the runtime role) ------------------


def _caller(user: dict) -> Caller:
    return Caller(uuid.UUID(user["id"]), user["role"])


def _visible(runtime_url: str, user: dict, query) -> set[str]:
    async def run() -> set[str]:
        engine = create_engine(Settings(database_url=runtime_url, debug=True), runtime_url)
        try:
            async with unit_of_work(create_sessionmaker(engine), _caller(user)) as session:
                return {str(r[0]) for r in (await session.execute(query)).all()}
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_a_students_session_cannot_read_an_exam_of_another_class(
    api: Api, school: dict, runtime_url: str,
) -> None:
    restricted, open_exam = school["restricted"]["id"], school["open"]["id"]
    everything = select(Exam.id)  # no WHERE: the policies alone decide
    assert {restricted, open_exam} <= _visible(runtime_url, school["enrolled"], everything)
    outsider = _visible(runtime_url, school["outsider"], everything)
    assert open_exam in outsider and restricted not in outsider
    assert _visible(runtime_url, school["outsider"], text(
        f"SELECT id FROM exams WHERE id = '{restricted}'")) == set()
    # Their own enrolments only, and no class rows at all.
    assert _visible(runtime_url, school["enrolled"], select(ClassEnrolment.class_id)) == {
        school["class"]["id"]}
    assert _visible(runtime_url, school["outsider"], select(ClassEnrolment.class_id)) == set()
    assert _visible(runtime_url, school["enrolled"], select(SchoolClass.id)) == set()


def test_a_teachers_session_reads_only_their_classes_and_students(
    api: Api, school: dict, runtime_url: str,
) -> None:
    teacher, stranger = school["teacher"], api.user("teacher")
    stranger_class = api.klass(stranger)
    loner = api.user()  # enrolled with the stranger only, never attempted anything
    api.enrol(stranger, stranger_class, loner)
    assert stranger_class["id"] not in _visible(runtime_url, teacher, select(SchoolClass.id))
    assert _visible(runtime_url, stranger, select(SchoolClass.id)) == {stranger_class["id"]}
    assert _visible(runtime_url, stranger, select(ClassEnrolment.student_id)) == {loner["id"]}
    students = select(User.id).where(User.role == "student")
    assert loner["id"] in _visible(runtime_url, stranger, students)
    assert loner["id"] not in _visible(runtime_url, teacher, students)
    # Every signed-in session tells restricted exams from open ones.
    assert school["restricted"]["id"] in _visible(runtime_url, school["outsider"],
                                                  select(ExamClass.exam_id))


def test_a_teacher_cannot_write_into_another_teachers_class(
    api: Api, school: dict, runtime_url: str,
) -> None:
    stranger = api.user("teacher")

    async def tamper() -> None:
        engine = create_engine(Settings(database_url=runtime_url, debug=True), runtime_url)
        try:
            async with unit_of_work(create_sessionmaker(engine), _caller(stranger)) as session:
                await session.execute(text(
                    "INSERT INTO class_enrolments (class_id, student_id) VALUES (:c, :s)"),
                    {"c": school["class"]["id"], "s": school["outsider"]["id"]})
        finally:
            await engine.dispose()

    with pytest.raises(Exception, match="row-level security"):
        asyncio.run(tamper())


def test_the_new_tables_are_under_forced_row_level_security(db) -> None:
    rows = db.execute(
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname ="
        " ANY(%s)", (["classes", "class_enrolments", "exam_classes", "exams",
                      "password_links"],)).fetchall()
    assert sorted(rows) == sorted((name, True, True) for name in (
        "classes", "class_enrolments", "exam_classes", "exams", "password_links"))
    grants = {r[0] for r in db.execute(
        "SELECT privilege_type FROM information_schema.role_table_grants"
        " WHERE table_name = 'password_links' AND grantee = 'veritas_runtime'")}
    assert grants == {"SELECT", "INSERT", "UPDATE"}  # a used link is evidence: never deleted
