"""What one attempt can write is bounded: its event rate, its drafts, its share of alerts."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from tests.support import METRICS_TOKEN, Api, ServerProcess, bearer

from veritas.monitoring.ingest import COPY_MIN_ROWS

RATE, BURST = 50, 1000  # events a second and the bucket, for the limited server below


@pytest.fixture(scope="module")
def limited(server_env: dict[str, str]) -> Iterator[Api]:
    """A server of its own with a small per-attempt rate, so a test can reach it quickly."""
    env = server_env | {"INGEST_ATTEMPT_EVENTS_PER_SECOND": str(RATE),
                        "INGEST_ATTEMPT_BURST_EVENTS": str(BURST)}
    with ServerProcess(env) as server, Api(server.base_url) as client:
        client.create_admin_cli(env)
        yield client


def _attempts(api: Api, students: int) -> list[tuple[dict, dict]]:
    teacher = api.user("teacher")
    exam = api.exam(teacher)
    people = [api.user() for _ in range(students)]
    return [(p, api.start(p, exam)) for p in people]


def _batch(count: int, **extra) -> list[dict]:
    return [{"event_type": "typing", "event_id": str(uuid.uuid4()), "data": {"keys": i},
             **extra} for i in range(count)]


def _stored(db, attempt: dict) -> int:
    return db.execute("SELECT count(*) FROM monitoring_events WHERE exam_attempt_id = %s",
                      (attempt["attempt_id"],)).fetchone()[0]


def test_an_attempt_beyond_its_rate_gets_429_with_retry_after(limited: Api, db) -> None:
    (student, attempt), (other, other_attempt) = _attempts(limited, 2)
    aid, h = attempt["attempt_id"], student["headers"]
    full = limited.post("/api/monitor/events/batch", headers=h,
                        json={"attempt_id": aid, "events": _batch(BURST)})
    assert full.status_code == 201  # the whole bucket at once: a backlog drained after a gap
    excess = _batch(100)
    refused = limited.post("/api/monitor/events/batch", headers=h,
                           json={"attempt_id": aid, "events": excess})
    assert refused.status_code == 429, refused.text
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= 100 // RATE + 1
    single = limited.post("/api/monitor/events", headers=h, json={
        "attempt_id": aid, "event_type": "heartbeat"})
    assert single.status_code in (201, 429)
    # Another attempt is unaffected.
    assert limited.post("/api/monitor/events/batch", headers=other["headers"], json={
        "attempt_id": other_attempt["attempt_id"], "events": _batch(500)}).status_code == 201
    # Nothing of the refused request was stored; after the wait it is.
    assert _stored(db, attempt) == BURST + (single.status_code == 201)
    time.sleep(wait)
    again = limited.post("/api/monitor/events/batch", headers=h,
                         json={"attempt_id": aid, "events": excess})
    assert again.status_code == 201 and again.json() == {"recorded": 100, "duplicates": 0}


def test_a_flood_from_many_connections_stays_bounded(limited: Api, db) -> None:
    """One attempt flooding from several connections gets the bucket and its refill, no
    more; an honest attempt sending alongside gets every request stored."""
    (flooder, flood_attempt), (honest, honest_attempt) = _attempts(limited, 2)
    statuses: dict[str, Counter[int]] = {"flood": Counter(), "honest": Counter()}
    started = time.monotonic()
    stop = started + 2.5

    def flood() -> None:
        with httpx.Client(base_url=limited.base_url, timeout=30) as client:
            while time.monotonic() < stop:
                response = client.post("/api/monitor/events/batch", headers=flooder["headers"],
                                       json={"attempt_id": flood_attempt["attempt_id"],
                                             "events": _batch(200, severity="critical")})
                statuses["flood"][response.status_code] += 1
                if response.status_code == 429:
                    assert int(response.headers["retry-after"]) >= 1

    def honest_student() -> None:
        with httpx.Client(base_url=limited.base_url, timeout=30) as client:
            while time.monotonic() < stop:
                response = client.post("/api/monitor/events/batch", headers=honest["headers"],
                                       json={"attempt_id": honest_attempt["attempt_id"],
                                             "events": _batch(5)})
                statuses["honest"][response.status_code] += 1
                time.sleep(0.2)

    threads = [threading.Thread(target=flood) for _ in range(4)]
    threads.append(threading.Thread(target=honest_student))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert set(statuses["flood"]) == {201, 429}, statuses
    assert set(statuses["honest"]) == {201}, statuses
    assert _stored(db, flood_attempt) <= BURST + RATE * elapsed
    assert _stored(db, honest_attempt) == 5 * statuses["honest"][201]
    metrics = limited.get("/metrics", headers=bearer(METRICS_TOKEN)).text
    assert "veritas_ingest_rate_limited" in metrics


def test_repeated_anomalies_fold_into_one_alert_with_a_count(api: Api, db) -> None:
    """An attempt sending thousands of anomalies of one kind has one alert, with their count
    and the latest time, whichever write path stored them; retries count once. Another
    student's alert stays in the list beside it."""
    teacher = api.user("teacher")
    exam = api.exam(teacher)
    flooder, honest = api.user(), api.user()
    flood_attempt, honest_attempt = api.start(flooder, exam), api.start(honest, exam)
    aid, h = flood_attempt["attempt_id"], flooder["headers"]
    stored = 0
    for size in (COPY_MIN_ROWS * 3, 5, 1, COPY_MIN_ROWS):  # by COPY and by INSERT
        events = _batch(size, severity="critical", event_type="module.alarm")
        response = api.post("/api/monitor/events/batch", headers=h,
                            json={"attempt_id": aid, "events": events})
        assert response.status_code == 201
        stored += size
        # Sent again (a lost answer): stored once, counted once.
        assert api.post("/api/monitor/events/batch", headers=h, json={
            "attempt_id": aid, "events": events}).json()["duplicates"] == size
    # A second kind of anomaly is a second alert.
    api.post("/api/monitor/events/batch", headers=h, json={"attempt_id": aid, "events": [
        {"event_type": "paste", "data": {"chars": 5000}},
        {"event_type": "paste", "data": {"chars": 250}}]})
    first = api.post("/api/monitor/events", headers=honest["headers"], json={
        "attempt_id": honest_attempt["attempt_id"], "event_type": "paste",
        "data": {"chars": 900}})
    assert first.status_code == 201

    items = api.get("/api/teacher/alerts", headers=teacher["headers"],
                    params={"exam_id": exam["id"], "limit": 500}).json()["items"]
    assert len(items) == 3, items
    alarm = next(a for a in items if a["event_type"] == "module.alarm")
    assert alarm["count"] == stored and alarm["severity"] == "critical"
    assert alarm["attempt_id"] == aid and alarm["first_at"] <= alarm["created_at"]
    paste = next(a for a in items if a["event_type"] == "paste" and a["attempt_id"] == aid)
    assert paste["count"] == 2
    assert paste["anomaly_score"] == 1.0  # the highest of the two
    assert any(a["attempt_id"] == honest_attempt["attempt_id"] and a["count"] == 1
               for a in items)
    events = db.execute("SELECT count(*) FROM monitoring_events WHERE exam_attempt_id = %s"
                        " AND is_anomaly", (aid,)).fetchone()[0]
    assert events == stored + 2  # every event is still kept; only the alerts fold
    dashboard = api.get("/api/teacher/dashboard", headers=teacher["headers"]).json()
    assert {a["count"] for a in dashboard["alerts"] if a["attempt_id"] == aid} == {stored, 2}


def test_folded_alerts_are_under_row_level_security(api: Api, runtime_url: str) -> None:
    """A query with no WHERE clause, as a student or as another exam's teacher, sees only
    the alerts that caller may see."""
    teacher, stranger = api.user("teacher"), api.user("teacher")
    exam = api.exam(teacher)
    students = [api.user(), api.user()]
    for student in students:
        attempt = api.start(student, exam)
        assert api.post("/api/monitor/events", headers=student["headers"], json={
            "attempt_id": attempt["attempt_id"], "event_type": "module.alarm",
            "severity": "critical"}).status_code == 201

    def visible(caller: dict) -> set[str]:
        with psycopg.connect(runtime_url) as conn:
            conn.execute("SELECT set_config('veritas.user_id', %s, true),"
                         " set_config('veritas.role', %s, true)", (caller["id"], caller["role"]))
            return {str(r[0]) for r in conn.execute("SELECT student_id FROM monitoring_alerts")}

    assert visible(students[0]) == {students[0]["id"]}
    assert visible(teacher) == {s["id"] for s in students}
    assert visible(stranger) == set()


DRAFT_LIMIT = 256 * 1024


def test_drafts_are_bounded_in_size_and_number(api: Api) -> None:
    teacher, student = api.user("teacher"), api.user()
    essays = [{"id": f"q{n}", "type": "essay", "prompt": "Discuss.", "points": 5}
              for n in (1, 2, 3)]
    exam = api.exam(teacher, questions=essays, max_score=15, passing_score=5)
    attempt = api.start(student, exam)
    url = f"/api/student/attempts/{attempt['attempt_id']}/drafts"
    # Each answer is within its own limit; together they are over the draft's.
    too_big = api.post(url, headers=student["headers"],
                       json={"responses": {f"q{n}": "x" * 90_000 for n in (1, 2, 3)}})
    assert too_big.status_code == 413, too_big.text[:200]
    assert "256 KiB" in too_big.json()["detail"]
    just_fits = api.post(url, headers=student["headers"],
                         json={"responses": {f"q{n}": "y" * 87_000 for n in (1, 2, 3)}})
    assert just_fits.status_code == 201, just_fits.text[:200]
    for n in range(25):
        response = api.post(url, headers=student["headers"],
                            json={"responses": {"q1": f"draft {n}"}})
        assert response.status_code == 201
    view = api.get(f"/api/teacher/attempts/{attempt['attempt_id']}",
                   headers=teacher["headers"]).json()
    drafts = [d["responses"]["q1"] for d in view["drafts"]]
    assert drafts == [f"draft {n}" for n in range(5, 25)]  # the latest 20, oldest first
    # The latest draft is still what a submit without responses stores.
    submitted = api.post(f"/api/student/exams/{attempt['attempt_id']}/submit",
                         headers=student["headers"], json={})
    assert submitted.status_code == 200
    responses = api.get(f"/api/teacher/attempts/{attempt['attempt_id']}/responses",
                        headers=teacher["headers"])
    if responses.status_code == 200:
        answers = {q["id"]: q["response"] for q in responses.json()["questions"]}
        assert answers["q1"] == "draft 24"
