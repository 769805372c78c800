"""Cheap anomaly rules applied to each event at ingestion.

Thresholds are per exam: `metadata.anomaly_rules` overrides any of DEFAULT_RULES. A rule's
score is 0.5 at its threshold, rising linearly to 1.0 at twice the threshold; a `critical`
severity from the monitoring module is an anomaly with score 1.0 on its own.
"""

from __future__ import annotations

import math
from typing import Any

DEFAULT_RULES: dict[str, float] = {
    "paste_chars": 200,  # a paste longer than this
    "focus_lost_ms": 10_000,  # window or tab away longer than this
    "gaze_off_ms": 5_000,  # a continuous gaze-off run longer than this
    "face_missing_ms": 5_000,
    "multiple_faces": 2,  # this many faces or more
}

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


def exam_rules(exam_metadata: dict[str, Any] | None) -> dict[str, float]:
    """The exam's thresholds: defaults overridden by numeric entries of its metadata."""
    overrides = (exam_metadata or {}).get("anomaly_rules") or {}
    rules = dict(DEFAULT_RULES)
    if isinstance(overrides, dict):
        for name, value in overrides.items():
            if name not in rules or not isinstance(value, int | float) or isinstance(value, bool):
                continue
            try:
                threshold = float(value)
            except OverflowError:  # an integer too large for a float: no usable threshold
                continue
            if math.isfinite(threshold) and threshold > 0:
                rules[name] = threshold
    return rules


def evaluate(
    event_type: str, severity: str, data: dict[str, Any], rules: dict[str, float]
) -> tuple[bool, float | None, str | None]:
    """(is_anomaly, anomaly_score, description) for one event."""
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
                return True, round(score, 4), text.format(
                    v=value, t=threshold, s=value / 1000, ts=threshold / 1000
                )
    if severity == "critical":
        return True, 1.0, f"critical {event_type} event"
    return False, None, None
