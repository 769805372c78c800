"""Summaries of an analysis for students and teachers: built-in, or an OpenAI-compatible model.

The built-in summarizer writes from the computed signals only, deterministically and without
network. When LLM_BASE_URL and LLM_MODEL are set, that provider is asked instead, with a
timeout; any failure falls back to the built-in text. `model_version` says which wrote it.
Only the summary and the recommendations ever reach a student.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

BUILTIN_VERSION = "veritas-builtin-1"

_SIGNAL_ADVICE = {
    "focus_away_seconds": "Stay on the exam page; time away from it is what reviewers look at.",
    "focus_episodes": "Close other tabs and notifications before starting an exam.",
    "paste_ratio": "Write answers in your own words rather than pasting them in.",
    "typing_shortfall": "Type your answers as you think them through.",
    "paste_jumps": "Build answers up step by step; drafts that jump in one block draw review.",
    "camera_off_share": "Keep your face in view of the camera for the whole exam.",
    "peer_similarity": "Make sure free-text answers are your own formulation.",
}


@dataclass(frozen=True)
class Summary:
    text: str
    recommendations: list[str]
    model_version: str


def builtin_summary(facts: dict[str, Any]) -> Summary:
    """Plain sentences from the analysis facts (band, flags, momentum, risk, coverage)."""
    band, flags = facts["band"], facts["flags"]
    parts = [f"Integrity review priority: {band}."]
    if flags:
        names = ", ".join(f.replace("_", " ") for f in flags)
        parts.append(f"Signals above what is usual for this exam: {names}.")
    else:
        parts.append("No monitoring signal stood out against the rest of this exam.")
    if facts.get("coverage") is not None and facts["coverage"] < 0.8:
        parts.append(f"Monitoring covered {facts['coverage']:.0%} of the attempt (connection "
                     "gaps are not counted against the student).")
    trend = facts.get("trend")
    if trend and trend != "insufficient_history":
        parts.append(f"Learning momentum is {trend}.")
    if facts.get("risk_label"):
        parts.append(f"Dropout risk: {facts['risk_label'].replace('_', ' ')}.")
    recommendations = [_SIGNAL_ADVICE[f] for f in flags if f in _SIGNAL_ADVICE]
    if trend == "declining":
        recommendations.append("Recent results are slipping: revisit the last topics covered.")
    if facts.get("risk_label") in ("at_risk", "high_risk"):
        recommendations.append("Talk to your teacher about a study plan for the coming weeks.")
    if facts.get("percentage") is not None and facts["percentage"] < 50:
        recommendations.append("Review this exam's topic before the next attempt.")
    if not recommendations:
        recommendations.append("Keep going as you are.")
    return Summary(" ".join(parts), recommendations, BUILTIN_VERSION)


async def summarize(facts: dict[str, Any], base_url: str | None, model: str | None,
                    api_key: str | None, timeout: float = 10.0) -> Summary:
    fallback = builtin_summary(facts)
    if not (base_url and model):
        return fallback
    prompt = ("Write two sentences for a teacher summarizing this exam attempt's integrity "
              "analysis, neutral in tone (a review priority, never an accusation), then up to "
              f"three short recommendations for the student, one per line. Facts: {facts}")
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(
                base_url.rstrip("/") + "/chat/completions",
                headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
                json={"model": model, "messages": [{"role": "user", "content": prompt}]},
            )
            response.raise_for_status()
            content = response.json()["choices"][0]["message"]["content"].strip()
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
        log.warning("summary provider failed (%s); using the built-in summary", exc)
        return fallback
    lines = [line.strip(" -•\t") for line in content.splitlines() if line.strip()]
    if not lines:
        return fallback
    return Summary(lines[0], lines[1:4] or fallback.recommendations, model)
