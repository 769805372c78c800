"""Monitoring ingestion correctness: acknowledgement, idempotency, ownership, errors, rules."""

from __future__ import annotations

import uuid

from tests.support import Api

from veritas.monitoring.ingest import COPY_MIN_ROWS


def _attempt(api: Api, **exam_overrides):
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher, **exam_overrides)
    return teacher, student, api.start(student, exam)


def test_single_event_is_stored_and_idempotent(api: Api, db) -> None:
    _, student, attempt = _attempt(api)
    event_id = str(uuid.uuid4())
    body = {"attempt_id": attempt["attempt_id"], "event_type": "eye_movement",
            "severity": "warning", "event_id": event_id,
            "data": {"x": 640, "y": 480, "confidence": 0.95, "gaze_point": "center"}}
    first = api.post("/api/monitor/events", json=body, headers=student["headers"])
    assert first.status_code == 201 and first.json()["status"] == "recorded"
    again = api.post("/api/monitor/events", json=body, headers=student["headers"])
    assert again.status_code in (200, 201) and again.json() == {
        "id": first.json()["id"], "status": "duplicate"}
    batch = api.post("/api/monitor/events/batch", headers=student["headers"],
                     json={"attempt_id": attempt["attempt_id"],
                           "events": [body, {**body, "event_id": str(uuid.uuid4())}]})
    assert batch.status_code == 201 and batch.json() == {"recorded": 1, "duplicates": 1}
    count = db.execute("SELECT count(*) FROM monitoring_events WHERE exam_attempt_id = %s",
                       (attempt["attempt_id"],)).fetchone()[0]
    assert count == 2


def test_seed_example_without_event_id_is_accepted(api: Api) -> None:
    _, student, attempt = _attempt(api)
    response = api.post("/api/monitor/events", headers=student["headers"], json={
        "attempt_id": attempt["attempt_id"], "event_type": "eye_movement", "severity": "warning",
        "data": {"x": 640, "y": 480, "confidence": 0.95, "gaze_point": "center"}})
    assert response.status_code == 201


def test_reused_event_id_from_another_student_stores_both(api: Api, db) -> None:
    teacher = api.user("teacher")
    exam = api.exam(teacher)
    a, b = api.user(), api.user()
    attempt_a, attempt_b = api.start(a, exam), api.start(b, exam)
    shared = str(uuid.uuid4())
    for student, attempt in ((a, attempt_a), (b, attempt_b)):
        response = api.post("/api/monitor/events", headers=student["headers"], json={
            "attempt_id": attempt["attempt_id"], "event_type": "paste", "event_id": shared,
            "data": {"chars": 5}})
        assert response.status_code == 201 and response.json()["status"] == "recorded"
    rows = db.execute("SELECT count(*) FROM monitoring_events WHERE event_id = %s",
                      (shared,)).fetchone()[0]
    assert rows == 2


def test_duplicate_across_a_partition_boundary(api: Api, db) -> None:
    """Events of an attempt started last month go to last month's partition, whenever they
    arrive, so a retry arriving this month is still recognized as the same event."""
    _, student, attempt = _attempt(api, duration_minutes=24 * 60)
    db.execute("UPDATE exam_attempts SET started_at = date_trunc('month', now()) - interval '1 hour',"
               " expires_at = now() + interval '1 day' WHERE id = %s", (attempt["attempt_id"],))
    body = {"attempt_id": attempt["attempt_id"], "event_type": "heartbeat",
            "event_id": str(uuid.uuid4()), "data": {}}
    first = api.post("/api/monitor/events", json=body, headers=student["headers"])
    second = api.post("/api/monitor/events", json=body, headers=student["headers"])
    assert first.json()["status"] == "recorded" and second.json()["status"] == "duplicate"
    rows = db.execute("SELECT tableoid::regclass::text, to_char(date_trunc('month', now())"
                      " - interval '1 hour', 'YYYY_MM') FROM monitoring_events"
                      " WHERE exam_attempt_id = %s", (attempt["attempt_id"],)).fetchall()
    assert len(rows) == 1
    partition, last_month = rows[0]
    assert partition == f"monitoring_events_{last_month}"


def test_large_flushes_deduplicate_like_small_ones(api: Api, db) -> None:
    """A flush of COPY_MIN_ROWS or more goes by COPY, which cannot skip duplicates: a retry
    of stored events, a copy inside the batch, a missing partition and an ended attempt must
    still come out as they do for small flushes."""
    _, student, attempt = _attempt(api, duration_minutes=24 * 60)
    aid, h = attempt["attempt_id"], student["headers"]
    n = COPY_MIN_ROWS + 16

    def events(count):
        return [{"event_type": "typing", "event_id": str(uuid.uuid4()), "data": {"keys": i}}
                for i in range(count)]

    def stored():
        return db.execute("SELECT count(*), count(DISTINCT event_id) FROM monitoring_events"
                          " WHERE exam_attempt_id = %s", (aid,)).fetchone()

    first = events(n)
    response = api.post("/api/monitor/events/batch", headers=h,
                        json={"attempt_id": aid, "events": first + [first[0]]})
    assert response.status_code == 201
    assert response.json() == {"recorded": n, "duplicates": 1}
    assert stored() == (n, n)
    # Half of it retried alongside new events: only the new ones are stored.
    fresh = events(n)
    response = api.post("/api/monitor/events/batch", headers=h,
                        json={"attempt_id": aid, "events": first[: n // 2] + fresh})
    assert response.json() == {"recorded": n, "duplicates": n // 2}
    assert stored() == (2 * n, 2 * n)
    # An attempt started so long ago that its month has no partition: made on the way.
    _, other, moved = _attempt(api, duration_minutes=24 * 60)
    db.execute("UPDATE exam_attempts SET started_at = now() - interval '400 days',"
               " expires_at = now() + interval '1 day' WHERE id = %s", (moved["attempt_id"],))
    response = api.post("/api/monitor/events/batch", headers=other["headers"],
                        json={"attempt_id": moved["attempt_id"], "events": events(n)})
    assert response.status_code == 201 and response.json()["recorded"] == n
    partition = db.execute("SELECT DISTINCT tableoid::regclass::text FROM monitoring_events"
                           " WHERE exam_attempt_id = %s", (moved["attempt_id"],)).fetchall()
    assert partition == [(db.execute("SELECT 'monitoring_events_' || to_char(now()"
                                     " - interval '400 days', 'YYYY_MM')").fetchone()[0],)]
    # Ended: nothing of a large batch is stored.
    api.submit(other, moved["attempt_id"])
    response = api.post("/api/monitor/events/batch", headers=other["headers"],
                        json={"attempt_id": moved["attempt_id"], "events": events(n)})
    assert response.status_code == 409
    assert db.execute("SELECT count(*) FROM monitoring_events WHERE exam_attempt_id = %s",
                      (moved["attempt_id"],)).fetchone()[0] == n


def test_an_end_the_cache_missed_is_caught_by_the_write(api: Api, db) -> None:
    """The statement that stores events re-reads each attempt under a lock, so an attempt
    ended behind the cache's back (no notification) still refuses events, by either write
    path, and stores none of them."""
    _, student, attempt = _attempt(api)
    aid, h = attempt["attempt_id"], student["headers"]
    first = api.post("/api/monitor/events", headers=h, json={
        "attempt_id": aid, "event_type": "heartbeat", "data": {}})
    assert first.status_code == 201  # the attempt is now cached as in progress
    db.execute("UPDATE exam_attempts SET status = 'abandoned' WHERE id = %s", (aid,))
    for count in (1, COPY_MIN_ROWS + 1):
        response = api.post("/api/monitor/events/batch", headers=h, json={
            "attempt_id": aid, "events": [{"event_type": "typing", "data": {"keys": i}}
                                          for i in range(count)]})
        assert response.status_code == 409, count
    stored = db.execute("SELECT count(*) FROM monitoring_events WHERE exam_attempt_id = %s",
                        (aid,)).fetchone()[0]
    assert stored == 1


def test_ownership_and_state_errors(api: Api, admin: dict) -> None:
    teacher, student, attempt = _attempt(api)
    other = api.user()
    event = {"attempt_id": attempt["attempt_id"], "event_type": "heartbeat", "data": {}}
    assert api.post("/api/monitor/events", json=event).status_code == 401
    # Who is asking is settled before the body: a stranger learns nothing from validation.
    assert api.post("/api/monitor/events/batch", content=b"{").status_code == 401
    assert api.post("/api/monitor/events/batch", content=b"{",
                    headers=teacher["headers"]).status_code == 403
    assert api.post("/api/monitor/events", json=event,
                    headers=other["headers"]).status_code in (403, 404)
    assert api.post("/api/monitor/events", json=event,
                    headers=teacher["headers"]).status_code == 403
    assert api.post("/api/monitor/events", json=event,
                    headers=admin["headers"]).status_code == 201
    unknown = event | {"attempt_id": str(uuid.uuid4())}
    assert api.post("/api/monitor/events", json=unknown,
                    headers=student["headers"]).status_code == 404
    api.submit(student, attempt["attempt_id"])
    ended = api.post("/api/monitor/events", json=event, headers=student["headers"])
    assert ended.status_code == 409
    batch = api.post("/api/monitor/events/batch", headers=student["headers"],
                     json={"attempt_id": attempt["attempt_id"], "events": [event]})
    assert batch.status_code == 409


def test_invalid_events_are_4xx_and_nothing_half_written(api: Api, db) -> None:
    _, student, attempt = _attempt(api)
    aid = attempt["attempt_id"]
    h = student["headers"]
    base = {"attempt_id": aid, "event_type": "heartbeat", "data": {}}
    assert api.post("/api/monitor/events", json=base | {"severity": "apocalyptic"},
                    headers=h).status_code == 422
    assert api.post("/api/monitor/events", json=base | {"data": [1, 2]},
                    headers=h).status_code == 422
    for bad_type in ("bad type!", "heartbeat\n", "x" * 65, ""):
        response = api.post("/api/monitor/events", json=base | {"event_type": bad_type},
                            headers=h)
        assert response.status_code == 422, bad_type
        assert "event_type" in response.json()["detail"]
    assert api.post("/api/monitor/events", json=base | {"data": {"blob": "x" * 20_000}},
                    headers=h).status_code in (413, 422)
    too_many = {"attempt_id": aid, "events": [{"event_type": "heartbeat"}] * 1001}
    assert api.post("/api/monitor/events/batch", json=too_many, headers=h).status_code == 422
    one_big = {"attempt_id": aid, "events": [{"event_type": "heartbeat", "data": {}}] * 3
               + [{"event_type": "paste", "data": {"blob": "x" * 20_000}}]}
    assert api.post("/api/monitor/events/batch", json=one_big,
                    headers=h).status_code in (413, 422)
    assert api.post("/api/monitor/events", content=b"{", headers=h | {
        "content-type": "application/json"}).status_code == 422
    stored = db.execute("SELECT count(*) FROM monitoring_events WHERE exam_attempt_id = %s",
                        (aid,)).fetchone()[0]
    assert stored == 0


def test_undecodable_or_too_deep_bodies_are_422(api: Api, db) -> None:
    teacher, student, attempt = _attempt(api)
    aid, h = attempt["attempt_id"], student["headers"] | {"content-type": "application/json"}
    not_utf8 = b'{"attempt_id":"' + aid.encode() + b'","event_type":"x","data":{"a":"\xff"}}'
    deep_data: object = 1
    for _ in range(40):
        deep_data = [deep_data]
    nested = "[" * 3000 + "1" + "]" * 3000
    very_deep = f'{{"attempt_id":"{aid}","event_type":"x","data":{{"x":{nested}}}}}'
    for path in ("/api/monitor/events", "/api/monitor/events/batch"):
        assert api.post(path, content=not_utf8, headers=h).status_code == 422
        assert api.post(path, content=very_deep.encode(), headers=h).status_code == 422
    for body, path in (
            ({"attempt_id": aid, "event_type": "x", "data": {"x": deep_data}}, "/api/monitor/events"),
            ({"attempt_id": aid, "events": [{"event_type": "x", "data": {"x": deep_data}}]},
             "/api/monitor/events/batch")):
        response = api.post(path, json=body, headers=student["headers"])
        assert response.status_code == 422 and "nest" in response.json()["detail"]
    # A payload that merely has many brackets side by side is not deep, and is stored.
    wide = {"attempt_id": aid, "event_type": "x", "data": {f"k{i}": [i] for i in range(50)}}
    assert api.post("/api/monitor/events", json=wide, headers=student["headers"]).status_code == 201
    events = api.get(f"/api/teacher/attempts/{aid}/monitoring", headers=teacher["headers"])
    assert events.status_code == 200 and len(events.json()["items"]) == 1
    too_deep_filter = api.get(f"/api/teacher/attempts/{aid}/monitoring",
                              params={"payload": '{"a":' + "[" * 900 + "]" * 900 + "}"},
                              headers=teacher["headers"])
    assert too_deep_filter.status_code == 422


def test_huge_numbers_in_stored_exam_metadata_do_not_break_ingestion(api: Api, db) -> None:
    teacher, student, attempt = _attempt(api)
    # Written past the API (as by an older version or by hand): ingestion still works, with
    # the default thresholds for what it cannot use.
    db.execute("UPDATE exams SET metadata = jsonb_build_object('x', (10::numeric ^ 400),"
               " 'anomaly_rules', jsonb_build_object('paste_chars', (10::numeric ^ 400)))"
               " WHERE id = %s", (attempt["exam_id"],))
    response = api.post("/api/monitor/events", headers=student["headers"], json={
        "attempt_id": attempt["attempt_id"], "event_type": "paste", "data": {"chars": 500}})
    assert response.status_code == 201


def test_endpoints_are_documented_and_take_only_post(api: Api) -> None:
    document = api.get("/openapi.json").json()
    paths, schemes = document["paths"], document["components"]["securitySchemes"]
    for path in ("/api/monitor/events", "/api/monitor/events/batch"):
        body = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert "attempt_id" in body["required"]
        for requirement in paths[path]["post"]["security"]:  # /docs sends the bearer token
            assert set(requirement) <= set(schemes)
        response = api.get(path)
        assert response.status_code == 405 and response.headers["allow"] == "POST"
        assert response.json() == {"detail": "Method Not Allowed"}


def test_oversized_body_is_413(api: Api) -> None:
    _, student, attempt = _attempt(api)
    huge = b'{"attempt_id": "x", "events": [' + b" " * (9 * 1024 * 1024) + b"]}"
    response = api.post("/api/monitor/events/batch", content=huge,
                        headers=student["headers"] | {"content-type": "application/json"})
    assert response.status_code == 413
    # Chunked, so no Content-Length warns ahead: the limit still answers 413, on the
    # monitoring path and on the FastAPI routes (whose body parser would say 400).
    for path in ("/api/monitor/events/batch", "/api/auth/register"):
        chunks = (b" " * (1024 * 1024) for _ in range(9))
        chunked = api.post(path, content=chunks,
                           headers=student["headers"] | {"content-type": "application/json"})
        assert chunked.status_code == 413, path
        assert chunked.json()["detail"].startswith("request body over")


def test_anomaly_rules_and_per_exam_thresholds(api: Api, db) -> None:
    _, student, attempt = _attempt(api, metadata={"anomaly_rules": {"paste_chars": 50}})
    events = [
        {"event_type": "paste", "data": {"chars": 60}},
        {"event_type": "paste", "data": {"chars": 10}},
        {"event_type": "focus_lost", "data": {"duration_ms": 1500}},
        {"event_type": "focus_lost", "data": {"duration_ms": 45_000}},
        {"event_type": "multiple_faces", "data": {"count": 2}},
        {"event_type": "custom.module_alarm", "severity": "critical", "data": {}},
    ]
    response = api.post("/api/monitor/events/batch", headers=student["headers"],
                        json={"attempt_id": attempt["attempt_id"], "events": events})
    assert response.json() == {"recorded": 6, "duplicates": 0}
    rows = db.execute("SELECT event_type, data_payload, is_anomaly, anomaly_score, description"
                      " FROM monitoring_events WHERE exam_attempt_id = %s",
                      (attempt["attempt_id"],)).fetchall()
    flagged = {(r[0], str(r[1])) for r in rows if r[2]}
    assert ("paste", "{'chars': 60}") in flagged and ("paste", "{'chars': 10}") not in flagged
    assert ("focus_lost", "{'duration_ms': 45000}") in flagged
    assert ("focus_lost", "{'duration_ms': 1500}") not in flagged
    assert ("multiple_faces", "{'count': 2}") in flagged
    assert ("custom.module_alarm", "{}") in flagged
    assert all(0 < r[3] <= 1 and r[4] for r in rows if r[2])


def test_severity_is_the_servers_judgement(api: Api, db) -> None:
    """An event the rules flag is stored as at least a warning (critical from twice the
    threshold) whatever the client sent, and its folded alert ranks so; a client may raise a
    severity, never lower what the rules found."""
    _, student, attempt = _attempt(api, metadata={"anomaly_rules": {"paste_chars": 100}})
    events = [
        {"event_type": "paste", "severity": "normal", "data": {"chars": 150}},
        {"event_type": "focus_lost", "severity": "normal", "data": {"duration_ms": 25_000}},
        {"event_type": "multiple_faces", "data": {"count": 2}},
        {"event_type": "heartbeat", "severity": "warning", "data": {}},
        {"event_type": "paste", "severity": "normal", "data": {"chars": 20}},
    ]
    for event in events:  # one by one: the batch and single paths are the same code below
        response = api.post("/api/monitor/events", headers=student["headers"],
                            json={"attempt_id": attempt["attempt_id"], **event})
        assert response.status_code == 201, response.text
    stored = {(r[0], r[1]): r[2] for r in db.execute(
        "SELECT event_type, (data_payload->>'chars')::int, severity::text FROM monitoring_events"
        " WHERE exam_attempt_id = %s", (attempt["attempt_id"],)).fetchall()}
    assert stored[("paste", 150)] == "warning"
    assert stored[("focus_lost", None)] == "critical"  # 25 s against 10 s: over twice
    assert stored[("multiple_faces", None)] == "warning"  # at its threshold
    assert stored[("heartbeat", None)] == "warning"  # the client raised it; kept
    assert stored[("paste", 20)] == "normal"
    alerts = dict(db.execute("SELECT event_type, severity::text FROM monitoring_alerts"
                             " WHERE exam_attempt_id = %s", (attempt["attempt_id"],)).fetchall())
    assert alerts == {"paste": "warning", "focus_lost": "critical", "multiple_faces": "warning"}


def test_unstorable_values_are_422_not_5xx(api: Api, db) -> None:
    _, student, attempt = _attempt(api)
    h = student["headers"]
    base = {"attempt_id": attempt["attempt_id"], "event_type": "typing"}
    assert api.post("/api/monitor/events", headers=h,
                    json=base | {"data": {"n": 10**30}}).status_code == 422
    assert api.post("/api/monitor/events", headers=h,
                    json=base | {"data": {"s": "a\u0000b"}}).status_code == 422
    assert api.post("/api/monitor/events", headers=h,
                    json=base | {"description": "a\u0000b"}).status_code == 422
    draft = api.post(f"/api/student/attempts/{attempt['attempt_id']}/drafts", headers=h,
                     json={"responses": {"q3": "Par\u0000is"}})
    assert draft.status_code == 422
    # Payloads are stored as sent unless something in them needs a closer look; the
    # closer look refuses the same things as ever.
    raw_h = h | {"content-type": "application/json"}
    prefix = f'{{"attempt_id":"{attempt["attempt_id"]}","event_type":"typing","data":'
    for data, status in (('{"f": 1e400}', 422), ('{"n": -123456789012345678901}', 422),
                         ('{"s": "\\ud800"}', 422), ('{"s": "a\\u0000b"}', 422),
                         ("null", 422), ('"text"', 422), ("[1]", 422),
                         ('{"s": "caf\\u00e9", "big": 12345678901234567, "e": 1.5e10}', 201),
                         ('{ "spaced" :  [ 1 , 2 ] }', 201)):
        response = api.post("/api/monitor/events", headers=raw_h,
                            content=(prefix + data + "}").encode())
        assert response.status_code == status, (data, response.text)
    stored = {row[0] for row in db.execute(
        "SELECT data_payload::text FROM monitoring_events WHERE exam_attempt_id = %s",
        (attempt["attempt_id"],))}
    assert stored == {'{"e": 15000000000.0, "s": "café", "big": 12345678901234567}',
                      '{"spaced": [1, 2]}'}
    # The good events around a bad one are unaffected.
    ok = api.post("/api/monitor/events", headers=h, json=base | {"data": {"keys": 3}})
    assert ok.status_code == 201
