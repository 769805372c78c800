"""The heartbeat period has one source: the server's, given to the exam page at start."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import Api

from veritas.analysis import integrity
from veritas.monitoring.limits import HEARTBEAT_SECONDS

STATIC = Path(__file__).parents[2] / "src" / "veritas" / "web" / "static"


def test_start_tells_the_page_the_period_the_analysis_assumes(api: Api) -> None:
    teacher, student = api.user("teacher"), api.user()
    started = api.start(student, api.exam(teacher))
    assert started["heartbeat_seconds"] == HEARTBEAT_SECONDS == integrity.HEARTBEAT_SECONDS
    # The exam page passes it to the SDK, whose default (for pages that do not) is the same.
    assert "heartbeatMs: attempt.heartbeat_seconds * 1000" in (STATIC / "js" / "exam.js").read_text()
    sdk = (STATIC / "sdk" / "veritas-monitor.js").read_text()
    assert int(re.search(r"heartbeatMs: (\d+)", sdk).group(1)) == HEARTBEAT_SECONDS * 1000


def test_a_gap_is_thirty_seconds_of_silence() -> None:
    assert integrity.GAP_FACTOR * integrity.HEARTBEAT_SECONDS == 30
