"""Who can reach what: every route that takes an id, for every kind of caller.

Callers: anonymous, the attempt's student, another student, a student enrolled in the
creator's class and one in no class, the exam's creator (who owns the class), a teacher
granted analytics, an unrelated teacher, and an admin. 2xx only where allowed, and no
foreign ids in any list.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.support import Api


@pytest.fixture(scope="module")
def world(api: Api, admin: dict) -> dict:
    owner, granted, stranger = api.user("teacher"), api.user("teacher"), api.user("teacher")
    student, other_student = api.user(), api.user()
    exam = api.exam(owner)
    assert api.grant(owner, exam, granted, can_view_analytics=True).status_code == 201
    other_exam = api.exam(stranger)
    attempt = api.start(student, exam)
    api.post("/api/monitor/events/batch", headers=student["headers"], json={
        "attempt_id": attempt["attempt_id"],
        "events": [{"event_type": "paste", "data": {"chars": 900}},
                   {"event_type": "heartbeat", "data": {}}]})
    api.submit(student, attempt["attempt_id"], {"q1": "4"})
    other_attempt = api.start(other_student, other_exam)
    api.post("/api/monitor/events", headers=other_student["headers"], json={
        "attempt_id": other_attempt["attempt_id"], "event_type": "paste",
        "severity": "critical", "data": {"chars": 5000}})
    # A class of the owner's with one student, and an exam assigned to it.
    enrolled, outsider, classmate = api.user(), api.user(), api.user()
    klass = api.klass(owner)
    assert api.enrol(owner, klass, enrolled, classmate).status_code == 200
    class_exam = api.exam(owner, class_ids=[klass["id"]])
    return {"owner": owner, "granted": granted, "stranger": stranger, "student": student,
            "other_student": other_student, "admin": admin, "anonymous": None, "exam": exam,
            "attempt": attempt, "other_exam": other_exam, "other_attempt": other_attempt,
            "enrolled": enrolled, "outsider": outsider, "classmate": classmate, "class": klass,
            "class_exam": class_exam}


CALLERS = ["anonymous", "student", "other_student", "enrolled", "outsider", "owner", "granted",
           "stranger", "admin"]


def _call(api: Api, caller: dict | None, method: str, url: str, **kwargs):
    headers = caller["headers"] if caller else {}
    return api.request(method, url, headers=headers, **kwargs)


TEACHER_READS = [
    ("GET", "/api/teacher/exams/{exam}/analytics"),
    ("GET", "/api/teacher/students/{student}"),
    ("GET", "/api/teacher/attempts/{attempt}"),
    ("GET", "/api/teacher/attempts/{attempt}/monitoring"),
    ("GET", "/api/teacher/attempts/{attempt}/responses"),
]
ALLOWED_TEACHER_READ = {"owner", "granted", "admin"}


@pytest.mark.parametrize("method,template", TEACHER_READS)
@pytest.mark.parametrize("who", CALLERS)
def test_teacher_reads(api: Api, world: dict, who: str, method: str, template: str) -> None:
    url = template.format(exam=world["exam"]["id"], student=world["student"]["id"],
                          attempt=world["attempt"]["attempt_id"])
    response = _call(api, world[who], method, url)
    if who == "anonymous":
        assert response.status_code == 401
    elif who in ALLOWED_TEACHER_READ:
        assert response.status_code == 200, response.text
        assert world["other_student"]["id"] not in response.text
        assert world["other_attempt"]["attempt_id"] not in response.text
    else:
        assert response.status_code in (403, 404), response.text
        assert world["student"]["email"] not in response.text


@pytest.mark.parametrize("who", CALLERS)
def test_exam_edit_and_grants(api: Api, world: dict, who: str) -> None:
    exam_id = world["exam"]["id"]
    edit = _call(api, world[who], "PATCH", f"/api/teacher/exams/{exam_id}",
                 json={"description": f"edited by {who}"})
    expected_edit = {"anonymous": 401, "owner": 200, "admin": 200}.get(who, 403)
    assert edit.status_code == expected_edit
    grant = _call(api, world[who], "POST", f"/api/teacher/exams/{exam_id}/permissions",
                  json={"teacher_id": world["granted"]["id"], "can_view": True,
                        "can_edit": False, "can_view_analytics": True})
    if who == "anonymous":
        assert grant.status_code == 401
    elif who in ("owner", "admin"):
        assert grant.status_code in (200, 201)
    else:
        assert grant.status_code == 403


@pytest.mark.parametrize("who", CALLERS)
def test_student_attempt_view(api: Api, world: dict, who: str) -> None:
    response = _call(api, world[who], "GET",
                     f"/api/student/attempts/{world['attempt']['attempt_id']}")
    expected = {"anonymous": 401, "student": 200}.get(who, (403, 404))
    if isinstance(expected, tuple):
        assert response.status_code in expected
    else:
        assert response.status_code == expected
    if who == "student":
        body = response.text
        for secret in ("data_payload", "anomaly_score", "analysis_notes", "creator_id",
                       world["owner"]["email"], "correct"):
            assert secret not in body


@pytest.mark.parametrize("who", ["anonymous", "student", "other_student", "owner", "granted",
                                 "viewer", "stranger", "admin"])
def test_grades(api: Api, world: dict, who: str) -> None:
    # Grading needs can_edit: the granted colleague (view and analytics) and a view-only one
    # read the answers but may not grade them.
    if who == "viewer":
        world["viewer"] = world.get("viewer") or api.user("teacher")
        api.grant(world["owner"], world["exam"], world["viewer"], can_view_analytics=False)
    attempt_id = world["attempt"]["attempt_id"]
    response = _call(api, world[who], "PUT", f"/api/teacher/attempts/{attempt_id}/grades/q3",
                     json={"points": 1, "feedback": f"graded by {who}"})
    expected = {"anonymous": 401, "owner": 200, "admin": 200}.get(who, 403)
    assert response.status_code == expected, response.text
    if expected != 200:
        assert world["student"]["email"] not in response.text
        assert f"graded by {who}" not in _call(api, world["owner"], "GET",
                                               f"/api/teacher/attempts/{attempt_id}/responses"
                                               ).text
    foreign = _call(api, world[who], "PUT", f"/api/teacher/attempts/"
                    f"{world['other_attempt']['attempt_id']}/grades/q3", json={"points": 1})
    # The other attempt is the stranger's exam's, and still in progress.
    assert foreign.status_code in ((401,) if who == "anonymous" else
                                   (409,) if who in ("admin", "stranger") else (403, 404)
                                   ), foreign.text
    queue = _call(api, world[who], "GET", "/api/teacher/grading", params={"status": "pending"})
    if who == "anonymous":
        assert queue.status_code == 401
    elif who in ("student", "other_student"):
        assert queue.status_code == 403
    else:
        assert queue.status_code == 200
        assert world["other_attempt"]["attempt_id"] not in queue.text or who == "admin"
        assert world["other_student"]["id"] not in queue.text
        if who == "stranger":
            assert queue.json()["items"] == []


@pytest.mark.parametrize("who", ["anonymous", "student", "other_student", "owner", "granted",
                                 "stranger", "admin"])
def test_accommodations(api: Api, world: dict, who: str) -> None:
    # Setting and removing need can_edit (the granted colleague views only); reading, can_view.
    url = (f"/api/teacher/exams/{world['exam']['id']}/accommodations/"
           f"{world['other_student']['id']}")
    note = f"set by {who}"
    put = _call(api, world[who], "PUT", url, json={"extra_minutes": 7, "note": note})
    expected = {"anonymous": 401, "owner": 200, "admin": 200}.get(who, 403)
    assert put.status_code == expected, put.text
    listed = _call(api, world[who], "GET",
                   f"/api/teacher/exams/{world['exam']['id']}/accommodations")
    expected_list = {"anonymous": 401, "owner": 200, "granted": 200, "admin": 200}.get(who, 403)
    assert listed.status_code == expected_list, listed.text
    if expected_list == 200:
        assert world["other_exam"]["id"] not in listed.text
    else:
        assert "set by" not in listed.text
    owners = _call(api, world["owner"], "GET",
                   f"/api/teacher/exams/{world['exam']['id']}/accommodations").text
    assert (note in owners) == (expected == 200)
    removed = _call(api, world[who], "DELETE", url)
    assert removed.status_code == {"anonymous": 401, "owner": 204, "admin": 204}.get(who, 403)
    # The stranger's exam: nobody but its teacher (and admins) reaches its accommodations.
    foreign = _call(api, world[who], "GET",
                    f"/api/teacher/exams/{world['other_exam']['id']}/accommodations")
    assert foreign.status_code == {"anonymous": 401, "admin": 200, "stranger": 200
                                   }.get(who, 403)


@pytest.mark.parametrize("who", ["anonymous", "student", "enrolled", "owner", "admin"])
def test_admin_routes(api: Api, world: dict, who: str) -> None:
    target = world["other_student"]["id"]
    name = f"matrix{uuid.uuid4().hex[:10]}"
    for method, url, body, allowed in (
        ("GET", "/api/admin/users", None, 200),
        ("GET", "/api/admin/audit-logs", None, 200),
        ("GET", "/api/admin/audit-logs/actions", None, 200),
        ("POST", f"/api/admin/users/{target}/unlock", None, 200),
        ("POST", "/api/admin/users", {"email": f"{name}@school.example", "username": name,
                                      "role": "admin"}, 201),
        ("PATCH", f"/api/admin/users/{target}", {"full_name": f"Named by {who}"}, 200),
        ("PATCH", f"/api/admin/users/{world[who]['id'] if world[who] else target}",
         {"role": "admin"}, 200),
        ("POST", f"/api/admin/users/{target}/password-reset", None, 200),
    ):
        response = _call(api, world[who], method, url, json=body)
        expected = {"anonymous": 401, "admin": allowed}.get(who, 403)
        assert response.status_code == expected, (method, url)
        assert "setup_link" not in response.text or who == "admin"
    # Nothing a refused caller sent was written: no account, no new name, no promotion.
    users = api.get("/api/admin/users", headers=world["admin"]["headers"],
                    params={"q": name}).json()["items"]
    assert len(users) == (1 if who == "admin" else 0)
    if who in ("student", "owner"):
        me = api.get("/api/auth/me", headers=world[who]["headers"])
        assert me.json()["role"] != "admin"


@pytest.mark.parametrize("who", CALLERS)
def test_class_routes(api: Api, world: dict, who: str) -> None:
    """Classes are their owner's and the admins': another teacher is told 404 on every route,
    a student 403."""
    base = f"/api/teacher/classes/{world['class']['id']}"
    allowed = who in ("owner", "admin")
    expected = 200 if allowed else {"anonymous": 401, "granted": 404, "stranger": 404}.get(
        who, 403)
    # A student of the caller's own, enrolled and taken out again by the allowed callers.
    passer_by = api.user() if allowed else world["outsider"]
    calls = [
        ("GET", base, {}, expected),
        ("POST", f"{base}/students", {"json": {"student_ids": [passer_by["id"]]}}, expected),
        ("DELETE", f"{base}/students/{passer_by['id']}", {}, 204 if allowed else expected),
        ("POST", f"{base}/roster", {"content": "email,username,full_name,enrollment_id\n",
                                    "headers": {"Content-Type": "text/csv"}}, expected),
        ("GET", "/api/teacher/classes", {}, 200 if who in ("owner", "admin", "granted",
                                                           "stranger") else expected),
        ("POST", "/api/teacher/classes", {"json": {"name": f"{who}'s"}},
         201 if who in ("owner", "admin", "granted", "stranger") else expected),
    ]
    for method, url, extra, status in calls:
        headers = (world[who]["headers"] if world[who] else {}) | extra.pop("headers", {})
        response = api.request(method, url, headers=headers, **extra)
        assert response.status_code == status, (method, url, response.text)
        if (method, url, status) == ("GET", "/api/teacher/classes", 200) and who != "admin":
            assert (world["class"]["id"] in response.text) == (who == "owner")
        if status >= 400:
            assert world["enrolled"]["email"] not in response.text
    enrolled = api.get(base, headers=world["owner"]["headers"]).json()["students"]
    assert {s["id"] for s in enrolled} == {world["enrolled"]["id"], world["classmate"]["id"]}


@pytest.mark.parametrize("who", CALLERS)
def test_a_class_exam_is_only_for_its_students(api: Api, world: dict, who: str) -> None:
    exam_id = world["class_exam"]["id"]
    listed = _call(api, world[who], "GET", "/api/student/exams/available",
                   params={"limit": 500})
    start = _call(api, world[who], "POST", f"/api/student/exams/{exam_id}/start")
    if who == "anonymous":
        assert (listed.status_code, start.status_code) == (401, 401)
    elif who == "enrolled":
        assert exam_id in listed.text and world["exam"]["id"] in listed.text
        assert start.status_code in (200, 201)
    elif who in ("student", "other_student", "outsider"):
        assert exam_id not in listed.text and world["exam"]["id"] in listed.text
        assert start.status_code == 404
    else:
        assert (listed.status_code, start.status_code) == (403, 403)
    # Teachers reach it by their exam rights, as any exam.
    view = _call(api, world[who], "GET", f"/api/teacher/exams/{exam_id}")
    expected = {"anonymous": 401, "owner": 200, "admin": 200}.get(who, 403)
    assert view.status_code == expected
    if expected == 200:
        assert view.json()["class_ids"] == [world["class"]["id"]]


@pytest.mark.parametrize("who", CALLERS)
def test_a_teacher_sees_the_students_of_their_class(api: Api, world: dict, who: str) -> None:
    # The classmate never attempted an exam: only their class makes them the owner's.
    response = _call(api, world[who], "GET", f"/api/teacher/students/{world['classmate']['id']}")
    expected = {"anonymous": 401, "owner": 200, "admin": 200}.get(who, (403, 404))
    if isinstance(expected, tuple):
        assert response.status_code in expected
        assert world["classmate"]["email"] not in response.text
    else:
        assert response.status_code == expected


def test_lists_carry_no_foreign_ids(api: Api, world: dict) -> None:
    for who in ("owner", "granted"):
        h = world[who]["headers"]
        exams = api.get("/api/teacher/exams", headers=h).text
        assert world["exam"]["id"] in exams and world["other_exam"]["id"] not in exams
        alerts = api.get("/api/teacher/alerts", headers=h).json()
        assert alerts["items"], "the paste anomaly is an alert"
        assert {a["exam_id"] for a in alerts["items"]} == {world["exam"]["id"]}
        dashboard = api.get("/api/teacher/dashboard", headers=h).text
        assert world["other_exam"]["id"] not in dashboard
        assert world["other_attempt"]["attempt_id"] not in dashboard
    stranger_alerts = api.get("/api/teacher/alerts", headers=world["stranger"]["headers"]).json()
    assert {a["exam_id"] for a in stranger_alerts["items"]} == {world["other_exam"]["id"]}
    mine = api.get("/api/student/dashboard", headers=world["student"]["headers"]).text
    assert world["other_attempt"]["attempt_id"] not in mine
    assert world["other_student"]["id"] not in mine


def test_alerts_most_severe_first(api: Api, world: dict) -> None:
    items = api.get("/api/teacher/alerts", headers=world["admin"]["headers"],
                    params={"limit": 500}).json()["items"]
    rank = {"normal": 0, "warning": 1, "critical": 2}
    # Then the newest raised first: the time an alert was raised, which repeats never move.
    keys = [(rank[a["severity"]], a["first_at"]) for a in items]
    assert keys == sorted(keys, reverse=True)


def test_alert_and_event_times_far_off_are_never_a_5xx(api: Api, world: dict) -> None:
    h = world["owner"]["headers"]
    everything = api.get("/api/teacher/alerts", headers=h,
                         params={"since": "0001-01-01T00:00:00Z", "limit": 500})
    assert everything.status_code == 200
    assert {a["exam_id"] for a in everything.json()["items"]} == {world["exam"]["id"]}
    monitoring = f"/api/teacher/attempts/{world['attempt']['attempt_id']}/monitoring"
    for url, param in (("/api/teacher/alerts", "since"), (monitoring, "since"),
                       (monitoring, "until"), ("/api/admin/audit-logs", "since")):
        for moment in ("0001-01-01T00:00:00Z", "0001-01-02T23:59:59Z", "0001-01-01T00:00:00+05:00",
                       "9999-12-31T23:59:59Z", "9999-12-31T23:00:00-05:00", "0001-01-01"):
            response = api.get(url, headers=world["admin"]["headers"], params={param: moment})
            assert response.status_code in (200, 422), (url, param, moment, response.text)


def test_monitoring_filters(api: Api, world: dict) -> None:
    url = f"/api/teacher/attempts/{world['attempt']['attempt_id']}/monitoring"
    h = world["owner"]["headers"]
    everything = api.get(url, headers=h).json()["items"]
    assert {e["event_type"] for e in everything} == {"paste", "heartbeat"}
    # Each event under its column names, its data as data_payload.
    assert {"id", "event_type", "severity", "data_payload", "is_anomaly", "anomaly_score",
            "description", "client_timestamp", "server_timestamp"} <= set(everything[0])
    assert "data" not in everything[0]
    assert {e["event_type"]: e["data_payload"] for e in everything}["paste"] == {"chars": 900}
    pastes = api.get(url, headers=h, params={"payload": '{"chars": 900}'}).json()["items"]
    assert [e["event_type"] for e in pastes] == ["paste"]
    anomalies = api.get(url, headers=h, params={"is_anomaly": "true"}).json()["items"]
    assert [e["event_type"] for e in anomalies] == ["paste"]
    by_type = api.get(url, headers=h, params={"event_type": "heartbeat"}).json()["items"]
    assert len(by_type) == 1
    assert api.get(url, headers=h, params={"payload": "[1]"}).status_code == 422
    assert api.get(url, headers=h, params={"severity": "bad"}).status_code == 422


def test_revoked_grant_counts_on_next_request(api: Api, world: dict, admin: dict) -> None:
    owner, colleague = api.user("teacher"), api.user("teacher")
    exam = api.exam(owner)
    api.grant(owner, exam, colleague, can_view_analytics=True)
    url = f"/api/teacher/exams/{exam['id']}/analytics"
    assert api.get(url, headers=colleague["headers"]).status_code == 200
    api.delete(f"/api/teacher/exams/{exam['id']}/permissions/{colleague['id']}",
               headers=owner["headers"])
    assert api.get(url, headers=colleague["headers"]).status_code == 403
    view_only = api.user("teacher")
    api.grant(owner, exam, view_only, can_view_analytics=False)
    assert api.get(f"/api/teacher/exams/{exam['id']}",
                   headers=view_only["headers"]).status_code == 200
    assert api.get(url, headers=view_only["headers"]).status_code == 403


def test_alert_stream_pushes_new_alerts_and_ends_on_logout(api: Api) -> None:
    import threading

    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher)
    attempt = api.start(student, exam)
    assert api.get("/api/teacher/alerts/stream", headers=student["headers"]).status_code == 403
    received: list[str] = []
    ended = threading.Event()

    def read() -> None:
        with api.stream("GET", "/api/teacher/alerts/stream", headers=teacher["headers"],
                        params={"exam_id": exam["id"]}, timeout=30) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                received.append(line)
        ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)
    api.post("/api/monitor/events", headers=student["headers"], json={
        "attempt_id": attempt["attempt_id"], "event_type": "paste", "data": {"chars": 5000}})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(line.startswith("data: ") for line in received):
        time.sleep(0.1)
    data = next(json.loads(line[6:]) for line in received if line.startswith("data: "))
    assert data["attempt_id"] == attempt["attempt_id"] and data["event_type"] == "paste"
    api.post("/api/auth/logout", headers=teacher["headers"])
    assert ended.wait(10), "a revoked token's stream must end"


def test_alert_pages_walk_every_alert_once(api: Api) -> None:
    # An attempt still in progress: no analysis can add alerts while the pages are walked.
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher)
    attempt = api.start(student, exam)
    api.post("/api/monitor/events/batch", headers=student["headers"], json={
        "attempt_id": attempt["attempt_id"],
        "events": [{"event_type": "paste", "data": {"chars": 300 + i}} for i in range(3)]
        + [{"event_type": kind, "severity": "critical", "data": {}}
           for kind in ("module.alarm", "module.siren")]
        + [{"event_type": "multiple_faces", "severity": "critical", "data": {"count": 3}}]})
    h, scope = teacher["headers"], {"exam_id": exam["id"]}
    everything = [a["id"] for a in api.get("/api/teacher/alerts", headers=h,
                                           params=scope | {"limit": 500}).json()["items"]]
    walked, cursor = [], None
    while True:
        params = scope | {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = api.get("/api/teacher/alerts", headers=h, params=params).json()
        walked += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(everything) == 4 and walked == everything  # the three pastes are one alert
    for bad in ("@@", "WyJ4IiwgMV0", "W10"):
        assert api.get("/api/teacher/alerts", headers=h,
                       params={"cursor": bad}).status_code == 422


def test_alert_pages_stay_put_when_repeats_fold_in(api: Api) -> None:
    # Repeats fold into their alerts while a teacher walks the pages: each alert's latest time
    # moves, its place in the list does not, so the walk still meets every alert once.
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher)
    attempt = api.start(student, exam)
    anomalies = [{"event_type": kind, "severity": "critical", "data": {}}
                 for kind in ("module.alarm", "module.siren", "module.bell", "module.horn")]

    def send() -> None:
        response = api.post("/api/monitor/events/batch", headers=student["headers"],
                            json={"attempt_id": attempt["attempt_id"], "events": anomalies})
        assert response.status_code == 201, response.text

    send()
    h, scope = teacher["headers"], {"exam_id": exam["id"], "limit": 1}
    everything = [a["id"] for a in api.get("/api/teacher/alerts", headers=h,
                                           params=scope | {"limit": 500}).json()["items"]]
    first = api.get("/api/teacher/alerts", headers=h, params=scope).json()
    walked, cursor = [a["id"] for a in first["items"]], first["next_cursor"]
    send()  # every alert gets a repeat, the ones not yet seen too
    while cursor is not None:
        page = api.get("/api/teacher/alerts", headers=h, params=scope | {"cursor": cursor}).json()
        walked += [a["id"] for a in page["items"]]
        assert all(a["count"] == 2 for a in page["items"])
        cursor = page["next_cursor"]
    assert len(everything) == 4 and walked == everything


def test_view_only_teacher_reads_attempts_and_students_of_viewable_exams(
    api: Api, world: dict
) -> None:
    # Student detail is limited to exams the caller may view, attempt detail and its
    # monitoring to attempts of exams they may view; analytics stay with can_view_analytics.
    owner, student, viewer = world["owner"], world["student"], api.user("teacher")
    assert api.grant(owner, world["exam"], viewer, can_view_analytics=False).status_code == 201
    unseen_exam = api.exam(owner)  # the same owner's, not granted to the viewer
    unseen = api.start(student, unseen_exam)
    h = viewer["headers"]
    attempt_id = world["attempt"]["attempt_id"]

    detail = api.get(f"/api/teacher/students/{student['id']}", headers=h)
    assert detail.status_code == 200, detail.text
    assert [a["attempt_id"] for a in detail.json()["attempts"]] == [attempt_id]
    assert unseen["attempt_id"] not in detail.text and unseen_exam["id"] not in detail.text
    attempt = api.get(f"/api/teacher/attempts/{attempt_id}", headers=h)
    assert attempt.status_code == 200, attempt.text
    assert attempt.json()["student_id"] == student["id"]
    events = api.get(f"/api/teacher/attempts/{attempt_id}/monitoring", headers=h)
    assert events.status_code == 200, events.text
    assert {e["event_type"] for e in events.json()["items"]} == {"paste", "heartbeat"}

    for url in (f"/api/teacher/attempts/{unseen['attempt_id']}",
                f"/api/teacher/attempts/{unseen['attempt_id']}/monitoring",
                f"/api/teacher/exams/{world['exam']['id']}/analytics",
                f"/api/teacher/attempts/{attempt_id}/reviews"):
        assert api.get(url, headers=h).status_code == 403, url
    assert api.get(f"/api/teacher/students/{world['other_student']['id']}",
                   headers=h).status_code in (403, 404)


def test_student_dashboard_carries_no_review_internals(api: Api, world: dict) -> None:
    dashboard = api.get("/api/student/dashboard", headers=world["student"]["headers"])
    assert dashboard.status_code == 200
    profile = dashboard.json()["profile"]
    assert "flagged_for_review" not in profile
    assert {"cumulative_integrity_score", "cumulative_lmi", "total_exams_attempted",
            "total_exams_passed", "current_dropout_risk"} <= set(profile)
    assert all("flagged" not in item for item in dashboard.json()["exam_history"])


def _analyzed(api: Api, admin: dict, attempt_id: str) -> None:
    """Wait for the worker's own analysis, so a stored one is not overwritten after it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = api.get(f"/api/teacher/attempts/{attempt_id}", headers=admin["headers"]).json()
        if view["behavior_analysis"] is not None:
            return
        time.sleep(0.2)
    raise AssertionError("the attempt was never analyzed")


def test_view_only_teacher_sees_no_figures_from_other_exams(api: Api, admin: dict) -> None:
    # A student sat E1 (granted view-only) and, later, E2 (another teacher's). Every figure
    # of the profile the viewer gets must come from E1 alone.
    owner, other_teacher, viewer, student = (api.user("teacher"), api.user("teacher"),
                                             api.user("teacher"), api.user())
    seen_exam, unseen_exam = api.exam(owner), api.exam(other_teacher)
    assert api.grant(owner, seen_exam, viewer, can_view_analytics=False).status_code == 201
    seen = api.start(student, seen_exam)["attempt_id"]
    assert api.submit(student, seen, {"q1": "4"}).status_code == 200
    unseen = api.start(student, unseen_exam)["attempt_id"]
    assert api.submit(student, unseen, {"q1": "4", "q2": ["2", "3"],
                                        "q3": "Paris"}).status_code == 200
    for attempt_id, integrity, label, lmi, attention in (
            (seen, 0.93, "safe", 0.2, False), (unseen, 0.11, "high_risk", -0.8, True)):
        _analyzed(api, admin, attempt_id)
        stored = api.put(f"/api/analysis/attempts/{attempt_id}", headers=admin["headers"], json={
            "model_version": "district-7", "integrity_score": integrity, "lmi_score": lmi,
            "dropout_label": label, "requires_instructor_attention": attention})
        assert stored.status_code == 200, stored.text

    everything = api.get(f"/api/teacher/students/{student['id']}",
                         headers=admin["headers"]).json()["profile"]
    assert (everything["total_exams_attempted"], everything["total_exams_passed"]) == (2, 1)
    assert everything["current_dropout_risk"] == "high_risk"

    detail = api.get(f"/api/teacher/students/{student['id']}", headers=viewer["headers"])
    assert detail.status_code == 200, detail.text
    assert [a["attempt_id"] for a in detail.json()["attempts"]] == [seen]
    profile = detail.json()["profile"]
    assert profile["total_exams_attempted"] == 1
    assert profile["total_exams_passed"] == 0
    assert profile["cumulative_integrity_score"] == pytest.approx(0.93)
    assert profile["cumulative_lmi"] == pytest.approx(0.2)
    assert profile["current_dropout_risk"] == "safe"
    assert profile["flagged_for_review"] is False
    for leak in (unseen, unseen_exam["id"], "high_risk"):
        assert leak not in detail.text


def test_alert_stream_ends_when_its_token_expires(api: Api, jwt_secret: str) -> None:
    import threading

    import httpx
    import jwt

    teacher = api.user("teacher")
    now = int(time.time())
    claims = {"user_id": teacher["id"], "email": teacher["email"], "role": "teacher",
              "iat": now, "exp": now + 3, "jti": str(uuid.uuid4()), "type": "access"}
    short = jwt.encode(claims, jwt_secret, algorithm="HS256")
    statuses: list[int] = []
    ended = threading.Event()

    def read() -> None:
        # A client of its own: on a failure the test returns while this thread still reads.
        try:
            with httpx.stream("GET", f"{api.base_url}/api/teacher/alerts/stream",
                              headers={"Authorization": f"Bearer {short}"},
                              timeout=30) as response:
                statuses.append(response.status_code)
                for _ in response.iter_lines():
                    pass
        except httpx.HTTPError:
            return
        ended.set()

    threading.Thread(target=read, daemon=True).start()
    assert ended.wait(10), "a stream must end when its token expires"
    assert statuses == [200] and time.time() >= now + 3


@pytest.fixture(scope="module")
def viewer(api: Api, world: dict) -> dict:
    """A teacher granted the world's exam to view only, without analytics."""
    teacher = api.user("teacher")
    assert api.grant(world["owner"], world["exam"], teacher,
                     can_view_analytics=False).status_code == 201
    return teacher


@pytest.mark.parametrize("who", ["anonymous", "student", "other_student", "owner", "granted",
                                 "viewer", "stranger", "admin"])
def test_alert_triage(api: Api, world: dict, viewer: dict, who: str) -> None:
    caller = viewer if who == "viewer" else world[who]
    alerts = api.get("/api/teacher/alerts", headers=world["owner"]["headers"],
                     params={"exam_id": world["exam"]["id"], "status": "all"}).json()["items"]
    alert_id = next(a["id"] for a in alerts if a["event_type"] == "paste")
    detail = _call(api, caller, "GET", f"/api/teacher/alerts/{alert_id}")
    change = _call(api, caller, "POST", f"/api/teacher/alerts/{alert_id}/status",
                   json={"status": "acknowledged", "note": f"seen by {who}"})
    expected = {"anonymous": {401}, "owner": {200}, "granted": {200}, "admin": {200},
                "viewer": {403}}.get(who, {403, 404})
    assert detail.status_code in expected and change.status_code in expected, (
        detail.text, change.text)
    if 200 not in expected:
        assert world["student"]["email"] not in change.text + detail.text
        assert world["student"]["id"] not in change.text + detail.text
        history = api.get(f"/api/teacher/alerts/{alert_id}",
                          headers=world["owner"]["headers"]).json()["history"]
        assert f"seen by {who}" not in {h["note"] for h in history}


@pytest.mark.parametrize("who", ["anonymous", "student", "other_student", "owner", "granted",
                                 "viewer", "stranger", "admin"])
def test_exports_and_the_incident_report(api: Api, world: dict, viewer: dict, who: str) -> None:
    caller = viewer if who == "viewer" else world[who]
    exam, attempt = world["exam"]["id"], world["attempt"]["attempt_id"]
    for url in (f"/api/teacher/exams/{exam}/export/grades.csv",
                f"/api/teacher/exams/{exam}/export/alerts.csv",
                f"/api/teacher/attempts/{attempt}/report"):
        response = _call(api, caller, "GET", url)
        if who == "anonymous":
            assert response.status_code == 401, url
        elif who in ALLOWED_TEACHER_READ:
            assert response.status_code == 200, (url, response.text)
            assert world["other_student"]["email"] not in response.text
            assert world["other_attempt"]["attempt_id"] not in response.text
        else:
            assert response.status_code in (403, 404), (url, response.text)
            assert world["student"]["email"] not in response.text
    audit = _call(api, caller, "GET", "/api/admin/audit-logs/export.csv")
    assert audit.status_code == {"anonymous": 401, "admin": 200}.get(who, 403)
