"""A class roster file read into rows: the file as a whole, then each line on its own.

A file that cannot be read as a roster at all (not UTF-8, not CSV, the wrong header, too many
rows) raises Malformed and nothing is imported; a line that is wrong on its own (a bad email,
a missing field, the same person twice) becomes a LineError and the other lines still count.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

HEADER = ("email", "username", "full_name", "enrollment_id")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")  # as registration checks it (auth.schemas)
USERNAME = re.compile(r"^[A-Za-z0-9_.-]{3,64}$")
LIMITS = {"email": 254, "full_name": 200, "enrollment_id": 100}


class Malformed(ValueError):
    """The file is not a roster; the message says why."""


@dataclass(frozen=True)
class Row:
    line: int
    email: str  # lower case
    username: str | None
    full_name: str | None
    enrollment_id: str | None


@dataclass(frozen=True)
class LineError:
    line: int
    message: str


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")  # a spreadsheet's byte-order mark is no part of it
    except UnicodeDecodeError:
        raise Malformed("the file is not UTF-8 text; save the roster as CSV UTF-8") from None
    if "\x00" in text:
        raise Malformed("the file is not a CSV text file (it holds NUL bytes)")
    return text


def _columns(header: list[str]) -> list[str]:
    names = [name.strip().lower() for name in header]
    if sorted(names) != sorted(HEADER):
        raise Malformed(f"the first line must be the header {','.join(HEADER)}"
                        f" (found {','.join(names)[:200]})")
    return names


def _row(line: int, values: dict[str, str]) -> Row | str:
    """The row, or what is wrong with it."""
    for field, limit in LIMITS.items():
        if len(values[field]) > limit:
            return f"{field} is longer than {limit} characters"
    email = values["email"].lower()
    if not email:
        return "email is missing"
    if not EMAIL.match(email):
        return f"email {email!r} is not a valid email address"
    username = values["username"] or None
    if username is not None and not USERNAME.match(username):
        return ("username must be 3 to 64 characters: letters, digits, '_', '.' or '-'"
                f" (found {username[:64]!r})")
    return Row(line, email, username, values["full_name"] or None,
               values["enrollment_id"] or None)


def parse(data: bytes, max_rows: int) -> tuple[list[Row], list[LineError]]:
    """The roster's rows and the errors of its lines, numbered as a text editor shows them."""
    reader = csv.reader(io.StringIO(_decode(data), newline=""), strict=True)
    rows: list[Row] = []
    errors: list[LineError] = []
    columns: list[str] | None = None
    seen_email: dict[str, int] = {}
    seen_username: dict[str, int] = {}
    try:
        while True:
            line = reader.line_num + 1  # where the next record starts
            record = next(reader, None)
            if record is None:
                break
            if not any(field.strip() for field in record):
                continue  # blank lines (a spreadsheet's trailing ones, say) say nothing
            if columns is None:
                columns = _columns(record)
                continue
            if len(rows) + len(errors) >= max_rows:
                raise Malformed(f"the roster has more than {max_rows} rows; split it")
            if len(record) != len(HEADER):
                errors.append(LineError(line, f"expected {len(HEADER)} fields"
                                              f" ({','.join(HEADER)}), found {len(record)}"))
                continue
            row = _row(line, {c: v.strip() for c, v in zip(columns, record, strict=True)})
            if isinstance(row, str):
                errors.append(LineError(line, row))
                continue
            twin = seen_email.get(row.email) or (
                seen_username.get(row.username.lower()) if row.username else None)
            if twin is not None:
                errors.append(LineError(line, f"the same email or username as line {twin}"))
                continue
            seen_email[row.email] = line
            if row.username:
                seen_username[row.username.lower()] = line
            rows.append(row)
    except csv.Error as exc:
        raise Malformed(f"the file is not well-formed CSV near line {reader.line_num}: {exc}"
                        ) from None
    if columns is None:
        raise Malformed(f"the file is empty; its first line must be the header"
                        f" {','.join(HEADER)}")
    return rows, errors
