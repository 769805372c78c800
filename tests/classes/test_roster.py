"""Roster imports: accounts made and enrolled, idempotent, per-line errors, a malformed file
changes nothing, parallel imports make no duplicates, and the set-password links."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from tests.support import PASSWORD, Api, unique

HEADER = "email,username,full_name,enrollment_id"


def _people(n: int) -> list[tuple[str, str]]:
    names = [unique("pupil") for _ in range(n)]
    return [(f"{name}@school.example", name) for name in names]


def _csv(rows: list[tuple[str, ...]], header: str = HEADER) -> str:
    return header + "\n" + "".join(",".join(row) + "\n" for row in rows)


def _token(link: str) -> str:
    fragment = urlsplit(link).fragment  # "/set-password?token=..."
    path, _, query = fragment.partition("?")
    assert path == "/set-password"
    return parse_qs(query)["token"][0]


def _count(db, emails: list[str]) -> int:
    return db.execute("SELECT count(*) FROM users WHERE email = ANY(%s)", (emails,)).fetchone()[0]


def _students(api: Api, teacher: dict, klass: dict) -> set[str]:
    detail = api.get(f"/api/teacher/classes/{klass['id']}", headers=teacher["headers"])
    return {s["email"] for s in detail.json()["students"]}


def test_a_roster_creates_enrols_and_is_idempotent(api: Api, db) -> None:
    teacher = api.user("teacher")
    klass = api.klass(teacher)
    existing = api.user(enrollment_id="OLD-1")
    (a_email, a_name), (b_email, b_name) = _people(2)
    text = _csv([(a_email, a_name, "Ada Lovelace", "S-100"),
                 (existing["email"], existing["username"], "Ignored Name", "IGNORED"),
                 (b_email.upper(), b_name, '"Byron, George"', "")])
    first = api.roster(teacher, klass, text)
    assert first.status_code == 200, first.text
    report = first.json()
    assert (report["created"], report["enrolled"], report["already"]) == (2, 3, 0)
    assert report["errors"] == []
    links = {link["email"]: link for link in report["setup_links"]}
    assert set(links) == {a_email, b_email}
    assert links[a_email]["line"] == 2 and links[a_email]["username"] == a_name
    assert links[a_email]["setup_link"].startswith(str(api.base_url))
    assert _students(api, teacher, klass) == {a_email, b_email, existing["email"]}
    members = {s["email"]: s for s in api.get(f"/api/teacher/classes/{klass['id']}",
                                              headers=teacher["headers"]).json()["students"]}
    assert members[a_email]["full_name"] == "Ada Lovelace"
    assert members[a_email]["enrollment_id"] == "S-100"
    assert members[b_email]["full_name"] == "Byron, George"
    # An existing account is enrolled as it is: the roster does not rewrite it.
    assert members[existing["email"]]["full_name"] is None
    assert members[existing["email"]]["enrollment_id"] == "OLD-1"

    again = api.roster(teacher, klass, text)
    assert again.status_code == 200
    assert again.json() == {"created": 0, "enrolled": 0, "already": 3, "errors": [],
                            "setup_links": []}
    assert _count(db, [a_email, b_email]) == 2
    assert db.execute("SELECT count(*) FROM password_links WHERE user_id = %s",
                      (links[a_email]["user_id"],)).fetchone()[0] == 1
    # The same people on a second class: enrolled there, no account made.
    other = api.klass(teacher)
    there = api.roster(teacher, other, text).json()
    assert (there["created"], there["enrolled"], there["setup_links"]) == (0, 3, [])

    # Audited: the import, and each account made with it; no token anywhere in the log.
    actions = dict(db.execute(
        "SELECT action, count(*) FROM audit_logs WHERE user_id = %s GROUP BY action",
        (teacher["id"],)).fetchall())
    assert actions["import_roster"] == 3 and actions["create_user"] == 2
    made = db.execute("SELECT details FROM audit_logs WHERE action = 'create_user'"
                      " AND resource_id = %s", (links[a_email]["user_id"],)).fetchone()[0]
    assert made["class_id"] == klass["id"] and made["role"] == "student"
    dump = db.execute("SELECT string_agg(details::text, ' ') FROM audit_logs").fetchone()[0]
    for link in links.values():
        assert _token(link["setup_link"]) not in dump


def test_the_set_password_link_is_one_time(api: Api, db) -> None:
    teacher = api.user("teacher")
    klass = api.klass(teacher)
    [(email, name)] = _people(1)
    report = api.roster(teacher, klass, _csv([(email, name, "", "")])).json()
    token = _token(report["setup_links"][0]["setup_link"])
    # No password until the student sets one: every login fails like a wrong password.
    for guess in (PASSWORD, "", "no-such-user-password"):
        refused = api.post("/api/auth/login", json={"email": email, "password": guess})
        assert refused.status_code in (401, 422), refused.text
    weak = api.post("/api/auth/set-password", json={"token": token, "password": "password"})
    assert weak.status_code == 422  # as registration says; the link still works after
    done = api.post("/api/auth/set-password", json={"token": token, "password": PASSWORD})
    assert done.status_code == 204 and done.content == b""
    me = api.login(email)
    assert me["username"] == name and me["role"] == "student"
    again = api.post("/api/auth/set-password", json={"token": token, "password": PASSWORD + "!"})
    assert again.status_code == 400
    assert api.login(email)["id"] == me["id"]  # the password did not change
    row = db.execute("SELECT details FROM audit_logs WHERE action = 'set_password'"
                     " AND user_id = %s", (me["id"],)).fetchone()
    assert row is not None and row[0]["purpose"] == "setup" and token not in str(row[0])
    stored = db.execute("SELECT token_hash FROM password_links WHERE user_id = %s",
                        (me["id"],)).fetchone()[0]
    assert token.encode() not in bytes(stored) and len(bytes(stored)) == 32


def test_an_expired_link_is_refused(api: Api, db) -> None:
    teacher = api.user("teacher")
    klass = api.klass(teacher)
    [(email, name)] = _people(1)
    link = api.roster(teacher, klass, _csv([(email, name, "", "")])).json()["setup_links"][0]
    from datetime import datetime, timedelta

    expires = datetime.fromisoformat(link["expires_at"])
    created = db.execute("SELECT created_at FROM password_links WHERE user_id = %s",
                         (link["user_id"],)).fetchone()[0]
    assert timedelta(days=7) <= expires - created < timedelta(days=7, minutes=1)
    db.execute("UPDATE password_links SET expires_at = now() - interval '1 second'"
               " WHERE user_id = %s", (link["user_id"],))
    response = api.post("/api/auth/set-password",
                        json={"token": _token(link["setup_link"]), "password": PASSWORD})
    assert response.status_code == 400


@pytest.mark.parametrize("body", [{"token": "made-up", "password": PASSWORD},
                                  {"token": "", "password": PASSWORD}, {"token": "x"},
                                  {"password": PASSWORD}, {"token": "x" * 201, "password": "p"}])
def test_set_password_refuses_junk(api: Api, body: dict) -> None:
    response = api.post("/api/auth/set-password", json=body)
    assert response.status_code == (400 if body.get("token") == "made-up" else 422)


def test_lines_in_error_are_reported_and_the_rest_imported(api: Api, db) -> None:
    teacher, colleague = api.user("teacher"), api.user("teacher")
    klass = api.klass(teacher)
    s1, s2, s3, other = api.user(), api.user(), api.user(), api.user()
    fresh = _people(3)
    rows = [
        fresh[0] + ("Good One", "G1"),                              # line 2: fine
        ("not-an-email", "someone", "", ""),                        # 3
        (fresh[1][0], "", "No Username", ""),                       # 4: new, no username
        (colleague["email"], colleague["username"], "", ""),         # 5: a teacher
        (s1["email"], other["username"], "", ""),                    # 6: two accounts
        (s2["email"], unique("nobody"), "", ""),                     # 7: not its username
        (unique("x") + "@school.example", s3["username"], "", ""),   # 8: username taken
        (fresh[0][0], unique("twin"), "", ""),                       # 9: same as line 2
        ("a@b.example", "bad name!", "", ""),                        # 10
        (fresh[2][0], fresh[2][1], "x" * 201, ""),                   # 11: too long
        (s3["email"], "", "", ""),                                   # 12: existing, by email
    ]
    text = _csv(rows) + "only,three,fields\n"                       # 13
    report = api.roster(teacher, klass, text).json()
    lines = {e["line"]: e["message"] for e in report["errors"]}
    assert sorted(lines) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 13], report
    assert "email" in lines[3] and "username is missing" in lines[4]
    assert "not a student" in lines[5] and "two different accounts" in lines[6]
    assert "another username" in lines[7] and "taken" in lines[8]
    assert "line 2" in lines[9] and "4 fields" in lines[13]
    assert (report["created"], report["enrolled"]) == (1, 2)
    assert _students(api, teacher, klass) == {fresh[0][0], s3["email"]}
    assert _count(db, [fresh[1][0], fresh[2][0]]) == 0
    for secret in ("password", "token"):
        assert secret not in str(report["errors"])


MALFORMED = {
    "wrong header": (b"mail,user,name,id\nx@school.example,x1,,\n"),
    "missing column": (b"email,username,full_name\nx@school.example,x1,\n"),
    "not utf-8": (HEADER + "\nj\xf6rg@school.example,jorg,J\xf6rg,\n").encode("latin-1"),
    "nul bytes": (HEADER + "\nx@school.example,x1,\x00,\n").encode(),
    "unterminated quote": (HEADER + '\nx@school.example,x1,"Unclosed,\n').encode(),
    "json": b'{"email": "x@school.example"}',
    "empty": b"",
    "binary": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_file_changes_nothing(api: Api, db, kind: str) -> None:
    teacher = api.user("teacher")
    klass = api.klass(teacher)
    student = api.user()
    [(email, name)] = _people(1)
    good = f"{email},{name},,\n{student['email']},,,\n".encode()
    data = MALFORMED[kind]
    if kind not in ("empty", "binary", "json"):
        data = data + good  # good lines after the flaw are not imported either
    response = api.roster(teacher, klass, data)
    assert response.status_code == 422, response.text
    assert "not imported" in response.json()["detail"]
    assert _count(db, [email]) == 0 and _students(api, teacher, klass) == set()
    assert db.execute("SELECT count(*) FROM audit_logs WHERE action = 'import_roster'"
                      " AND resource_id = %s", (klass["id"],)).fetchone()[0] == 0


def test_transport_limits(api: Api, db) -> None:
    teacher = api.user("teacher")
    klass = api.klass(teacher)
    [(email, name)] = _people(1)
    text = _csv([(email, name, "", "")])
    for content_type in ("application/json", "text/plain", "multipart/form-data",
                         "text/csv; charset=latin-1"):
        assert api.roster(teacher, klass, text, content_type).status_code == 415, content_type
    assert api.roster(teacher, klass, text, "text/csv; charset=UTF-8").status_code == 200
    huge = HEADER + "\n" + "".join(f"{unique('p')}@school.example,{unique('p')},,\n"
                                   for _ in range(40_000))
    assert len(huge) > 1024 * 1024
    assert api.roster(teacher, klass, huge).status_code == 413
    many = _csv([(f"{unique('m')}@school.example", unique("m"), "", "") for _ in range(5_001)])
    response = api.roster(teacher, klass, many)
    assert response.status_code == 422 and "5000 rows" in response.json()["detail"]
    assert db.execute("SELECT count(*) FROM users WHERE email LIKE 'm%%@school.example'"
                      " AND created_at > now() - interval '1 minute'").fetchone()[0] == 0
    student = api.user()
    assert api.roster(student, klass, text).status_code == 403
    assert api.post(f"/api/teacher/classes/{klass['id']}/roster", content=text,
                    headers={"Content-Type": "text/csv"}).status_code == 401


def test_a_spreadsheets_roster_reads_as_written(api: Api) -> None:
    # Excel's "CSV UTF-8": a byte-order mark, CRLF line ends, columns in another order,
    # header names in capitals, blank lines at the end.
    teacher = api.user("teacher")
    klass = api.klass(teacher)
    [(email, name)] = _people(1)
    text = ("\ufeffUsername,Email,Full_Name,Enrollment_ID\r\n"
            f"{name},{email},Zoë Ångström,Z-9\r\n\r\n,,,\r\n")
    report = api.roster(teacher, klass, text.encode()).json()
    assert report["created"] == 1 and report["errors"] == [], report
    members = api.get(f"/api/teacher/classes/{klass['id']}", headers=teacher["headers"]).json()
    assert members["students"][0]["full_name"] == "Zoë Ångström"


def test_parallel_imports_of_one_file_make_each_account_once(api: Api, db) -> None:
    teacher = api.user("teacher")
    first, second = api.klass(teacher), api.klass(teacher)
    people = _people(30)
    text = _csv([(email, name, "", "") for email, name in people])
    results: list = []

    def send(klass: dict) -> None:
        results.append(api.roster(teacher, klass, text))

    threads = [threading.Thread(target=send, args=(k,)) for k in [first] * 4 + [second] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    reports = [r.json() for r in results]
    assert sum(r["created"] for r in reports) == 30
    assert sum(len(r["setup_links"]) for r in reports) == 30
    assert sum(r["enrolled"] for r in reports) == 60  # 30 in each class, once
    assert all(r["errors"] == [] for r in reports)
    assert _count(db, [email for email, _ in people]) == 30
    assert _students(api, teacher, first) == _students(api, teacher, second) == {
        email for email, _ in people}
