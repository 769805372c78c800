"""The printable incident report over HTTP: what it shows, that nothing in it is markup a
student or a teacher typed, who may have it, and that reading it is audited."""

from __future__ import annotations

import time
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from tests.support import PASSWORD, Api, unique

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCRIPT_NAME = "<script>alert('name')</script> Mallory"
IMG_NOTE = '"><img src=x onerror="alert(1)">'
STYLE_BREAK = "</style><script>alert(2)</script>"
TITLE = "Algebra <b onmouseover=alert(3)>final</b> & more"


class _Tags(HTMLParser):
    """Every start tag and its attributes, and the text, of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def _analyzed(api: Api, admin: dict, attempt_id: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = api.get(f"/api/teacher/attempts/{attempt_id}", headers=admin["headers"]).json()
        if view["behavior_analysis"] is not None:
            return view
        time.sleep(0.2)
    raise AssertionError("the attempt was never analyzed")


@pytest.fixture(scope="module")
def incident(api: Api, admin: dict) -> dict:
    owner, granted, viewer, stranger = (api.user("teacher") for _ in range(4))
    exam = api.exam(owner, title=TITLE)
    assert api.grant(owner, exam, granted, can_view_analytics=True).status_code == 201
    assert api.grant(owner, exam, viewer, can_view_analytics=False).status_code == 201
    username = unique("student")
    body = {"email": f"{username}@school.example", "username": username, "password": PASSWORD,
            "full_name": SCRIPT_NAME, "enrollment_id": "<i>E-9</i>"}
    assert api.post("/api/auth/register", json=body).status_code == 201
    student = api.login(body["email"])
    attempt = api.start(student, exam)["attempt_id"]
    sent = api.post("/api/monitor/events/batch", headers=student["headers"], json={
        "attempt_id": attempt, "events": [
            {"event_type": "paste", "data": {"chars": 900, "question_id": "q3"}},
            {"event_type": "focus_lost", "data": {"duration_ms": 45_000}},
            {"event_type": "module.alarm", "severity": "critical", "data": {},
             "description": STYLE_BREAK}]})
    assert sent.status_code == 201, sent.text
    assert api.submit(student, attempt, {"q1": "4", "q3": "Paris"}).status_code == 200
    _analyzed(api, admin, attempt)
    reviewed = api.post(f"/api/teacher/attempts/{attempt}/reviews", headers=owner["headers"],
                        json={"decision": "acknowledged", "note": IMG_NOTE})
    assert reviewed.status_code in (200, 201), reviewed.text
    paste = next(a for a in api.get("/api/teacher/alerts", headers=owner["headers"],
                                    params={"exam_id": exam["id"]}).json()["items"]
                 if a["event_type"] == "paste")
    assert api.post(f"/api/teacher/alerts/{paste['id']}/status", headers=owner["headers"],
                    json={"status": "acknowledged", "note": STYLE_BREAK}).status_code == 200
    return {"owner": owner, "granted": granted, "viewer": viewer, "stranger": stranger,
            "admin": admin, "student": student, "exam": exam, "attempt": attempt,
            "url": f"/api/teacher/attempts/{attempt}/report"}


def test_the_report_tells_the_whole_story(api: Api, incident: dict, db: Any) -> None:
    response = api.get(incident["url"], headers=incident["owner"]["headers"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    html = response.text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "incident-report.html").write_text(html)  # to look at
    page = _parse(html)
    text = " ".join(page.text)
    assert "@media print" in html  # the print stylesheet, inline
    assert f"Incident report: {SCRIPT_NAME}" in text and incident["student"]["email"] in text
    assert "Algebra <b onmouseover=alert(3)>final</b> & more" in text
    # The timeline of anomalies, in plain words.
    for words in ("Pasted text", "Left the exam window", "module.alarm", "paste of 900"):
        assert words in text, words
    # The analysis and its explanation: each signal, the band, confidence and gaps.
    for words in ("share of the answer pasted", "time spent away from the exam (seconds)",
                  "What the score is made of", "Review priority", "Confidence",
                  "Monitoring gaps", "Dropout risk"):
        assert words in text, words
    assert any(tag == "svg" for tag, _ in page.tags)  # the contribution bars
    # The review decisions and the alerts' triage.
    assert "Acknowledged" in text and IMG_NOTE in text and "Being reviewed" in text
    assert "Being looked at" in text
    audited = db.execute("SELECT count(*) FROM audit_logs WHERE user_id = %s"
                         " AND action = 'view_student_data' AND resource_id = %s"
                         " AND details->>'view' = 'incident_report'",
                         (incident["owner"]["id"], incident["attempt"])).fetchone()[0]
    assert audited == 1


def test_nothing_anyone_typed_becomes_markup(api: Api, incident: dict) -> None:
    html = api.get(incident["url"], headers=incident["owner"]["headers"]).text
    page = _parse(html)
    tags = {tag for tag, _ in page.tags}
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p",
                    "dl", "dt", "dd", "table", "thead", "tbody", "tr", "th", "td", "ul", "li",
                    "span", "svg", "rect"}, tags
    assert not [a for _, attrs in page.tags for a in attrs if a.startswith("on")]
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;script&gt;" in html and "&lt;/style&gt;" in html
    assert html.lower().count("</style>") == 1  # only the stylesheet's own end


def test_times_in_the_readers_zone(api: Api, incident: dict) -> None:
    h = incident["owner"]["headers"]
    paris = api.get(incident["url"], headers=h, params={"tz": "Europe/Paris"})
    assert paris.status_code == 200 and "Times are in Europe/Paris." in paris.text
    assert "Times are in UTC." in api.get(incident["url"], headers=h).text
    for bad in ("Mars/Olympus", "../../etc/passwd", "x" * 65):
        assert api.get(incident["url"], headers=h, params={"tz": bad}).status_code == 422


def test_who_may_read_the_report(api: Api, incident: dict) -> None:
    url = incident["url"]
    assert api.get(url).status_code == 401
    for who, allowed in (("owner", True), ("granted", True), ("admin", True),
                         ("viewer", False), ("stranger", False), ("student", False)):
        response = api.get(url, headers=incident[who]["headers"])
        if allowed:
            assert response.status_code == 200, (who, response.text)
        else:
            assert response.status_code in (403, 404), (who, response.text)
            assert incident["student"]["email"] not in response.text
    unknown = f"/api/teacher/attempts/{uuid.uuid4()}/report"
    assert api.get(unknown, headers=incident["owner"]["headers"]).status_code == 404
