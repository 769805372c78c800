"""The load generator: a separate process that plays students over plain HTTP/1.1.

It shares the machine's cores with the server and the database, so it is kept cheap: one
keep-alive connection per student over a bare asyncio protocol (no HTTP library), request
bodies spliced from pre-serialized event templates, and event ids made from a random prefix
and a counter. It reads one JSON command per line on stdin and answers one JSON line on
stdout; acknowledged event ids go to a file for the orchestrator's reconciliation.

Latency is measured from the moment a request was *due* (open loop), so a slow server is not
hidden by the generator waiting for it before sending the next request.
"""

from __future__ import annotations

import array
import asyncio
import json
import os
import random
import sys
import time
from datetime import UTC, datetime
from typing import Any

import uvloop

from bench.ingest.common import event_templates, template_json


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, bytes]] | None = None
        self.answered = 0  # responses received: a reused connection may have gone stale

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(cls, host, port)
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4:end + 4 + length])
        del self.buffer[:end + 4 + length]
        self.answered += 1
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((int(head[9:12]), head, body))

    async def request(self, data: bytes, timeout: float) -> tuple[int, bytes, bytes]:
        if self.transport is None:
            raise ConnectionError("not connected")
        loop = asyncio.get_running_loop()
        self.waiter = waiter = loop.create_future()
        # A bare timer rather than asyncio.wait_for, which costs a task per request.
        timer = loop.call_later(timeout, lambda: waiter.done() or waiter.set_exception(
            TimeoutError()))
        self.transport.write(data)
        try:
            return await waiter
        finally:
            timer.cancel()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _retry_after(head: bytes) -> float:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"retry-after":
            return min(1.0, float(value))  # capped: a benchmark step is short
    return 0.5


class Channel:
    """A connection, opened on first use and again after it is lost."""

    def __init__(self) -> None:
        self.conn: Connection | None = None


class Student(Channel):
    def __init__(self, index: int, token: str, attempt: str) -> None:
        super().__init__()
        self.index = index
        self.auth = f"Authorization: Bearer {token}\r\n".encode()
        self.attempt = attempt.encode()


class Load:
    def __init__(self, config: dict[str, Any]) -> None:
        self.host, self.port = config["host"], config["port"]
        self.students = [Student(i, t, a) for i, (t, a) in
                         enumerate(zip(config["tokens"], config["attempts"], strict=True))]
        self.templates = template_json(event_templates())
        self.rng = random.Random(config.get("seed", 7))
        self.prefix = os.urandom(8).hex()  # event ids: prefix + counter, unique per process
        self.counter = 0
        self.reset()

    def reset(self) -> None:
        self.acked = array.array("Q")  # counters of acknowledged events
        self.sent = 0
        self.latency: dict[str, list[float]] = {"single": [], "batch": []}
        self.status: dict[str, int] = {}
        self.errors = 0
        self.stale = 0  # resent because a reused keep-alive connection had been closed

    # --- bodies -------------------------------------------------------------------------
    def _event(self, stamp: bytes) -> tuple[int, bytes]:
        self.counter += 1
        h = self.prefix + f"{self.counter:016x}"
        head = f'{{"event_id":"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",'.encode()
        return self.counter, head + stamp + self.templates[self.counter % len(self.templates)]

    def _stamp(self) -> bytes:
        return b'"client_timestamp":"' + datetime.now(UTC).isoformat().encode() + b'",'

    def batch(self, student: Student, size: int) -> tuple[list[int], bytes]:
        stamp = self._stamp()
        ids, parts = [], []
        for _ in range(size):
            n, body = self._event(stamp)
            ids.append(n)
            parts.append(body)
        body = b'{"attempt_id":"' + student.attempt + b'","events":[' + b",".join(parts) + b"]}"
        return ids, self._request(student, b"/api/monitor/events/batch", body)

    def single(self, student: Student) -> tuple[list[int], bytes]:
        n, event = self._event(self._stamp())
        body = b'{"attempt_id":"' + student.attempt + b'",' + event[1:]
        return [n], self._request(student, b"/api/monitor/events", body)

    def _request(self, student: Student, path: bytes, body: bytes) -> bytes:
        return (b"POST " + path + b" HTTP/1.1\r\nHost: bench\r\n" + student.auth
                + b"Content-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body)

    # --- sending --------------------------------------------------------------------------
    async def send(self, channel: Channel, kind: str, ids: list[int], data: bytes,
                   due: float, give_up: float) -> None:
        """Send until acknowledged (retrying 503s and lost connections) or past give_up."""
        self.sent += len(ids)
        first = True
        while True:
            reused = False
            try:
                if channel.conn is None or channel.conn.transport is None:
                    channel.conn = await Connection.open(self.host, self.port)
                reused = channel.conn.answered > 0
                status, head, _ = await channel.conn.request(data, 30)
            except (TimeoutError, OSError, ConnectionError) as exc:
                status, head = 0, b""
                if channel.conn is not None:
                    channel.conn.close()
                channel.conn = None
                if reused and not isinstance(exc, TimeoutError):
                    # The server closed an idle keep-alive connection as we reused it
                    # (uvicorn does after 5 s): like any HTTP client, resend at once on a
                    # new connection. Not an error of the server's; counted apart.
                    self.stale += 1
                    continue
            self.status[str(status)] = self.status.get(str(status), 0) + 1
            if first:  # a retry is not a new request: the latency is to the first answer
                self.latency[kind].append(time.perf_counter() - due)
                first = False
            if 200 <= status < 300:
                self.acked.extend(ids)
                return
            self.errors += 1
            if status not in (0, 503) or time.perf_counter() > give_up:
                return
            await asyncio.sleep(_retry_after(head) if status == 503 else 0.2)

    async def connect_all(self) -> dict[str, Any]:
        sem = asyncio.Semaphore(50)

        async def one(student: Student) -> None:
            async with sem:
                if student.conn is None:
                    student.conn = await Connection.open(self.host, self.port)

        await asyncio.gather(*(one(s) for s in self.students))
        return {"connected": len(self.students)}

    async def open_loop(self, rate: float, batch: int, single_share: float,
                        duration: float) -> None:
        """Every student sends a batch each period and, half a period later, its singles.

        `single_share` of all events go as single-event posts; `rate` is events/s overall.
        """
        per_tick_single = batch * single_share / (1 - single_share) if batch else 1.0
        period = len(self.students) * (batch + per_tick_single) / rate
        start = time.perf_counter() + 0.05
        end = start + duration

        async def play(student: Student) -> None:
            due = start + self.rng.random() * period
            while due < end:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                if batch:
                    ids, data = self.batch(student, batch)
                    await self.send(student, "batch", ids, data, due, end + 5)
                singles = int(per_tick_single) + (self.rng.random() < per_tick_single % 1)
                if singles:
                    half = due + period / 2 if batch else due
                    await asyncio.sleep(max(0.0, half - time.perf_counter()))
                    for _ in range(singles):
                        ids, data = self.single(student)
                        await self.send(student, "single", ids, data, half, end + 5)
                due += period

        await asyncio.gather(*(play(s) for s in self.students))

    async def closed_loop(self, concurrency: int, duration: float) -> None:
        """`concurrency` clients each sending one single event after another."""
        end = time.perf_counter() + duration

        async def client(i: int) -> None:
            channel = Channel()  # its own connection: students rotate, clients do not share
            # Staggered starts, so that the first connections do not all land on whichever
            # server worker happens to be waiting in accept().
            await asyncio.sleep(i * 0.02)
            k = i
            while time.perf_counter() < end:
                student = self.students[k % len(self.students)]
                k += concurrency
                ids, data = self.single(student)
                await self.send(channel, "single", ids, data, time.perf_counter(), end + 5)
            if channel.conn is not None:
                channel.conn.close()

        await asyncio.gather(*(client(i) for i in range(concurrency)))

    async def command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        if cmd["op"] == "connect":
            return await self.connect_all()
        self.reset()
        started = time.perf_counter()
        if cmd["op"] == "open":
            await self.open_loop(cmd["rate"], cmd["batch"], cmd["single_share"],
                                 cmd["duration"])
        else:
            await self.closed_loop(cmd["concurrency"], cmd["duration"])
        elapsed = time.perf_counter() - started
        with open(cmd["acked_path"], "wb") as out:
            out.write(bytes.fromhex(self.prefix))
            self.acked.tofile(out)
        return {"elapsed": elapsed, "sent": self.sent, "acked": len(self.acked),
                "status": self.status, "errors": self.errors, "stale_resent": self.stale,
                "latency": self.latency}


async def main() -> None:
    config = json.loads(sys.stdin.readline())
    load = Load(config)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or json.loads(line)["op"] == "quit":
            return
        result = await load.command(json.loads(line))
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    uvloop.run(main())
