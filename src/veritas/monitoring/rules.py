"""Cheap anomaly rules applied to each event at ingestion.

Thresholds are per exam: `metadata.anomaly_rules` (AnomalyRules) overrides any of
DEFAULT_RULES. A rule's score is 0.5 at its threshold, rising linearly to
1.0 at twice the threshold; a `critical` severity from the monitoring module is an anomaly
with score 1.0 on its own.

The stored severity is the server's judgement, not only the client's: an event a rule flags
is at least `warning`, and `critical` from twice its threshold (score 1.0). The browser SDK
sends every event as `normal`, and the alert list ranks by severity, so without this a live
anomaly would sort below every event a monitoring module marked itself. A client may still
raise an event's severity, never lower what the rules found.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

log = logging.getLogger(__name__)

DEFAULT_RULES: dict[str, float] = {
    "paste_chars": 200,  # a paste longer than this
    "focus_lost_ms": 10_000,  # window or tab away longer than this
    "gaze_off_ms": 5_000,  # a continuous gaze-off run longer than this
    "face_missing_ms": 5_000,
    "multiple_faces": 2,  # this many faces or more
}

# A positive number; int stays int when stored back, and bool is no number.
Threshold = Annotated[StrictInt | StrictFloat, Field(gt=0, le=1e9, allow_inf_nan=False)]


class AnomalyRules(BaseModel):
    """An exam's `anomaly_rules` setting (part of exams.settings.ExamSettings)."""

    # An unknown rule name is a typo that would silently do nothing.
    model_config = ConfigDict(extra="forbid", frozen=True)

    paste_chars: Threshold | None = None
    focus_lost_ms: Threshold | None = None
    gaze_off_ms: Threshold | None = None
    face_missing_ms: Threshold | None = None
    multiple_faces: Threshold | None = None

    def thresholds(self) -> dict[str, float]:
        """The defaults, overridden by what the exam sets."""
        return DEFAULT_RULES | {k: float(v) for k, v in self.model_dump(exclude_none=True).items()}


def exam_thresholds(metadata: Mapping[str, Any] | None, exam_id: Any) -> dict[str, float]:
    """The thresholds of an exam's stored metadata. A bad setting (written past the API, which
    checks it) must not stop ingestion: the defaults then, and a warning naming the exam."""
    try:
        return AnomalyRules.model_validate((metadata or {}).get("anomaly_rules") or {}).thresholds()
    except ValidationError as exc:
        log.warning("exam %s has invalid anomaly_rules, using the defaults: %s", exam_id,
                    "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
        return dict(DEFAULT_RULES)


# event type -> (payload field, rule name, how to describe it)
_MEASURED = {
    "paste": ("chars", "paste_chars", "paste of {v:g} characters (limit {t:g})"),
    "focus_lost": ("duration_ms", "focus_lost_ms", "focus lost for {s:.1f} s (limit {ts:.1f} s)"),
    "visibility_hidden": (
        "duration_ms", "focus_lost_ms", "tab hidden for {s:.1f} s (limit {ts:.1f} s)"
    ),
    "gaze_off": ("duration_ms", "gaze_off_ms", "gaze away for {s:.1f} s (limit {ts:.1f} s)"),
    "face_missing": ("duration_ms", "face_missing_ms", "no face for {s:.1f} s (limit {ts:.1f} s)"),
    "multiple_faces": ("count", "multiple_faces", "{v:g} faces in view"),
}


class Judgement(NamedTuple):
    """What the rules make of one event."""

    anomaly: bool
    score: float | None  # None unless an anomaly
    description: str | None  # the rule that fired, in words
    severity: str  # the severity to store: the client's, raised by what the rules found


def evaluate(
    event_type: str, severity: str, data: dict[str, Any], rules: dict[str, float]
) -> Judgement:
    measured = _MEASURED.get(event_type)
    if measured is not None:
        field, rule, text = measured
        value = data.get(field)
        threshold = rules[rule]
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= threshold:
            if rule == "multiple_faces" or value > threshold:
                score = min(1.0, 0.5 + 0.5 * (value - threshold) / threshold)
                if severity == "critical":
                    score = 1.0
                judged = "critical" if score >= 1.0 else "warning"
                return Judgement(True, round(score, 4), text.format(
                    v=value, t=threshold, s=value / 1000, ts=threshold / 1000
                ), judged)
    if severity == "critical":
        return Judgement(True, 1.0, f"critical {event_type} event", severity)
    return Judgement(False, None, None, severity)
