"""Schemathesis fuzzes every operation in /openapi.json of a real server: never a 5xx.

A server and database of its own: the fuzzer registers users, fails logins and sends junk,
which must not touch the rest of the suite. Response conformance (undocumented statuses and
the like) is not checked here, only server errors. Bounded in examples, not in time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import Api, ServerProcess, drop_database, make_database

MAX_EXAMPLES = 10
# A fixed amount of work, not a time budget: on a busy machine it takes longer, and still
# covers every operation: about 1,900 requests and 35 s a run on two busy cores. The timeout
# only stops a hang.
TIMEOUT_SECONDS = 300
SEED = 20261202
# Logout would end the fuzzer's own token, and the alert stream never ends by design.
EXCLUDED_PATHS = ("/api/auth/logout", "/api/teacher/alerts/stream")


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


def _fuzz(base_url: str, token: str, ids: dict[str, str],
          tmp: Path) -> tuple[list[tuple[str, dict]], str]:
    """Every request and response of one bounded run, from schemathesis' NDJSON report, and
    the end of what it printed.

    Path ids are real ones (`ids`), so operations get past their 404 to the code behind."""
    config, report = tmp / "schemathesis.toml", tmp / "events.ndjson"
    config.write_text("[parameters]\n" + "".join(f'"path.{name}" = "{value}"\n'
                                                  for name, value in ids.items()))
    command = [str(Path(sys.executable).with_name("schemathesis")),
               "--config-file", str(config), "run", f"{base_url}/openapi.json",
               "--checks", "not_a_server_error",
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
    return [(e["ScenarioFinished"]["recorder"]["label"], interaction)
            for e in events if "ScenarioFinished" in e
            for interaction in (e["ScenarioFinished"]["recorder"].get("interactions") or {})
            .values()], run.stdout[-3_000:]


def _world(api: Api, env: dict[str, str], who: str) -> tuple[dict, dict[str, str]]:
    """The caller and the ids its run uses: an exam, an attempt with events, their people."""
    admin = api.admin or api.create_admin_cli(env)
    teacher, student = api.user("teacher"), api.user()
    exam = api.exam(teacher)
    attempt = api.start(student, exam)["attempt_id"]
    api.post("/api/monitor/events/batch", headers=student["headers"], json={
        "attempt_id": attempt, "events": [{"event_type": "paste", "data": {"chars": 900}},
                                          {"event_type": "heartbeat", "data": {}}]})
    ids = {"exam_id": exam["id"], "attempt_id": attempt}
    if who == "admin":
        return admin, ids | {"student_id": student["id"], "teacher_id": teacher["id"],
                             "user_id": student["id"]}
    return student, ids


@pytest.mark.parametrize("who", ["admin", "student"])
def test_fuzzing_finds_no_server_error(fuzz_server, who: str, tmp_path: Path) -> None:
    server, env = fuzz_server
    with Api(server.base_url) as api:
        caller, ids = _world(api, env, who)
    interactions, printed = _fuzz(server.base_url, caller["token"], ids, tmp_path)
    answered = [(label, i) for label, i in interactions if i.get("response")]
    # Nearly every operation must have answered, or the run proves little.
    operations = {f"{method.upper()} {path}"
                  for path, item in httpx.get(f"{server.base_url}/openapi.json").json()["paths"]
                  .items() if path not in EXCLUDED_PATHS for method in item}
    reached = {label for label, _ in answered}
    assert len(reached & operations) >= 0.9 * len(operations), (
        sorted(operations - reached), printed)
    errors = [(i["request"]["method"], i["request"]["uri"], i["request"].get("body"),
               i["response"]["status_code"]) for _, i in answered
              if i["response"]["status_code"] >= 500]
    assert not errors, errors[:10]
