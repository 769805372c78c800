"""The HTTP protocol `veritas serve` runs: uvicorn's httptools protocol with a header-read
timeout, which uvicorn lacks (its keep-alive timer is reset by every byte and does not run
before the first request), so a client trickling a request head cannot hold a connection."""

from __future__ import annotations

import asyncio
import functools

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from veritas.config import Settings

# How uvicorn is told to use it (an import string also crosses to worker processes).
IMPORT_PATH = "veritas.http_protocol:HeaderTimeoutProtocol"


@functools.cache
def header_read_timeout() -> float:
    return Settings().header_read_timeout_seconds


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """Closes a connection whose request head is not complete in time: counted from the
    connection for its first request, from the request's first byte for later ones (the
    idle time between requests stays keep-alive's business)."""

    _head_deadline: asyncio.TimerHandle | None = None

    # uvicorn's signature, which narrows asyncio's transport type (and ignores it too).
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(header_read_timeout(), self._too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
