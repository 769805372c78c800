"""Schemathesis fuzzes every operation in /openapi.json of a real server and holds each answer
to the document: never a 5xx, and only documented statuses, media types, headers and bodies.

A server and database of its own: the fuzzer registers users, fails logins and sends junk,
which must not touch the rest of the suite. Bounded in examples, not in time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Api, ServerProcess, drop_database, make_database

MAX_EXAMPLES = 10
# A fixed amount of work, not a time budget: on a busy machine it takes longer, and still
# covers every operation: about 2,000 requests and 25-45 s a run on two busy cores. The
# timeout only stops a hang.
TIMEOUT_SECONDS = 300
SEED = 20261202
# Logout would end the fuzzer's own token, and the alert stream never ends by design.
EXCLUDED_PATHS = ("/api/auth/logout", "/api/teacher/alerts/stream")
# Every check schemathesis has but three. Two judge requests by their JSON Schema alone:
# Veritas refuses schema-valid input on rules no schema states (passing_score above max_score,
# a cursor or payload filter that does not decode, another attempt's alert id), and pydantic
# takes a number as a date-time. Both still get their documented 422 or 2xx, checked here.
# The third, ensure_resource_availability, follows a created resource to another operation
# with a generated body and takes any 404 there for the resource missing, when it is the
# body's own reference (a made-up teacher_id to grant, attempt_id to send events to): which
# pairs it tries depends on the operations in the document, so it fails as routes are added.
EXCLUDED_CHECKS = ("positive_data_acceptance", "negative_data_rejection",
                   "ensure_resource_availability")
CONFORMANCE = {"not_a_server_error", "status_code_conformance", "content_type_conformance",
               "response_headers_conformance", "response_schema_conformance",
               "unsupported_method", "allow_header_conformance"}


@pytest.fixture(scope="module")
def fuzz_server(
    database_url: str, server_env: dict[str, str]
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    from veritas.db.migrate import upgrade
    from veritas.db.roles import ensure_runtime_login

    url = make_database(database_url, f"veritas_fuzz_{uuid.uuid4().hex[:8]}")
    try:
        upgrade(url)
        # As deployed: the server logs in as the runtime role, under row-level security.
        env = server_env | {"DATABASE_URL": ensure_runtime_login(url),
                            "MIGRATION_DATABASE_URL": url, "EMBEDDED_WORKER": "false"}
        with ServerProcess(env) as server:
            yield server, env
    finally:
        drop_database(database_url, url)


def _fuzz(base_url: str, token: str, ids: dict[str, str], tmp: Path) -> tuple[list[dict], str]:
    """The finished scenarios of one bounded run, from schemathesis' NDJSON report, and the
    end of what it printed.

    Path ids are real ones (`ids`), so operations get past their 404 to the code behind."""
    config, report = tmp / "schemathesis.toml", tmp / "events.ndjson"
    config.write_text("[parameters]\n" + "".join(f'"path.{name}" = "{value}"\n'
                                                  for name, value in ids.items()))
    command = [str(Path(sys.executable).with_name("schemathesis")),
               "--config-file", str(config), "run", f"{base_url}/openapi.json",
               "--checks", "all", "--exclude-checks", ",".join(EXCLUDED_CHECKS),
               "--max-examples", str(MAX_EXAMPLES),
               "--seed", str(SEED), "--workers", "2", "--request-timeout", "10",
               "--header", f"Authorization: Bearer {token}",
               "--report", "ndjson", "--report-ndjson-path", str(report)]
    for path in EXCLUDED_PATHS:
        command += ["--exclude-path", path]
    # Its exit status also counts schemathesis' own generation hiccups; the report is the truth.
    # In the temporary folder: schemathesis keeps a cache of crashes in its working directory.
    run = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
                         cwd=tmp)
    assert report.exists(), run.stdout[-5_000:] + run.stderr
    events = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    assert any("EngineFinished" in e for e in events), run.stdout[-5_000:] + run.stderr
    return [e["ScenarioFinished"] for e in events if "ScenarioFinished" in e], run.stdout[-3_000:]


def _world(api: Api, env: dict[str, str], who: str) -> tuple[dict, dict[str, str]]:
    """The caller and the ids its run uses: an exam, an attempt with events, a class, their
    people."""
    admin = api.admin or api.create_admin_cli(env)
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher)
    attempt = api.start(student, exam)["attempt_id"]
    api.post("/api/monitor/events/batch", headers=student["headers"], json={
        "attempt_id": attempt, "events": [{"event_type": "paste", "data": {"chars": 900}},
                                          {"event_type": "heartbeat", "data": {}}]})
    klass = api.klass(teacher)
    api.enrol(teacher, klass, student)
    ids = {"exam_id": exam["id"], "attempt_id": attempt, "class_id": klass["id"]}
    if who == "admin":
        return admin, ids | {"student_id": student["id"], "teacher_id": teacher["id"],
                             "user_id": student["id"]}
    return student, ids


@pytest.mark.parametrize("who", ["admin", "student"])
def test_every_answer_is_as_documented(fuzz_server, who: str, tmp_path: Path) -> None:
    server, env = fuzz_server
    with Api(server.base_url) as api:
        caller, ids = _world(api, env, who)
    scenarios, printed = _fuzz(server.base_url, caller["token"], ids, tmp_path)
    answered = [(s["recorder"]["label"], i) for s in scenarios
                for i in (s["recorder"].get("interactions") or {}).values() if i.get("response")]
    checks: list[dict[str, Any]] = [c for s in scenarios
                                    for found in (s["recorder"].get("checks") or {}).values()
                                    for c in found]
    # Nearly every operation must have answered, or the run proves little.
    operations = {f"{method.upper()} {path}"
                  for path, item in httpx.get(f"{server.base_url}/openapi.json").json()["paths"]
                  .items() if path not in EXCLUDED_PATHS for method in item}
    reached = {label for label, _ in answered}
    assert len(reached & operations) >= 0.9 * len(operations), (
        sorted(operations - reached), printed)
    assert CONFORMANCE <= {c["name"] for c in checks}, "a conformance check did not run"
    errors = [(i["request"]["method"], i["request"]["uri"], i["request"].get("body"),
               i["response"]["status_code"]) for _, i in answered
              if i["response"]["status_code"] >= 500]
    assert not errors, errors[:10]
    failed = [(c["name"], (c.get("failure_info") or {}).get("failure") or {})
              for c in checks if c["status"] in ("failure", "error")]
    failures = sorted({(name, why.get("operation", ""), why.get("message", "")[:300])
                       for name, why in failed})
    assert not failures, (failures[:10], printed)
