"""The printable incident report of one attempt, as one self-contained HTML page.

Built as an element tree and serialized by the standard library's ElementTree, which escapes
every text and attribute: a student's name, a note or a description is always text, never
markup. The stylesheet (report.css) is the page's one inline <style>; its hash is what the
report's Content-Security-Policy admits, and nothing else (no script at all).
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from veritas.analysis.models import BehaviorAnalysis
from veritas.analytics.schemas import AlertOut
from veritas.db.base import ScoreStatus
from veritas.reports.words import say

STYLE = (Path(__file__).with_name("report.css")).read_text()
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (f"default-src 'none'; style-src '{STYLE_HASH}'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")

Child = ET.Element | str | int | float | None


@dataclass(frozen=True)
class Anomaly:
    at: datetime
    event_type: str
    severity: str
    score: float | None
    description: str | None


@dataclass(frozen=True)
class Decision:
    at: datetime
    reviewer: str
    decision: str
    note: str | None
    alert_id: Any


@dataclass(frozen=True)
class Report:
    """Everything the report shows, read and authorized by reports.service."""

    zone: tzinfo
    zone_name: str
    generated_at: datetime
    generated_by: str
    exam_title: str
    exam_subject: str
    student: str
    username: str
    email: str
    enrollment_id: str | None
    attempt: dict[str, Any]  # analytics.schemas.AttemptOut.fields
    alerts: Sequence[AlertOut]
    anomalies: Sequence[Anomaly]
    anomaly_total: int
    analysis: BehaviorAnalysis | None
    decisions: Sequence[Decision]
    outcome: str


def el(tag: str, attrs: dict[str, Any] | None = None, *children: Child) -> ET.Element:
    """An element with attributes and children; strings become (escaped) text."""
    node = ET.Element(tag, {k: str(v) for k, v in (attrs or {}).items()})
    last: ET.Element | None = None
    for child in children:
        if child is None:
            continue
        if isinstance(child, ET.Element):
            node.append(child)
            last = child
        elif last is None:
            node.text = (node.text or "") + str(child)
        else:
            last.tail = (last.tail or "") + str(child)
    return node


def _time(moment: datetime | None, zone: tzinfo) -> str:
    return "—" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _offset(moment: datetime, start: datetime) -> str:
    seconds = max(0, int((moment - start).total_seconds()))
    return f"+{seconds // 60}:{seconds % 60:02d}"


def _clock(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"


def _integrity(score: float | None, status: ScoreStatus | None) -> str:
    """An integrity score, saying so when it may still change."""
    if score is not None and status is ScoreStatus.provisional:
        return (f"{_pct(score)} (provisional: the exam's attempts have not all been scored"
                " together yet, and it may change when they are)")
    return _pct(score)


def _facts(pairs: Sequence[tuple[str, Child]]) -> ET.Element:
    items: list[Child] = []
    for label, value in pairs:
        items += [el("dt", None, label), el("dd", None, "—" if value in (None, "") else value)]
    return el("dl", {"class": "facts"}, *items)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Child]],
           numeric: frozenset[int] = frozenset()) -> ET.Element:
    return el("table", None,
              el("thead", None, el("tr", None, *(el("th", {"scope": "col"}, h) for h in headers))),
              el("tbody", None, *(el("tr", None, *(
                  el("td", {"class": "num"} if i in numeric else None, "—" if v is None else v)
                  for i, v in enumerate(row))) for row in rows)))


def _bar(share: float) -> ET.Element:
    """A small horizontal bar for a share in [0, 1] (SVG: no style attribute needed)."""
    width = round(100 * min(1.0, max(0.0, share)), 1)
    return el("svg", {"class": "bar", "viewBox": "0 0 100 10", "preserveAspectRatio": "none",
                      "role": "img", "aria-label": f"{width:g} %"},
              el("rect", {"class": "track", "x": 0, "y": 0, "width": 100, "height": 10}),
              el("rect", {"class": "fill", "x": 0, "y": 0, "width": width, "height": 10}))


def _explanation(analysis: BehaviorAnalysis | None) -> list[ET.Element]:
    if analysis is None:
        return [el("p", None, "This attempt has not been analysed yet.")]
    parts: list[ET.Element] = []
    details = analysis.details or {}
    found = details.get("integrity") or {}
    if found:
        parts.append(_facts([
            ("Integrity score", _integrity(found.get("score"), analysis.score_status)),
            ("Review priority", say("bands", found.get("band"))),
            ("Confidence", f"{_pct(found.get('confidence'))} ({say('terms', 'confidence')})"),
            ("Scoring policy", found.get("policy_version")),
        ]))
        rows = []
        for name, part in sorted((found.get("contributions") or {}).items(),
                                 key=lambda kv: -(kv[1].get("contribution") or 0.0)):
            contribution = float(part.get("contribution") or 0.0)
            rows.append((say("signals", name), _num(part.get("value")), _num(part.get("z")),
                         _num(part.get("weight")),
                         el("span", None, _bar(contribution), f" {_num(contribution, 3)}"),
                         say("terms", f"basis_{part.get('basis')}")))
        parts += [el("h3", None, "What the score is made of"),
                  el("p", {"class": "note"},
                     f"Value: what was measured. z: {say('terms', 'z')}. Weight: "
                     f"{say('terms', 'weight')}. Contribution: {say('terms', 'contribution')}"
                     " (the contributions add up to one minus the score)."),
                  _table(("Signal", "Value", "z", "Weight", "Contribution", "Compared with"),
                         rows, frozenset({1, 2, 3}))]
        gaps = found.get("gaps") or []
        parts.append(el("h3", None, "Monitoring gaps"))
        parts.append(el("p", None, "None: the attempt was monitored throughout.") if not gaps
                     else el("ul", None, *(el("li", None, f"from {_clock(g[0])} to {_clock(g[1])}"
                                                          " into the attempt") for g in gaps)))
    else:
        parts.append(_facts([("Integrity score", _integrity(analysis.integrity_score,
                                                            analysis.score_status))]))
    risk = details.get("risk") or {}
    parts += [el("h3", None, "Dropout risk"), _facts([
        ("Risk", say("risks", analysis.dropout_label.value if analysis.dropout_label else None)),
        ("Probability", _pct(risk.get("probability"))),
        ("Confidence", _pct(analysis.dropout_confidence)),
        ("Model", (risk.get("model") or {}).get("version")),
    ])]
    factors = risk.get("factors") or []
    if factors:
        parts.append(el("ul", None, *(el("li", None, str(f.get("in_words") or f.get("factor")))
                                      for f in factors)))
    if analysis.llm_summary:
        parts += [el("h3", None, "Summary"), el("p", None, analysis.llm_summary)]
    if analysis.llm_recommendations:
        parts.append(el("ul", None, *(el("li", None, str(r))
                                      for r in analysis.llm_recommendations)))
    return parts


def render(report: Report) -> str:
    """The report as an HTML document."""
    a, zone = report.attempt, report.zone
    start = a["started_at"]
    score = (f"{_num(a['score'], 1)} of {_num(a['max_score'], 1)} ({_num(a['percentage'], 1)} %)"
             if a["score"] is not None else None)
    body = el("body", None,
        el("h1", None, f"Incident report: {report.student}"),
        el("p", {"class": "meta"},
           f"{report.exam_title} ({report.exam_subject}). Generated {_time(report.generated_at, zone)}"
           f" ({report.zone_name}) by {report.generated_by}. Times are in {report.zone_name}."),
        el("p", {"class": "disclaimer"},
           "The signals below are reasons to look closer, never a verdict: a score or an alert"
           " shows what was measured, not what happened or why. Talk with the student before"
           " drawing any conclusion."),
        el("h2", None, "Student and attempt"),
        _facts([
            ("Student", report.student), ("Username", report.username),
            ("Email", report.email), ("Enrolment id", report.enrollment_id),
            ("Attempt", str(a["attempt_id"])),
            ("Status", say("attempt_statuses", a["status"].value)),
            ("Started", _time(start, zone)), ("Completed", _time(a["completed_at"], zone)),
            ("Duration", None if a["duration_seconds"] is None
             else _clock(a["duration_seconds"])),
            ("Score", score),
            ("Grading", say("grading_statuses", a["grading_status"].value)
             if a["grading_status"] else None),
            ("Passed", None if a["passed"] is None else "yes" if a["passed"] else "no"),
            ("Integrity score", _integrity(a["integrity_score"], a["integrity_score_status"])),
            ("Review outcome", say("outcomes", report.outcome)),
        ]),
        el("h2", None, "Alerts"),
        _table(("Severity", "What", "Times", "First", "Status", "Note"), [
            (say("severities", x.severity.value),
             f"{say('alert_kinds', x.kind)}: {say('events', x.event_type)}" if x.event_type
             else say("alert_kinds", x.kind),
             x.count, _time(x.first_at, zone), say("statuses", x.status.value), x.status_note)
            for x in report.alerts]) if report.alerts else el("p", None, "No alerts."),
        el("h2", None, "Timeline of anomalies"),
        _table(("Time", "Into the attempt", "Event", "Severity", "Score", "What happened"), [
            (_time(x.at, zone), _offset(x.at, start), say("events", x.event_type),
             say("severities", x.severity), _num(x.score), x.description)
            for x in report.anomalies], frozenset({1, 4}))
        if report.anomalies else el("p", None, "No anomalies were recorded."),
        el("p", {"class": "note"}, f"The first {len(report.anomalies)} of"
                                   f" {report.anomaly_total} anomalies are listed.")
        if report.anomaly_total > len(report.anomalies) else None,
        el("h2", None, "Analysis and its explanation"),
        *_explanation(report.analysis),
        el("h2", None, "Review decisions"),
        _table(("When", "Reviewer", "Decision", "Note"), [
            (_time(d.at, zone), d.reviewer, say("decisions", d.decision), d.note)
            for d in report.decisions]) if report.decisions
        else el("p", None, "No review decision has been recorded."),
    )
    head = el("head", None, el("meta", {"charset": "utf-8"}),
              el("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
              el("title", None, f"Incident report: {report.student}, {report.exam_title}"),
              el("style", None, STYLE))
    document = el("html", {"lang": "en"}, head, body)
    return "<!doctype html>\n" + ET.tostring(document, encoding="unicode", method="html")
