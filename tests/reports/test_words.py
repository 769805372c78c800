"""The one dictionary of plain words covers every term Veritas shows: the standard event
types, the alert kinds, the integrity signals, and every status, severity and outcome."""

from __future__ import annotations

from typing import get_args

import pytest

from veritas.analysis.integrity import SCORED_SIGNALS
from veritas.analysis.schemas import Decision, Outcome
from veritas.db.base import AlertStatus, AttemptStatus, DropoutRisk, GradingStatus, Severity
from veritas.reports.words import dictionary, say

STANDARD_EVENTS = ("heartbeat", "focus_lost", "visibility_hidden", "fullscreen_exit", "copy",
                   "cut", "paste", "typing", "idle", "network_offline", "eye_movement",
                   "gaze_off", "face_missing", "multiple_faces")


@pytest.mark.parametrize("group,terms", [
    ("events", STANDARD_EVENTS),
    ("alert_kinds", ("monitoring_anomaly", "low_integrity", "high_dropout_risk",
                     "telemetry_gap")),
    ("signals", SCORED_SIGNALS),
    ("statuses", [s.value for s in AlertStatus]),
    ("attempt_statuses", [s.value for s in AttemptStatus]),
    ("grading_statuses", [s.value for s in GradingStatus]),
    ("severities", [s.value for s in Severity]),
    ("risks", [r.value for r in DropoutRisk]),
    ("outcomes", get_args(Outcome)),
    ("decisions", get_args(Decision)),
    ("bands", ("low", "medium", "high")),
])
def test_every_term_has_plain_words(group: str, terms: tuple[str, ...]) -> None:
    words = dictionary()[group]
    assert set(terms) <= set(words), set(terms) - set(words)
    assert all(words[t] and "_" not in words[t] for t in terms)


def test_a_term_without_words_is_shown_as_it_is() -> None:
    assert say("signals", "paste_ratio") == "share of the answer pasted"
    assert say("events", "module.door_open") == "module.door open"
    assert say("events", None) == "—"
