"""`veritas serve` as an operator runs it: the embedded database in a data dir of its own,
what it prints, how it stops, and what the server it starts does at the socket."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from tests.support import Api, embedded_root, free_port

HEADER_TIMEOUT = 2.0
# Settings the suite exports that a first run on a fresh machine does not have.
NOT_ON_A_FRESH_MACHINE = ("DATABASE_URL", "TEST_DATABASE_URL", "JWT_SECRET", "REDIS_URL",
                          "XDG_RUNTIME_DIR", "DEBUG", "LOG_LEVEL", "METRICS_TOKEN")


class Serve:
    """`veritas serve` in its own process, its output kept in a file."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "veritas.cli", "serve", "--port", str(self.port), *args],
                env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop(signal.SIGKILL)
        raise AssertionError("veritas serve did not answer /healthz:\n" + self.output())

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)


def fresh_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_ON_A_FRESH_MACHINE}
    return env | {"VERITAS_DATA_DIR": str(data_dir), "BCRYPT_ROUNDS": "4", **extra}


def postgres_of(data_dir: Path) -> list[psutil.Process]:
    """Running postgres processes whose command line names this data dir."""
    pg_dir = str((data_dir / "pg").resolve())
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and pg_dir in cmdline:
            found.append(proc)
    return found


def stop_leftover_postgres(data_dir: Path) -> None:
    """Never leave a postgres behind when a test fails (by the PID in its own PID file)."""
    pid_file = data_dir / "pg" / "postmaster.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
        except (ProcessLookupError, ValueError):
            pass


def wait_gone(data_dir: Path, seconds: float = 20) -> list[psutil.Process]:
    deadline = time.monotonic() + seconds
    while (left := postgres_of(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture(scope="module")
def first_run() -> Iterator[tuple[Serve, Path]]:
    """A first `veritas serve` on a fresh machine: empty embedded database, no secret."""
    with embedded_root() as root:
        yield from _first_run(root)


def _first_run(root: Path) -> Iterator[tuple[Serve, Path]]:
    data = root / "data"
    env = fresh_env(data, HEADER_READ_TIMEOUT_SECONDS=str(HEADER_TIMEOUT))
    server = Serve(env, root / "serve.log")
    try:
        yield server, data
        # Ctrl-C stops the embedded PostgreSQL too.
        server.stop(signal.SIGINT)
        assert wait_gone(data) == []
    finally:
        server.stop(signal.SIGKILL)
        stop_leftover_postgres(data)


def test_serve_says_where_it_serves_and_the_next_step_without_warnings(
    first_run: tuple[Serve, Path],
) -> None:
    server, _ = first_run
    out = server.output()
    assert f"serving on {server.base_url}" in out, out
    assert f"{server.base_url}/docs" in out
    # No users yet: the two ways to get some.
    assert "veritas demo" in out and "veritas create-admin" in out, out
    assert "Warning" not in out and "Traceback" not in out, out


def test_demo_prints_no_warning_and_its_jobs_do_not_flood_the_server_log(
    first_run: tuple[Serve, Path],
) -> None:
    server, data = first_run
    env = fresh_env(data)
    demo = subprocess.run([sys.executable, "-m", "veritas.cli", "demo", "--students", "3",
                           "--password", "Demo-pass-2026!"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    assert "Warning" not in demo.stderr, demo.stderr
    assert re.search(r"^a student: \S+$", demo.stdout, re.M), demo.stdout
    # The server's worker analyses every demo attempt, one job each.
    url = f"postgresql://postgres:@/veritas?host={(data / 'pg').resolve()}"
    with psycopg.connect(url, autocommit=True) as db:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            waiting = db.execute("SELECT count(*) FROM exam_attempts a LEFT JOIN"
                                 " behavior_analysis b ON b.exam_attempt_id = a.id"
                                 " WHERE b.id IS NULL").fetchone()[0]
            if waiting == 0:
                break
            time.sleep(1)
    assert waiting == 0
    time.sleep(2)  # let the remaining jobs run
    out = server.output()
    assert "procrastinate" not in out, out[-3000:]


def test_a_partial_request_line_is_closed_within_the_header_timeout(
    first_run: tuple[Serve, Path],
) -> None:
    server, _ = first_run
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
    partial = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
    for sock in partial:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: loc")  # and never the rest
    started = time.monotonic()
    for sock in silent + partial:
        sock.settimeout(HEADER_TIMEOUT + 3 - (time.monotonic() - started))
        try:
            assert sock.recv(1024) == b""  # closed by the server
        except TimeoutError:
            pytest.fail(f"a connection was still open {HEADER_TIMEOUT + 3} s after it opened")
        finally:
            sock.close()
    # A whole request on a kept-alive connection, sent slowly but within the limit, is served.
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(HEADER_TIMEOUT / 2)
        sock.sendall(b"Host: localhost\r\n\r\n")
        sock.settimeout(5)
        assert _response(sock).startswith(b"HTTP/1.1 200")
        time.sleep(HEADER_TIMEOUT * 0.75)  # idle between requests is keep-alive's business
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200")


def _response(sock: socket.socket) -> bytes:
    """One whole /healthz answer (its head and body may come in separate packets)."""
    data = b""
    while not data.endswith(b'{"status":"ok"}'):
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def test_sigterm_stops_the_embedded_postgresql_too() -> None:
    with embedded_root() as root:
        data = root / "data"
        server = Serve(fresh_env(data), root / "serve.log")
        try:
            assert postgres_of(data), "the embedded PostgreSQL should run while serving"
            assert server.stop(signal.SIGTERM) == 0, server.output()
            assert wait_gone(data) == [], "the embedded PostgreSQL outlived veritas serve"
        finally:
            server.stop(signal.SIGKILL)
            stop_leftover_postgres(data)


def test_debug_without_a_secret_shares_one_key_across_workers(
    tmp_path: Path, server_env: dict[str, str], api: Api,
) -> None:
    env = {k: v for k, v in server_env.items() if k != "JWT_SECRET"} | {
        "DEBUG": "true", "EMBEDDED_WORKER": "false"}
    server = Serve(env, tmp_path / "serve.log", "--workers", "2")
    try:
        with Api(server.base_url) as client:
            student = client.user("student")
            # A new connection each time, so the kernel hands them to both workers.
            statuses = [httpx.get(server.base_url + "/api/auth/me", headers=student["headers"],
                                  timeout=10).status_code for _ in range(20)]
        assert statuses == [200] * 20, statuses
    finally:
        server.stop()
