"""Security headers on every response, added in one ASGI layer ahead of everything else."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The pages load only their own scripts and styles (no inline script, no handler attribute),
# talk only to their own origin and may not be framed.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")
# Anything else (JSON, text, scripts) is never a document: it may load and frame nothing.
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'"

_COMMON = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """nosniff and Referrer-Policy everywhere; a CSP unless the route set its own; and
    `Cache-Control: no-store` on the API, whose answers are personal data."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        personal = path.startswith("/api/") or path == "/metrics"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if not (personal and k.lower() == b"cache-control")]
                csp = html = False
                for name, value in headers:
                    lowered = name.lower()
                    if lowered == b"content-security-policy":
                        csp = True
                    elif lowered == b"content-type":
                        html = value.startswith(b"text/html")
                headers.extend(_COMMON)
                if not csp:
                    headers.append((b"content-security-policy",
                                    (PAGE_CSP if html else OTHER_CSP).encode()))
                if personal:
                    headers.append(_NO_STORE)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
