"""One request's bad data is that request's 4xx alone: it never fails another request.

Every process writes all its students' queued events in one shared statement, so a value
that cannot be stored must be refused before it joins a flush, and anything that still
fails a flush must be traced to its request while the others are stored as usual.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import httpx
from tests.support import Api

from veritas.monitoring.ingest import COPY_MIN_ROWS

# Instants that are valid ISO-8601 but not between 1970 and 9999 once converted to UTC.
OUT_OF_RANGE = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1900-06-01T12:00:00+02:00",
                # The last microsecond of 9999 would be stored as 'infinity', no instant.
                "9999-12-31T23:59:59.999999Z")


def _class(api: Api, students: int) -> tuple[list[dict], list[dict]]:
    teacher = api.user("teacher")
    exam = api.exam(teacher)
    people = [api.user() for _ in range(students)]
    return people, [api.start(p, exam) for p in people]


def _typing(count: int, **extra) -> list[dict]:
    return [{"event_type": "typing", "event_id": str(uuid.uuid4()), "data": {"keys": i},
             **extra} for i in range(count)]


def test_out_of_range_timestamps_are_422_on_both_write_paths(api: Api, db) -> None:
    (student,), (attempt,) = _class(api, 1)
    aid, h = attempt["attempt_id"], student["headers"]
    for stamp in OUT_OF_RANGE:
        single = api.post("/api/monitor/events", headers=h, json={
            "attempt_id": aid, "event_type": "heartbeat", "client_timestamp": stamp})
        assert single.status_code == 422, (stamp, single.text)
        assert "client_timestamp" in single.json()["detail"]
        # A batch large enough to be written by COPY, one event in it poisoned.
        events = _typing(COPY_MIN_ROWS + 6)
        events[7]["client_timestamp"] = stamp
        batch = api.post("/api/monitor/events/batch", headers=h,
                         json={"attempt_id": aid, "events": events})
        assert batch.status_code == 422, (stamp, batch.text)
    # The edges of the range are real instants, stored as sent.
    for stamp, stored in (("1970-01-01T00:00:00Z", "1970-01-01 00:00:00+00"),
                          ("1970-01-01T05:00:00+05:00", "1970-01-01 00:00:00+00"),
                          ("9999-12-31T23:59:59.999998Z", "9999-12-31 23:59:59.999998+00"),
                          ("2026-12-02T10:00:00", "2026-12-02 10:00:00+00")):
        event_id = str(uuid.uuid4())
        response = api.post("/api/monitor/events", headers=h, json={
            "attempt_id": aid, "event_type": "heartbeat", "event_id": event_id,
            "client_timestamp": stamp})
        assert response.status_code == 201, (stamp, response.text)
        got = db.execute("SELECT (client_timestamp AT TIME ZONE 'UTC')::text || '+00' FROM"
                         " monitoring_events WHERE event_id = %s", (event_id,)).fetchone()[0]
        assert got == stored
    count = db.execute("SELECT count(*) FROM monitoring_events WHERE exam_attempt_id = %s",
                       (aid,)).fetchone()[0]
    assert count == 4


def test_a_poisoned_request_never_fails_honest_ones(api: Api, db) -> None:
    """An attacker posts events whose timestamps overflow PostgreSQL's encoding, by both
    forms, while honest students post alongside: their requests share flushes of COPY size.
    The attacker gets 422 every time; every honest request gets 201 and is stored."""
    people, attempts = _class(api, 4)
    attacker, attack_attempt = people[0], attempts[0]
    honest = list(zip(people[1:], attempts[1:], strict=True))
    statuses: dict[str, Counter[int]] = {"honest": Counter(), "attacker": Counter()}
    sent: set[str] = set()
    lock = threading.Lock()
    stop = time.monotonic() + 4

    def honest_student(student: dict, attempt: dict) -> None:
        with httpx.Client(base_url=api.base_url, timeout=30) as client:
            while time.monotonic() < stop:
                events = _typing(30)
                response = client.post("/api/monitor/events/batch", headers=student["headers"],
                                       json={"attempt_id": attempt["attempt_id"],
                                             "events": events})
                with lock:
                    statuses["honest"][response.status_code] += 1
                    if response.status_code == 201:
                        sent.update(e["event_id"] for e in events)

    def attack(turn: int) -> None:
        with httpx.Client(base_url=api.base_url, timeout=30) as client:
            while time.monotonic() < stop:
                turn += 1
                stamp = OUT_OF_RANGE[turn % 2]
                if turn % 3:
                    events = _typing(COPY_MIN_ROWS + 1)
                    events[-1]["client_timestamp"] = stamp
                    response = client.post("/api/monitor/events/batch",
                                           headers=attacker["headers"], json={
                                               "attempt_id": attack_attempt["attempt_id"],
                                               "events": events})
                else:
                    response = client.post("/api/monitor/events", headers=attacker["headers"],
                                           json={"attempt_id": attack_attempt["attempt_id"],
                                                 "event_type": "heartbeat",
                                                 "client_timestamp": stamp})
                with lock:
                    statuses["attacker"][response.status_code] += 1

    threads = [threading.Thread(target=honest_student, args=pair) for pair in honest]
    threads += [threading.Thread(target=attack, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses["attacker"]) == {422}, statuses
    assert set(statuses["honest"]) == {201}, statuses
    stored = {row[0] for row in db.execute(
        "SELECT event_id::text FROM monitoring_events WHERE exam_attempt_id = ANY(%s)",
        ([uuid.UUID(a["attempt_id"]) for _, a in honest],))}
    assert stored == sent
    assert db.execute("SELECT count(*) FROM monitoring_events WHERE exam_attempt_id = %s",
                      (attack_attempt["attempt_id"],)).fetchone()[0] == 0


def test_a_flush_failing_for_one_request_is_isolated(api: Api, db) -> None:
    """Whatever makes a flush fail, short of the database being unreachable, is traced to
    the request that caused it: here a trigger refuses one description, as PostgreSQL would
    refuse a value no check in Veritas foresaw. Only that request is refused (422); the
    honest requests of the same flushes, by INSERT and by COPY, are stored."""
    people, attempts = _class(api, 3)
    marker = f"poison-{uuid.uuid4().hex}"
    db.execute(f"""
        CREATE FUNCTION test_refuse_marker() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.description = '{marker}' THEN
                RAISE EXCEPTION 'refused by test';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER test_refuse_marker BEFORE INSERT ON monitoring_events
            FOR EACH ROW EXECUTE FUNCTION test_refuse_marker();
    """)
    try:
        results: dict[str, list[int]] = {"honest": [], "poisoned": []}

        def post(index: int, size: int, poisoned: bool) -> None:
            events = _typing(size)
            if poisoned:
                events[-1]["description"] = marker
            response = api.post("/api/monitor/events/batch", headers=people[index]["headers"],
                                json={"attempt_id": attempts[index]["attempt_id"],
                                      "events": events})
            results["poisoned" if poisoned else "honest"].append(response.status_code)

        for size in (3, COPY_MIN_ROWS):  # flushes by INSERT, then by COPY
            for _ in range(5):
                threads = [threading.Thread(target=post, args=(0, size, True)),
                           threading.Thread(target=post, args=(1, size, False)),
                           threading.Thread(target=post, args=(2, size, False))]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
        assert set(results["poisoned"]) == {422}, results
        assert set(results["honest"]) == {201}, results
    finally:
        db.execute("DROP TRIGGER test_refuse_marker ON monitoring_events;"
                   " DROP FUNCTION test_refuse_marker()")
    # The writer kept its footing: the next request is stored at once.
    ok = api.post("/api/monitor/events", headers=people[0]["headers"], json={
        "attempt_id": attempts[0]["attempt_id"], "event_type": "heartbeat"})
    assert ok.status_code == 201
