"""Read and check an OULAD directory: every problem names its file and line.

The five CSVs of the published dataset are read (studentVle and vle are ignored: Veritas has
no click stream). Values the dataset leaves out are empty (or '?', as some copies write them):
final exams without a date, registrations without dates, unmarked submissions and unknown IMD
bands all come through as None. Anything else that does not parse is an OuladFormatError.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

MISSING = ("", "?")
PRESENTATION = re.compile(r"^(\d{4})([BJ])$")
MODULE = re.compile(r"^[A-Za-z0-9]{1,16}$")  # it ends up in usernames and emails
# OULAD presentations are named by year and start month (B = February, J = October) but give
# no start day; the first of the month is day 0, so due and submission days map to dates.
START_MONTH = {"B": 2, "J": 10}
DEMOGRAPHICS = ("gender", "region", "highest_education", "imd_band", "age_band", "disability")

COLUMNS = {
    "courses.csv": ("code_module", "code_presentation", "module_presentation_length"),
    "assessments.csv": (
        "code_module", "code_presentation", "id_assessment", "assessment_type", "date", "weight",
    ),
    "studentInfo.csv": (
        "code_module", "code_presentation", "id_student", *DEMOGRAPHICS,
        "num_of_prev_attempts", "studied_credits", "final_result",
    ),
    "studentRegistration.csv": (
        "code_module", "code_presentation", "id_student", "date_registration",
        "date_unregistration",
    ),
    "studentAssessment.csv": (
        "id_assessment", "id_student", "date_submitted", "is_banked", "score",
    ),
}
OPTIONAL = {"courses.csv"}  # only adds each presentation's length to the exams' metadata


class OuladFormatError(ValueError):
    """A file that cannot be read as OULAD, with the place of the first problem."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        self.path, self.line = path, line
        where = f"{path}, line {line}" if line else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Assessment:
    id: str
    module: str
    presentation: str
    kind: str  # TMA (tutor-marked), CMA (computer-marked) or Exam
    day: int | None  # due day from the presentation start; None for most final exams
    weight: float


@dataclass(frozen=True, slots=True)
class Registration:
    """One student on one module-presentation: studentInfo and studentRegistration joined."""

    module: str
    presentation: str
    student: str
    demographics: dict[str, str | None]
    previous_attempts: int
    studied_credits: int
    final_result: str
    registration_day: int | None
    unregistration_day: int | None

    @property
    def cohort(self) -> str:
        return cohort_key(self.module, self.presentation)


@dataclass(frozen=True, slots=True)
class Result:
    assessment: str
    student: str
    day: int | None  # submission day; always present in the published data
    banked: bool  # carried over from the student's earlier attempt at the module
    score: float | None  # 0-100; None: submitted but not marked


@dataclass
class Dataset:
    lengths: dict[tuple[str, str], int | None]  # (module, presentation) -> length in days
    assessments: dict[str, Assessment]
    registrations: dict[tuple[str, str, str], Registration]
    results: list[Result]
    warnings: list[str] = field(default_factory=list)

    @property
    def presentations(self) -> list[tuple[str, str]]:
        """Every (module, presentation) named anywhere, oldest presentation first."""
        keys = set(self.lengths) | {(a.module, a.presentation) for a in self.assessments.values()}
        keys |= {r[:2] for r in self.registrations}
        return sorted(keys, key=lambda k: (k[1], k[0]))


def cohort_key(module: str, presentation: str) -> str:
    return f"{module}-{presentation}"


def presentation_start(presentation: str) -> datetime:
    """Return day 0 of a presentation code such as 2013J (the first of its start month, UTC)."""
    match = PRESENTATION.match(presentation)
    if not match:
        raise ValueError(f"not an OULAD presentation code: {presentation!r}")
    return datetime(int(match[1]), START_MONTH[match[2]], 1, tzinfo=UTC)


def read_dataset(directory: Path, progress: Callable[[str, int], None] | None = None) -> Dataset:
    """Return the checked contents of an OULAD directory; OuladFormatError on the first problem."""
    if not directory.is_dir():
        raise OuladFormatError(directory, None, "not a directory")
    for name in COLUMNS:  # a missing file is reported before any file is read
        if name not in OPTIONAL and not (directory / name).exists():
            raise OuladFormatError(directory / name, None, "file is missing")
    report = progress or (lambda _name, _rows: None)
    lengths: dict[tuple[str, str], int | None] = {}
    if (directory / "courses.csv").exists():
        for row in _rows(directory / "courses.csv"):
            course = (row.module(), row.presentation())
            row.unique(lengths, course)
            lengths[course] = row.int_or_none("module_presentation_length")
        report("courses.csv", len(lengths))

    assessments: dict[str, Assessment] = {}
    for row in _rows(directory / "assessments.csv"):
        item = Assessment(id=row.id("id_assessment"), module=row.module(),
                          presentation=row.presentation(), kind=row.text("assessment_type"),
                          day=row.int_or_none("date"), weight=row.number("weight", low=0))
        row.unique(assessments, item.id)
        assessments[item.id] = item
    report("assessments.csv", len(assessments))

    dates: dict[tuple[str, str, str], tuple[int, int | None, int | None]] = {}
    path = directory / "studentRegistration.csv"
    for row in _rows(path):
        key = (row.module(), row.presentation(), row.id("id_student"))
        row.unique(dates, key)
        dates[key] = (row.line, row.int_or_none("date_registration"),
                      row.int_or_none("date_unregistration"))
    report("studentRegistration.csv", len(dates))

    registrations: dict[tuple[str, str, str], Registration] = {}
    for row in _rows(directory / "studentInfo.csv"):
        key = (row.module(), row.presentation(), row.id("id_student"))
        row.unique(registrations, key)
        if key not in dates:
            row.fail(f"student {key[2]} on {cohort_key(*key[:2])} has no row in {path.name}")
        _, registered, unregistered = dates[key]
        registrations[key] = Registration(
            module=key[0], presentation=key[1], student=key[2],
            demographics={name: row.text_or_none(name) for name in DEMOGRAPHICS},
            previous_attempts=row.integer("num_of_prev_attempts", low=0),
            studied_credits=row.integer("studied_credits", low=0),
            final_result=row.text("final_result"),
            registration_day=registered, unregistration_day=unregistered,
        )
    for key, (line, _, _) in dates.items():
        if key not in registrations:
            raise OuladFormatError(path, line, f"student {key[2]} on {cohort_key(*key[:2])}"
                                               " has no row in studentInfo.csv")
    report("studentInfo.csv", len(registrations))

    results: list[Result] = []
    seen: dict[tuple[str, str], None] = {}
    unplaced: list[int] = []
    for row in _rows(directory / "studentAssessment.csv"):
        assessment = row.id("id_assessment")
        student = row.id("id_student")
        if assessment not in assessments:
            row.fail(f"id_assessment {assessment} is not in assessments.csv")
        row.unique(seen, (assessment, student))
        seen[(assessment, student)] = None
        banked = row.text("is_banked")
        if banked not in ("0", "1"):
            row.fail(f"is_banked must be 0 or 1, not {banked!r}")
        result = Result(assessment=assessment, student=student,
                        day=row.int_or_none("date_submitted"), banked=banked == "1",
                        score=row.number_or_none("score", low=0, high=100))
        owner = assessments[assessment]
        if (owner.module, owner.presentation, student) not in registrations:
            unplaced.append(row.line)  # a result nobody is registered for: no cohort to put it in
            continue
        results.append(result)
    report("studentAssessment.csv", len(results))
    data = Dataset(lengths, assessments, registrations, results)
    if unplaced:
        data.warnings.append(
            f"skipped {len(unplaced)} results of students not registered on the assessment's"
            f" presentation (studentAssessment.csv lines {_lines(unplaced)})")
    return data


class _Row:
    """One CSV record with typed accessors that fail with the file and line."""

    __slots__ = ("path", "line", "values")

    def __init__(self, path: Path, line: int, values: dict[str, str]) -> None:
        self.path, self.line, self.values = path, line, values

    def fail(self, message: str) -> NoReturn:
        raise OuladFormatError(self.path, self.line, message)

    def text_or_none(self, name: str) -> str | None:
        value = self.values[name].strip()
        return None if value in MISSING else value

    def text(self, name: str) -> str:
        value = self.text_or_none(name)
        if value is None:
            self.fail(f"{name} is empty")
        return value

    def module(self) -> str:
        value = self.text("code_module")
        if not MODULE.match(value):
            self.fail(f"code_module {value!r} is not 1-16 letters or digits")
        return value

    def presentation(self) -> str:
        value = self.text("code_presentation")
        if not PRESENTATION.match(value):
            self.fail(f"code_presentation {value!r} is not a year and B or J, like 2013J")
        return value

    def id(self, name: str) -> str:
        value = self.text(name)
        if not value.isdigit():
            self.fail(f"{name} {value!r} is not a positive whole number")
        return str(int(value))  # '011391' and '11391' are the same student

    def int_or_none(self, name: str) -> int | None:
        value = self.text_or_none(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            self.fail(f"{name} {value!r} is not a whole number")

    def integer(self, name: str, low: int | None = None) -> int:
        value = self.int_or_none(name)
        if value is None:
            self.fail(f"{name} is empty")
        if low is not None and value < low:
            self.fail(f"{name} {value} is below {low}")
        return value

    def number_or_none(self, name: str, low: float | None = None,
                       high: float | None = None) -> float | None:
        value = self.text_or_none(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{name} {value!r} is not a number")
        if (low is not None and number < low) or (high is not None and number > high):
            self.fail(f"{name} {value} is outside [{low}, {high}]")
        return number

    def number(self, name: str, low: float | None = None) -> float:
        value = self.number_or_none(name, low=low)
        if value is None:
            self.fail(f"{name} is empty")
        return value

    def unique(self, seen: Container[object], key: str | tuple[str, ...]) -> None:
        if key in seen:
            shown = key if isinstance(key, str) else ", ".join(key)
            self.fail(f"duplicate row for {shown}")


def _rows(path: Path) -> Iterator[_Row]:
    if not path.exists():
        raise OuladFormatError(path, None, "file is missing")
    # utf-8-sig: a spreadsheet's byte-order mark must not become part of the first column name.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise OuladFormatError(path, 1, "file is empty (no header)") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise OuladFormatError(path, 1, f"unreadable: {exc}") from None
        missing = [name for name in COLUMNS[path.name] if name not in header]
        if missing:
            raise OuladFormatError(path, 1, f"missing column(s) {', '.join(missing)}"
                                            f" (header: {', '.join(header)})")
        try:
            for values in reader:
                if not values or values == [""]:
                    continue  # blank lines, e.g. a trailing one
                if len(values) != len(header):
                    raise OuladFormatError(path, reader.line_num, f"{len(values)} fields where"
                                                                  f" the header has {len(header)}")
                yield _Row(path, reader.line_num, dict(zip(header, values)))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise OuladFormatError(path, reader.line_num + 1, f"unreadable: {exc}") from None


def _lines(lines: list[int]) -> str:
    shown = ", ".join(map(str, lines[:5]))
    return shown + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
