"""Property-based fuzzing of the event row builder, through both write paths, for real.

Each generated event, with every field at or past its extremes, is posted alone (a small
flush: the INSERT statement) and inside a batch of COPY_MIN_ROWS more events (the COPY
path), to the real server and PostgreSQL. Whatever the event holds: never a 5xx, both forms
agree, a refusal stores nothing of its request, and what is accepted is stored as sent.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support import Api

from veritas.monitoring.ingest import COPY_MIN_ROWS

# Surrogates included: JSON can spell them (\ud800) though no UTF-8 text holds them.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
EDGE_INTS = st.sampled_from([0, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64,
                             -(2**63) - 1, 10**30])
EDGE_FLOATS = st.sampled_from([5e-324, -5e-324, 1.7976931348623157e308, -0.0, 1e-310, 0.1])
SCALARS = (st.none() | st.booleans() | st.integers() | EDGE_INTS | EDGE_FLOATS
           | st.floats(allow_nan=False, allow_infinity=False) | ANY_TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(ANY_TEXT, inner, max_size=4), max_leaves=12)
# What the anomaly rules measure, at any magnitude.
RULE_DATA = st.fixed_dictionaries({}, optional={
    "chars": st.integers() | EDGE_INTS | EDGE_FLOATS, "duration_ms": EDGE_INTS | EDGE_FLOATS,
    "count": st.integers(-5, 2**64)})
DATA = (st.dictionaries(ANY_TEXT, JSON, max_size=6) | RULE_DATA
        | st.builds(lambda n: {"blob": "x" * n}, st.integers(16 * 1024 - 20, 16 * 1024 + 20))
        | st.builds(lambda n: {"deep": json.loads("[" * n + "]" * n)}, st.integers(30, 40)))

EDGE_TIMES = st.sampled_from([
    datetime.min, datetime.max, datetime(1970, 1, 1), datetime(1969, 12, 31, 23, 59, 59, 999999),
    datetime(9999, 12, 31, 23, 59, 59), datetime(9999, 12, 31, 23, 59, 59, 999999),
    datetime(1, 1, 1, 13, 59), datetime(9999, 12, 31, 10, 1)])
OFFSETS = st.none() | st.just(UTC) | st.integers(-24 * 60 + 1, 24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes)))
TIMES = st.builds(lambda moment, zone: moment.replace(tzinfo=zone),
                  EDGE_TIMES | st.datetimes(), OFFSETS)
STANDARD_TYPES = st.sampled_from(["paste", "focus_lost", "visibility_hidden", "gaze_off",
                                  "face_missing", "multiple_faces", "heartbeat", "typing"])

EVENTS = st.fixed_dictionaries(
    {"event_type": STANDARD_TYPES | st.from_regex(r"[A-Za-z0-9_.]{1,64}", fullmatch=True)
     | st.sampled_from(["x" * 65, "bad type", "é"])},
    optional={
        "severity": st.sampled_from(["normal", "warning", "critical"]),
        "data": DATA,
        "event_id": st.uuids().map(str) | ANY_TEXT,
        "client_timestamp": TIMES.map(datetime.isoformat) | ANY_TEXT,
        "description": ANY_TEXT | st.text(min_size=1995, max_size=2005),
    })


def _instant(stamp: str) -> datetime | None:
    """The UTC instant Veritas must store for a timestamp it accepts; None if out of range."""
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        return None
    if not 1970 <= moment.year <= 9999 or moment == datetime.max.replace(tzinfo=UTC):
        return None
    return moment


def _parses(stamp: Any) -> bool:
    try:
        datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return False
    return True


@pytest.fixture(scope="module")
def fuzz_attempt(api: Api) -> tuple[dict, dict]:
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher, duration_minutes=24 * 60)
    return student, api.start(student, exam)


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(event=EVENTS)
def test_any_event_is_stored_or_refused_alone_by_both_paths(
    api: Api, database_url: str, fuzz_attempt: tuple[dict, dict], event: dict[str, Any],
) -> None:
    student, attempt = fuzz_attempt
    aid, h = attempt["attempt_id"], student["headers"] | {"content-type": "application/json"}
    # ensure_ascii: lone surrogates travel as \ud800 escapes, as a hostile client sends them.
    single = api.post("/api/monitor/events", headers=h,
                      content=json.dumps({"attempt_id": aid, **event}).encode())
    assert single.status_code in (200, 201, 413, 422), (event, single.text)

    # The same event among COPY_MIN_ROWS honest ones (a fresh id, so nothing is a retry and
    # the flush goes by COPY).
    copied = dict(event)
    if "event_id" not in event or _is_uuid(event["event_id"]):
        copied["event_id"] = str(uuid.uuid4())
    company = [{"event_type": "typing", "event_id": str(uuid.uuid4()), "data": {"keys": i}}
               for i in range(COPY_MIN_ROWS)]
    batch = api.post("/api/monitor/events/batch", headers=h, content=json.dumps(
        {"attempt_id": aid, "events": [*company[:7], copied, *company[7:]]}).encode())
    assert batch.status_code in (201, 413, 422), (event, batch.text)
    assert (single.status_code < 300) == (batch.status_code < 300), (event, single, batch)

    stamp = event.get("client_timestamp")
    if _parses(stamp) and _instant(stamp) is None:
        assert single.status_code == 422, (event, single.text)
    with psycopg.connect(database_url) as conn:
        ids = [uuid.UUID(e["event_id"]) for e in company]
        stored = conn.execute("SELECT count(*) FROM monitoring_events WHERE"
                              " exam_attempt_id = %s AND event_id = ANY(%s)",
                              (aid, ids)).fetchone()[0]
        assert stored == (len(company) if batch.status_code == 201 else 0)
        if batch.status_code == 201:
            row = conn.execute(
                "SELECT event_type, client_timestamp, data_payload FROM monitoring_events"
                " WHERE exam_attempt_id = %s AND event_id = %s",
                (aid, uuid.UUID(copied["event_id"]))).fetchone()
            assert row[0] == event["event_type"]
            assert row[1] == (_instant(stamp) if stamp is not None else None)
            assert _numbers_as_floats(row[2]) == _numbers_as_floats(event.get("data", {}))


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def _numbers_as_floats(value: Any) -> Any:
    """JSON compared as jsonb keeps it: numbers by value (1e16 comes back as 10000000000000000)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [_numbers_as_floats(item) for item in value]
    return {key: _numbers_as_floats(item) for key, item in value.items()}


def test_the_writer_still_serves_everyone_after_the_fuzz(
    api: Api, fuzz_attempt: tuple[dict, dict],
) -> None:
    student, attempt = fuzz_attempt
    response = api.post("/api/monitor/events/batch", headers=student["headers"], json={
        "attempt_id": attempt["attempt_id"],
        "events": [{"event_type": "heartbeat"} for _ in range(COPY_MIN_ROWS)]})
    assert response.status_code == 201
