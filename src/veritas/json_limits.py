"""Limits on the free-form JSON clients store (exam metadata, answers, event data, analyses).

Anything stored must also read back: pydantic refuses to serialize past ~250 levels of
nesting and orjson refuses integers beyond 64 bits, so a deeply nested event payload once
stored made its attempt's monitoring list a 500 for the teacher (a student could hide their
own events that way), and a huge integer in exam metadata broke event ingestion for the
exam. Such values are refused on the way in instead, with a 422 that says why.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_DEPTH = 32
# A request body wraps stored values in a few levels of its own ({"events": [{"data": ...}]}).
MAX_BODY_DEPTH = MAX_DEPTH + 8
_INT_RANGE = range(-(2**63), 2**63)


def json_problem(value: Any) -> str | None:
    """Why `value` cannot be stored and read back, or None if it can."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        elif isinstance(node, bool):
            continue
        elif isinstance(node, int):
            if node not in _INT_RANGE:
                return "integers must fit in 64 bits"
            continue
        elif isinstance(node, float):
            if not math.isfinite(node):
                return "numbers must be finite"
            continue
        else:
            continue
        if depth > MAX_DEPTH:
            return f"JSON may nest at most {MAX_DEPTH} levels deep"
        stack.extend((child, depth + 1) for child in children)
    return None


def _storable(value: Any) -> Any:
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# A request field of free-form JSON that passes json_problem (pydantic answers 422 otherwise).
StorableObject = Annotated[dict[str, Any], AfterValidator(_storable)]


# Everything but brackets is dropped, and both kinds count alike: nesting is what is measured.
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def body_problem(body: bytes) -> str | None:
    """Why a JSON request body is refused before parsing, or None.

    Python's json module recurses once per level and fails past ~1,000 (a RecursionError,
    once a 500); this measures the nesting in C-speed passes over the bytes instead: strings
    out, brackets kept, then each pass of removing empty pairs "[]" peels exactly one level."""
    try:
        body.decode()
    except UnicodeDecodeError:
        return "the body must be UTF-8 encoded JSON"
    # Escaped backslashes, then escaped quotes, go first; then every other piece between
    # quotes is outside a string.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    brackets = outside.translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(MAX_BODY_DEPTH):
        if not brackets:
            return None
        brackets = brackets.replace(b"[]", b"")
    # Deeper than allowed, or unbalanced (which the parser would refuse anyway).
    return f"JSON may nest at most {MAX_BODY_DEPTH} levels deep" if brackets else None


def _is_json(scope: Scope) -> bool:
    headers: list[tuple[bytes, bytes]] = scope["headers"]  # ASGI: raw names, lowercased
    for key, value in headers:
        if key == b"content-type":
            media = value.split(b";")[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


class JsonBodyPolicy:
    """Every JSON request body, on every route, is UTF-8 and nested at most MAX_BODY_DEPTH
    levels, or the request gets a 422 before any route parses it (sizes: app.BodyLimit)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = body_problem(body)
        if problem is not None:
            await _refuse(send, problem)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body}], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def replayed() -> Message:
        return messages.pop(0) if messages else await receive()

    return replayed


async def _refuse(send: Send, problem: str) -> None:
    body = orjson.dumps({"detail": f"invalid JSON body: {problem}"})
    await send({"type": "http.response.start", "status": 422,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
