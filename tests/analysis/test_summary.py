"""Summaries: the built-in writer, and an OpenAI-compatible provider faked at its HTTP boundary."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from veritas.analysis.summary import BUILTIN_VERSION, builtin_summary, summarize

FACTS = {"band": "high", "flags": ["paste_ratio"], "coverage": 0.95, "trend": "declining",
         "risk_label": "at_risk", "percentage": 40.0}


def test_builtin_summary_is_deterministic_and_plain() -> None:
    first, second = builtin_summary(FACTS), builtin_summary(dict(FACTS))
    assert first == second and first.model_version == BUILTIN_VERSION
    assert "paste ratio" in first.text and "declining" in first.text
    assert any("own words" in r for r in first.recommendations)


class _FakeProvider(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's handler name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        _FakeProvider.requests.append({"path": self.path, "auth": self.headers["authorization"],
                                       "body": body})
        answer = {"choices": [{"message": {"content":
                  "A calm summary.\n- Practise typing answers\n- Revise chapter 3"}}]}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_provider_is_used_when_configured_and_falls_back_when_down() -> None:
    server = HTTPServer(("127.0.0.1", 0), _FakeProvider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        written = asyncio.run(summarize(FACTS, url, "school-model", "k-123", timeout=5))
    finally:
        server.shutdown()
        server.server_close()
    assert written.text == "A calm summary."
    assert written.recommendations == ["Practise typing answers", "Revise chapter 3"]
    assert written.model_version == "school-model"
    sent = _FakeProvider.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer k-123"
    down = asyncio.run(summarize(FACTS, url, "school-model", None, timeout=1))
    assert down == builtin_summary(FACTS)
