"""The HTTP floor: an ASGI app that answers the monitoring endpoints without doing anything.

Served by the same uvicorn command as Veritas and driven by the same load, it shows what the
HTTP server, the kernel and the load generator cost before any validation, authorization or
storage: the part of Veritas's CPU per event that no change inside the application can
remove. It stores nothing, so the benchmark does not reconcile it.
"""

from __future__ import annotations

from typing import Any

SINGLE = b'{"id":"00000000-0000-0000-0000-000000000000","status":"recorded"}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:  # read the whole body, as a real endpoint must
        more = (await receive()).get("more_body", False)
    if scope["path"].endswith("/batch"):
        status, body = 201, b'{"recorded":20,"duplicates":0}'
    else:
        status, body = (200, b'{"status":"ready"}') if scope["path"] == "/readyz" else (201, SINGLE)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app() -> Any:
    return app
