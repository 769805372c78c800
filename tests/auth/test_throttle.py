"""The login throttle: attempts reserved before bcrypt, per (account, IP) pair and per IP,
with growing delays; the same answers for unknown and existing accounts; throttled
registration; and what failed logins leave in the audit log."""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from tests.support import PASSWORD, Api, ServerProcess, unique

WRONG = "Wrong-guess-2026!"


def _ip() -> str:
    # Tests keep apart by sending from their own client address (127.0.0.1 is a trusted proxy).
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


def _from(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


def _register(api: Api) -> dict:
    username = unique("s")
    body = {"email": f"{username}@school.example", "username": username, "password": PASSWORD}
    response = api.post("/api/auth/register", json=body, headers=_from(_ip()))
    assert response.status_code == 201, response.text
    return body | {"id": response.json()["id"]}


def _login(api: Api, login: str, password: str, ip: str) -> httpx.Response:
    return api.post("/api/auth/login", json={"email": login, "password": password},
                    headers=_from(ip))


def _parallel(base_url: str, login: str, passwords: list[str], ip: str) -> list[int]:
    """Send the guesses at once, each on its own connection, released by one barrier.

    A shared test database may run out of connections under 30 at once: such an answer is a
    503 "database unavailable", which says nothing about the password (checked here, so a
    deadlock's 503 would still fail the test), and is left out of the statuses."""
    barrier = threading.Barrier(len(passwords))

    def guess(password: str) -> int:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            barrier.wait()
            response = client.post("/api/auth/login", headers=_from(ip),
                                   json={"email": login, "password": password})
            if response.status_code == 503:
                assert response.json()["detail"].startswith("database unavailable")
            return response.status_code

    with ThreadPoolExecutor(len(passwords)) as pool:
        statuses = list(pool.map(guess, passwords))
    assert statuses.count(503) < len(statuses) // 2, statuses
    return [s for s in statuses if s != 503]


# Small pools and no job worker: thirty parallel logins queue for ten connections instead of
# taking thirty from a database server that other test sessions share.
FRUGAL = {"DB_POOL_SIZE": "5", "DB_MAX_OVERFLOW": "5", "EMBEDDED_WORKER": "false"}


@pytest.fixture(scope="module", params=["postgresql", "redis"])
def throttled(request, server_env: dict[str, str], api: Api) -> Iterator[Api]:
    """A server with the default throttle policy, its counters in PostgreSQL or in Redis."""
    env = {k: v for k, v in server_env.items() if not k.startswith(("LOGIN_", "REGISTER_"))}
    env |= FRUGAL
    if request.param == "redis":
        if not os.environ.get("REDIS_URL"):
            pytest.skip("REDIS_URL is not set: the Redis throttle is not tested")
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    with ServerProcess(env) as proc, Api(proc.base_url) as client:
        yield client


def test_parallel_wrong_guesses_are_counted_before_bcrypt(throttled: Api) -> None:
    user = _register(throttled)
    ip = _ip()
    statuses = _parallel(str(throttled.base_url), user["email"], [WRONG] * 30, ip)
    evaluated = [s for s in statuses if s != 429]
    assert len(evaluated) <= 5, statuses
    assert set(evaluated) <= {401}
    # The attacker's budget is spent: the right password from there is not evaluated either.
    assert _login(throttled, user["email"], PASSWORD, ip).status_code == 429


def test_right_password_hidden_among_parallel_guesses_does_not_win_past_the_limit(
    throttled: Api,
) -> None:
    for _ in range(3):
        user = _register(throttled)
        guesses = [WRONG] * 29 + [PASSWORD]
        statuses = _parallel(str(throttled.base_url), user["email"], guesses, _ip())
        wrong, won = statuses.count(401), statuses.count(200)
        assert wrong + won + statuses.count(429) == len(statuses), statuses
        # The right password is evaluated only within the first five; if it was, its success
        # clears the pair (the owner's count starts again), which lets five more through.
        assert wrong + won <= 5 or (won == 1 and wrong <= 9), statuses
        # Once five wrong guesses are in, nothing more is evaluated, the right one included.
        user = _register(throttled)
        ip = _ip()
        for _ in range(5):
            assert _login(throttled, user["email"], WRONG, ip).status_code == 401
        statuses = _parallel(str(throttled.base_url), user["email"], [WRONG] * 9 + [PASSWORD], ip)
        assert set(statuses) == {429}


def test_strangers_do_not_lock_the_owner_out(throttled: Api, admin: dict) -> None:
    # An admin, the account an attacker most wants to keep its owner away from.
    username = unique("admin")
    body = {"email": f"{username}@school.example", "username": username, "password": PASSWORD,
            "role": "admin"}
    assert throttled.post("/api/auth/register", json=body,
                          headers=admin["headers"]).status_code == 201
    for attacker in (_ip(), _ip()):
        statuses = [_login(throttled, body["email"], WRONG, attacker).status_code
                    for _ in range(12)]
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    owner = _login(throttled, body["email"], PASSWORD, _ip())
    assert owner.status_code == 200, owner.text


def test_one_person_behind_a_school_nat_does_not_block_the_school(throttled: Api) -> None:
    nat = _ip()
    mistyped = [_register(throttled) for _ in range(4)]
    for user in mistyped:  # twenty failures, against four classmates' accounts
        for _ in range(5):
            assert _login(throttled, user["email"], WRONG, nat).status_code == 401
    classmate = _register(throttled)
    assert _login(throttled, classmate["email"], PASSWORD, nat).status_code == 200


def test_unknown_and_existing_accounts_answer_alike_and_throttled_hides_the_password(
    throttled: Api,
) -> None:
    user = _register(throttled)
    ghost = unique("ghost") + "@school.example"
    answers = {}
    for login in (user["email"], ghost):
        ip = _ip()
        answers[login] = [_login(throttled, login, WRONG, ip) for _ in range(7)]
        # Throttled: the right password gets the same answer as a wrong one.
        answers[login].append(_login(throttled, login, PASSWORD, ip))
    for a, b in zip(answers[user["email"]], answers[ghost]):
        assert a.status_code == b.status_code
        assert a.json() == b.json()
        assert ("retry-after" in a.headers) == ("retry-after" in b.headers)
    assert [a.status_code for a in answers[ghost]] == [401] * 5 + [429] * 3
    limited = answers[user["email"]][-1]
    assert 0 < int(limited.headers["retry-after"]) <= 900


def test_throttling_by_email_says_nothing_about_the_username(throttled: Api) -> None:
    """Were an account's pairs keyed by its id, failures by email would also throttle its
    username, confirming that both belong to one existing account."""
    user = _register(throttled)
    ip = _ip()
    for _ in range(5):
        assert _login(throttled, user["email"], WRONG, ip).status_code == 401
    assert _login(throttled, user["email"], WRONG, ip).status_code == 429
    by_name = throttled.post("/api/auth/login", headers=_from(ip),
                             json={"username": user["username"], "password": WRONG})
    assert by_name.status_code == 401


def test_login_takes_json_only_as_application_json(api: Api) -> None:
    user = _register(api)
    raw = json.dumps({"email": user["email"], "password": PASSWORD}).encode()
    for content_type in ("text/plain", "text/plain;charset=UTF-8", None):
        headers = {"content-type": content_type} if content_type else {}
        response = api.post("/api/auth/login", content=raw, headers=headers | _from(_ip()))
        assert response.status_code in (415, 422), (content_type, response.status_code)
        assert "access_token" not in response.text
    multipart = api.post("/api/auth/login", files={"username": (None, user["email"]),
                                                   "password": (None, PASSWORD)})
    assert multipart.status_code in (415, 422)
    ok = api.post("/api/auth/login", content=raw,
                  headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200
    form = api.post("/api/auth/login", data={"username": user["username"], "password": PASSWORD})
    assert form.status_code == 200


def test_failures_and_throttling_are_audited_without_the_typed_login(api: Api, db) -> None:
    ip = _ip()
    typed = "My-Secret-Pa55word!"  # a password typed into the username field
    for _ in range(7):
        api.post("/api/auth/login", json={"username": typed, "password": WRONG},
                 headers=_from(ip))
    rows = db.execute("SELECT action, details::text, details->>'login_hash' FROM audit_logs"
                      " WHERE host(ip_address) = %s ORDER BY created_at", (ip,)).fetchall()
    dump = db.execute("SELECT string_agg(details::text || coalesce(resource_id, ''), ' ')"
                      " FROM audit_logs").fetchone()[0]
    assert typed.lower() not in dump.lower()
    actions = [r[0] for r in rows]
    assert actions.count("login_failed") == 5 and "login_rate_limited" in actions
    # Keyed hashes still show an admin that the same unknown name was tried each time.
    assert len({r[2] for r in rows}) == 1 and rows[0][2]
    other = unique("ghost")
    api.post("/api/auth/login", json={"username": other, "password": WRONG}, headers=_from(ip))
    last = db.execute("SELECT details->>'login_hash' FROM audit_logs WHERE host(ip_address) = %s"
                      " ORDER BY created_at DESC LIMIT 1", (ip,)).fetchone()[0]
    assert last and last != rows[0][2]
    # An existing account's failure names the account, not the text typed.
    user = _register(api)
    api.post("/api/auth/login", json={"email": user["email"], "password": WRONG},
             headers=_from(ip))
    row = db.execute("SELECT resource_id FROM audit_logs WHERE action = 'login_failed'"
                     " AND resource_id = %s", (user["id"],)).fetchone()
    assert row is not None


@pytest.fixture(scope="module")
def quick(server_env: dict[str, str]) -> Iterator[Api]:
    """Short delays and small budgets, so growing delays and registration limits show in a test."""
    env = server_env | FRUGAL | {"LOGIN_DELAY_SECONDS": "1", "LOGIN_IP_FREE_FAILURES": "12",
                        "LOGIN_IP_DELAY_SECONDS": "1", "REGISTER_MAX_PER_IP": "3",
                        "REGISTER_WINDOW_SECONDS": "60"}
    with ServerProcess(env) as proc, Api(proc.base_url) as client:
        yield client


def test_delays_grow_with_each_further_failure(quick: Api) -> None:
    user = _register(quick)
    ip = _ip()
    for _ in range(5):
        assert _login(quick, user["email"], WRONG, ip).status_code == 401
    waits = []
    for _ in range(3):
        limited = _login(quick, user["email"], WRONG, ip)
        assert limited.status_code == 429
        waits.append(int(limited.headers["retry-after"]))
        assert waits[-1] <= 8, waits  # LOGIN_DELAY_SECONDS=1, doubling
        time.sleep(waits[-1] + 0.2)
        assert _login(quick, user["email"], WRONG, ip).status_code == 401
    assert waits[0] <= waits[1] < waits[2], waits
    # The right password after the wait logs in and clears the pair's count.
    time.sleep(int(_login(quick, user["email"], WRONG, ip).headers["retry-after"]) + 0.2)
    assert _login(quick, user["email"], PASSWORD, ip).status_code == 200
    assert _login(quick, user["email"], WRONG, ip).status_code == 401


def test_spraying_many_accounts_from_one_ip_is_throttled(quick: Api, db) -> None:
    ip = _ip()
    users = [_register(quick) for _ in range(4)]
    statuses = [_login(quick, u["email"], WRONG, ip).status_code
                for u in users for _ in range(4)]
    assert statuses[:12] == [401] * 12 and set(statuses[12:]) == {429}
    limited = _login(quick, users[0]["email"], PASSWORD, ip)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    # Another address is not affected.
    assert _login(quick, users[0]["email"], PASSWORD, _ip()).status_code == 200
    assert db.execute("SELECT count(*) FROM audit_logs WHERE action = 'login_rate_limited'"
                      " AND host(ip_address) = %s", (ip,)).fetchone()[0] >= 1


def test_registration_is_throttled_per_ip(quick: Api, admin: dict, db) -> None:
    ip = _ip()

    def register(headers: dict | None = None) -> httpx.Response:
        username = unique("r")
        return quick.post("/api/auth/register", headers=_from(ip) | (headers or {}),
                          json={"email": f"{username}@school.example", "username": username,
                                "password": PASSWORD})

    assert [register().status_code for _ in range(3)] == [201] * 3
    limited = register()
    assert limited.status_code == 429 and 0 < int(limited.headers["retry-after"]) <= 60
    assert register(admin["headers"]).status_code == 201  # an admin creating accounts is not
    assert register().status_code == 429
    assert _register(quick)  # another address registers
    assert db.execute("SELECT count(*) FROM audit_logs WHERE action = 'register_rate_limited'"
                      " AND host(ip_address) = %s", (ip,)).fetchone()[0] == 2


@pytest.fixture(scope="module")
def slow_hashes(server_env: dict[str, str]) -> Iterator[Api]:
    with ServerProcess(server_env | FRUGAL | {"BCRYPT_ROUNDS": "10"}) as proc, \
            Api(proc.base_url) as client:
        yield client


def test_unknown_and_existing_accounts_take_the_same_time(slow_hashes: Api) -> None:
    user = _register(slow_hashes)
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    for i in range(8):
        for kind, login in (("known", user["email"]), ("unknown", unique("g") + "@x.example")):
            ip = _ip()  # a fresh address each time, so nothing is throttled
            started = time.perf_counter()
            assert _login(slow_hashes, login, f"{WRONG}{i}", ip).status_code == 401
            timings[kind].append(time.perf_counter() - started)
    known, unknown = (statistics.median(timings[k]) for k in ("known", "unknown"))
    # bcrypt at cost 10 takes ~50 ms here, twice over on a failure: skipping it would show.
    assert abs(known - unknown) < 0.3 * max(known, unknown), (known, unknown)
