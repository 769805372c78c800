"""The grading rules: what counts for each question, the score, and whether grading is done.

Pure functions over an attempt's questions (as they were when it started), its responses and
the points teachers awarded (question id → points). Submitting and grading both score through
`score`, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from veritas.db.base import GradingStatus
from veritas.exams.schemas import QuestionType, earned_points

# Questions a teacher must grade before an attempt's score is final: an essay has no answer
# key at all, and a short answer's key is an exact match (trimmed, any case), which misses a
# right answer worded otherwise, so a teacher confirms or corrects its automatic points.
TEACHER_GRADED = frozenset({QuestionType.essay.value, QuestionType.short_text.value})


def needs_teacher(question: Mapping[str, Any]) -> bool:
    return question["type"] in TEACHER_GRADED


def auto_points(question: Mapping[str, Any], answer: Any) -> float | None:
    """What scoring gave the question on submit; None for an essay, which it cannot score."""
    if question["type"] == QuestionType.essay.value:
        return None
    return earned_points(dict(question), answer)


def effective_points(question: Mapping[str, Any], answer: Any, awarded: float | None) -> float:
    """What the question counts for: the awarded points, which override the automatic ones."""
    if awarded is not None:
        return awarded
    return auto_points(question, answer) or 0.0


def score(questions: list[dict[str, Any]], responses: Mapping[str, Any],
          awarded: Mapping[str, float]) -> float:
    """The attempt's score: the sum of every question's effective points."""
    return sum(effective_points(q, responses.get(q["id"]), awarded.get(q["id"]))
               for q in questions)


def grading_status(questions: list[dict[str, Any]], awarded: Collection[str]) -> GradingStatus:
    """`pending` while an essay or short answer has no awarded points, else `graded`."""
    if any(needs_teacher(q) and q["id"] not in awarded for q in questions):
        return GradingStatus.pending
    return GradingStatus.graded
