"""Exam, question and attempt bodies; questions are validated and scored here."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from veritas.db.base import AttemptStatus, GradingStatus, ShowResults
from veritas.exams import rules
from veritas.exams.models import Exam, ExamAccommodation, ExamAttempt
from veritas.exams.settings import ExamSettings
from veritas.json_limits import StorableObject
from veritas.monitoring.limits import HEARTBEAT_SECONDS

Text = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(max_length=20_000)]
Option = Annotated[str, Field(min_length=1, max_length=1_000)]
ClassIds = Annotated[list[uuid.UUID], Field(max_length=100)]
MaxAttempts = Annotated[int, Field(ge=1, le=1_000, description="null: unlimited")]


class QuestionType(str, enum.Enum):
    single_choice = "single_choice"
    multiple_choice = "multiple_choice"
    short_text = "short_text"
    essay = "essay"


CHOICE_TYPES = (QuestionType.single_choice, QuestionType.multiple_choice)


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        default_factory=lambda: uuid.uuid4().hex[:12]
    )
    type: QuestionType
    prompt: Annotated[str, Field(min_length=1, max_length=20_000)]
    points: Annotated[float, Field(gt=0, le=10_000)] = 1.0
    options: Annotated[list[Option], Field(max_length=50)] | None = None
    correct: str | list[str] | None = None

    @model_validator(mode="after")
    def _check_key(self) -> Question:
        if self.type in CHOICE_TYPES:
            if not self.options or len(self.options) < 2:
                raise ValueError(f"question {self.id}: choice questions need at least 2 options")
            if len(set(self.options)) != len(self.options):
                raise ValueError(f"question {self.id}: options must be distinct")
        elif self.options:
            raise ValueError(f"question {self.id}: only choice questions have options")
        if self.type is QuestionType.single_choice:
            if not isinstance(self.correct, str) or self.correct not in (self.options or []):
                raise ValueError(f"question {self.id}: correct must be one of the options")
        elif self.type is QuestionType.multiple_choice:
            if not isinstance(self.correct, list) or not self.correct:
                raise ValueError(f"question {self.id}: correct must be a list of options")
            if not set(self.correct) <= set(self.options or []):
                raise ValueError(f"question {self.id}: correct options must be among the options")
        elif self.type is QuestionType.short_text:
            accepted = [self.correct] if isinstance(self.correct, str) else (self.correct or [])
            if not accepted or not all(a.strip() for a in accepted):
                raise ValueError(f"question {self.id}: short_text needs accepted answers")
            self.correct = accepted
        elif self.correct is not None:
            raise ValueError(f"question {self.id}: essays have no answer key")
        return self


def earned_points(question: dict[str, Any], answer: Any) -> float:
    """All or nothing per objective question; essays earn 0 until a teacher grades them."""
    kind, correct = question["type"], question.get("correct")
    if kind == QuestionType.single_choice:
        ok = isinstance(answer, str) and answer == correct
    elif kind == QuestionType.multiple_choice:
        ok = isinstance(answer, list) and all(isinstance(a, str) for a in answer) and set(
            answer
        ) == set(correct or [])
    elif kind == QuestionType.short_text:
        accepted = {a.strip().lower() for a in correct or []}
        ok = isinstance(answer, str) and answer.strip().lower() in accepted
    else:
        ok = False
    return float(question["points"]) if ok else 0.0


def student_view(question: dict[str, Any]) -> dict[str, Any]:
    """A question as a student sees it: never the answer key."""
    return {k: v for k, v in question.items() if k != "correct"}


class ExamFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Text
    subject: Text
    max_score: Annotated[float, Field(gt=0, le=1_000_000)]
    duration_minutes: Annotated[int, Field(gt=0, le=24 * 60)]
    passing_score: Annotated[float, Field(ge=0)]
    description: LongText | None = None
    topic: Annotated[str, Field(max_length=200)] | None = None
    is_published: bool = False
    enable_monitoring: bool = True
    enable_integrity_analysis: bool = True
    questions: Annotated[list[Question], Field(max_length=500)] = []
    # Checked against ExamSettings; keys Veritas does not read are kept as sent.
    metadata: ExamSettings = ExamSettings()
    due_at: datetime | None = None
    show_results: ShowResults = Field(
        ShowResults.never,
        description="when students see per-question points, feedback and the correct answers:"
                    " `never` (totals only), `after_submit`, or `after_close` (once the exam"
                    " takes no more starts and no attempt of it is in progress)")
    # Empty: open to every student; else only to the students of these classes (the caller's).
    class_ids: ClassIds = []
    opens_at: AwareDatetime | None = Field(
        None, description="students may start the exam from then on (null: at once)")
    closes_at: AwareDatetime | None = Field(
        None, description="no attempt starts from then on, and none runs past it (plus the"
                          " student's extra time); after opens_at (null: never closes)")
    max_attempts: MaxAttempts | None = None
    shuffle_questions: bool = Field(False, description="each attempt its own question order")
    shuffle_options: bool = Field(False, description="each attempt its own option order")

    @model_validator(mode="after")
    def _check_window(self) -> ExamFields:
        check_window(self.opens_at, self.closes_at)
        return self


def check_window(opens_at: datetime | None, closes_at: datetime | None) -> None:
    if opens_at is not None and closes_at is not None and closes_at <= opens_at:
        raise ValueError("closes_at must be after opens_at")


def check_exam(max_score: float, passing_score: float, questions: list[dict[str, Any]]) -> None:
    """Cross-field rules shared by create and edit."""
    if passing_score > max_score:
        raise ValueError("passing_score cannot exceed max_score")
    ids = [q["id"] for q in questions]
    if len(set(ids)) != len(ids):
        raise ValueError("question ids must be unique within an exam")
    total = sum(float(q["points"]) for q in questions)
    if total > max_score + 1e-9:
        raise ValueError(f"questions are worth {total:g} points, more than max_score")


class ExamCreate(ExamFields):
    pass


class ExamPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Text | None = None
    subject: Text | None = None
    max_score: Annotated[float, Field(gt=0, le=1_000_000)] | None = None
    duration_minutes: Annotated[int, Field(gt=0, le=24 * 60)] | None = None
    passing_score: Annotated[float, Field(ge=0)] | None = None
    description: LongText | None = None
    topic: Annotated[str, Field(max_length=200)] | None = None
    is_published: bool | None = None
    enable_monitoring: bool | None = None
    enable_integrity_analysis: bool | None = None
    questions: Annotated[list[Question], Field(max_length=500)] | None = None
    metadata: ExamSettings | None = None
    due_at: datetime | None = None
    show_results: ShowResults | None = None
    class_ids: ClassIds | None = None
    opens_at: AwareDatetime | None = None
    closes_at: AwareDatetime | None = None
    max_attempts: MaxAttempts | None = None
    shuffle_questions: bool | None = None
    shuffle_options: bool | None = None


class ExamOut(BaseModel):
    """The teacher's view of an exam, answer keys included."""

    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    id: uuid.UUID
    creator_id: uuid.UUID
    title: str
    description: str | None
    subject: str
    topic: str | None
    max_score: float
    duration_minutes: int
    passing_score: float
    is_published: bool
    enable_monitoring: bool
    enable_integrity_analysis: bool
    questions: list[dict[str, Any]]
    # The ORM attribute is metadata_ (SQLAlchemy keeps `metadata` for itself); a body built
    # from the model is read back by the field's own name (validate_by_name).
    metadata: dict[str, Any] = Field(validation_alias="metadata_")
    due_at: datetime | None
    show_results: ShowResults
    # The classes whose students may see the exam; empty: every student.
    class_ids: list[uuid.UUID]
    opens_at: datetime | None
    closes_at: datetime | None
    max_attempts: int | None
    shuffle_questions: bool
    shuffle_options: bool
    created_at: datetime
    updated_at: datetime


class AvailableExamOut(BaseModel):
    """The student's view of a published exam: no creator, no questions, no keys."""

    id: uuid.UUID
    title: str
    description: str | None
    subject: str
    topic: str | None
    max_score: float
    duration_minutes: int
    passing_score: float
    question_count: int
    due_at: datetime | None
    show_results: ShowResults
    opens_at: datetime | None
    closes_at: datetime | None
    # The caller's own limit (the exam's plus their extra attempts) and what is left of it;
    # null: unlimited. attempts_used counts their attempts in every status.
    max_attempts: int | None
    attempts_used: int
    attempts_left: int | None
    # An attempt of the caller's is in progress: it may be resumed whatever the rules say.
    attempt_in_progress: bool
    extra_minutes: int  # the caller's extra time on this exam

    @classmethod
    def of(cls, exam: Exam, used: int = 0, writing: bool = False,
           accommodation: ExamAccommodation | None = None) -> AvailableExamOut:
        extra_attempts = accommodation.extra_attempts if accommodation else 0
        limit = rules.attempt_limit(exam.max_attempts, extra_attempts)
        return cls(id=exam.id, title=exam.title, description=exam.description,
                   subject=exam.subject, topic=exam.topic, max_score=exam.max_score,
                   duration_minutes=exam.duration_minutes, passing_score=exam.passing_score,
                   question_count=len(exam.questions), due_at=exam.due_at,
                   show_results=exam.show_results, opens_at=exam.opens_at,
                   closes_at=exam.closes_at, max_attempts=limit, attempts_used=used,
                   attempts_left=rules.attempts_left(limit, used),
                   attempt_in_progress=writing,
                   extra_minutes=accommodation.extra_minutes if accommodation else 0)


class AccommodationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    extra_minutes: Annotated[int, Field(ge=0, le=1_440)] = 0
    extra_attempts: Annotated[int, Field(ge=0, le=100)] = 0
    note: Annotated[str, Field(max_length=2_000)] | None = None


class AccommodationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    student_id: uuid.UUID
    extra_minutes: int
    extra_attempts: int
    note: str | None


class PermissionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teacher_id: uuid.UUID
    can_view: bool = True
    can_edit: bool = False
    can_view_analytics: bool = False


class PermissionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    teacher_id: uuid.UUID
    exam_id: uuid.UUID
    can_view: bool
    can_edit: bool
    can_view_analytics: bool
    granted_at: datetime


Responses = Annotated[StorableObject, Field(max_length=1_000)]


class DraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    responses: Responses


class DraftOut(BaseModel):
    attempt_id: uuid.UUID
    draft_number: int  # how many drafts the attempt keeps now, this one included
    saved_at: datetime
    responses: dict[str, Any]


class SubmitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    responses: Responses | None = None


class StartOut(BaseModel):
    attempt_id: uuid.UUID
    exam_id: uuid.UUID
    status: AttemptStatus
    started_at: datetime
    expires_at: datetime
    questions: list[dict[str, Any]]
    # The latest autosaved answers, so a resumed attempt (another tab or device) continues.
    responses: dict[str, Any] = {}
    # How often the exam page sends a heartbeat (the SDK's heartbeatMs / 1000).
    heartbeat_seconds: int = HEARTBEAT_SECONDS
    # The server's clock when it answered: the page counts down to expires_at from this, so
    # a student's wrong clock neither shortens nor lengthens the time shown.
    server_time: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def of(cls, attempt: ExamAttempt) -> StartOut:
        data = attempt.submission_data
        # In the attempt's own order, the same on every reload (rules.presentation).
        questions = rules.presented(data["questions"], data.get("presentation"))
        return cls(attempt_id=attempt.id, exam_id=attempt.exam_id, status=attempt.status,
                   started_at=attempt.started_at, expires_at=attempt.expires_at,
                   questions=[student_view(q) for q in questions],
                   responses=(data.get("drafts") or [{}])[-1].get("responses", {}))


class SubmitOut(BaseModel):
    attempt_id: uuid.UUID
    status: AttemptStatus
    score: float
    max_score: float
    percentage: float
    passed: bool
    duration_seconds: int
    # `pending` while an essay or short answer awaits its teacher: score and passed may change.
    grading_status: GradingStatus

    @classmethod
    def of(cls, attempt: ExamAttempt) -> SubmitOut:
        return cls(attempt_id=attempt.id, status=attempt.status, score=attempt.score or 0.0,
                   max_score=attempt.max_score, percentage=attempt.percentage or 0.0,
                   passed=bool(attempt.passed), duration_seconds=attempt.duration_seconds or 0,
                   grading_status=attempt.grading_status or GradingStatus.graded)

