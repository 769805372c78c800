"""Bodies of the grading endpoints and of the results a student may see."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from veritas.db.base import AttemptStatus, GradingStatus, ShowResults
from veritas.exams.schemas import QuestionType

Feedback = Annotated[str, Field(max_length=20_000)]
# An answer as stored: text, an option, a list of options, or nothing.
Answer = Annotated[Any, Field(description="the student's answer: text, an option, a list of"
                                          " options, or null when unanswered")]


class GradeIn(BaseModel):
    """A grade replaces the question's earlier one (feedback left out is no feedback)."""

    model_config = ConfigDict(extra="forbid")

    points: Annotated[float, Field(ge=0, allow_inf_nan=False,
                                   description="between 0 and the question's points")]
    feedback: Feedback | None = None


class QuestionResponse(BaseModel):
    """One question of an attempt as its teacher grades it."""

    id: str
    type: QuestionType
    prompt: str
    points: float
    options: list[str] | None = None
    correct: str | list[str] | None = Field(None, description="the answer key")
    response: Answer = None
    needs_grading: bool = Field(
        description="an essay or short answer: the attempt is `pending` until it has"
                    " awarded points")
    auto_points: float | None = Field(
        description="what scoring gave it on submit; null for an essay, or before a submit")
    awarded_points: float | None = Field(description="a teacher's points; they override"
                                                     " auto_points")
    earned_points: float | None = Field(
        description="what it counts for in the score; null before a submit")
    feedback: str | None = None
    graded_by: uuid.UUID | None = None
    graded_by_name: str | None = None
    graded_at: datetime | None = None


class AttemptResponses(BaseModel):
    attempt_id: uuid.UUID
    exam_id: uuid.UUID
    exam_title: str
    student_id: uuid.UUID
    student_name: str
    status: AttemptStatus
    score: float | None
    max_score: float
    percentage: float | None
    passed: bool | None
    grading_status: GradingStatus | None = Field(
        description="null until the attempt is completed")
    can_grade: bool = Field(description="whether the caller may grade it (`can_edit`)")
    completed_at: datetime | None
    questions: list[QuestionResponse]


class AttemptTotals(BaseModel):
    score: float
    max_score: float
    percentage: float
    passed: bool
    grading_status: GradingStatus


class GradeOut(BaseModel):
    attempt_id: uuid.UUID
    question_id: str
    points: float
    auto_points: float | None
    feedback: str | None
    graded_by: uuid.UUID
    graded_at: datetime
    attempt: AttemptTotals = Field(description="the attempt's totals with this grade")


QueueStatus = Literal["pending", "graded"]


class QueueItem(BaseModel):
    attempt_id: uuid.UUID
    exam_id: uuid.UUID
    exam_title: str
    student_id: uuid.UUID
    username: str
    full_name: str | None
    completed_at: datetime
    score: float | None
    max_score: float
    percentage: float | None
    passed: bool | None
    grading_status: GradingStatus
    questions_to_grade: int = Field(
        description="essays and short answers of the attempt without awarded points")
    can_grade: bool = Field(description="whether the caller may grade it (`can_edit`)")


class QuestionResult(BaseModel):
    """One question of a student's own completed attempt, when the exam shows results."""

    id: str
    type: QuestionType
    prompt: str
    points: float
    options: list[str] | None = None
    response: Answer = None
    points_awarded: float | None = Field(
        description="what the question counts for; null for an essay not graded yet")
    feedback: str | None = None
    correct: str | list[str] | None = Field(
        None, description="the right option(s), or the accepted answers; null for an essay")


class StudentResults(BaseModel):
    show_results: ShowResults
    results_visible: bool
    questions: list[QuestionResult] | None = Field(
        description="per-question results, or null while the exam does not show them")

