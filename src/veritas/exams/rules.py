"""The exam rules as pure functions: the window, the attempt limit, an attempt's time, and
the order in which an attempt presents its questions and options.

A shuffled attempt keeps its questions as the exam had them and stores only the order it
presents them in (`presentation`); answers are matched by question id and option value, so
the order can never change a score.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any


def window_refusal(opens_at: datetime | None, closes_at: datetime | None,
                   now: datetime) -> str | None:
    """Why a start at `now` is refused by the exam's window, or None when it is open."""
    if opens_at is not None and now < opens_at:
        return f"the exam opens at {opens_at.isoformat()}"
    if closes_at is not None and now >= closes_at:
        return f"the exam closed at {closes_at.isoformat()}"
    return None


def attempt_limit(max_attempts: int | None, extra_attempts: int) -> int | None:
    """How many attempts the student may start in all; None for unlimited."""
    return None if max_attempts is None else max_attempts + extra_attempts


def attempts_left(limit: int | None, used: int) -> int | None:
    return None if limit is None else max(0, limit - used)


def expires_at(started_at: datetime, duration_minutes: int, extra_minutes: int,
               closes_at: datetime | None) -> datetime:
    """The end of an attempt: its duration plus the student's extra time, but never later
    than the exam's closing plus that same extra time."""
    extra = timedelta(minutes=extra_minutes)
    end = started_at + timedelta(minutes=duration_minutes) + extra
    if closes_at is not None:
        end = min(end, closes_at + extra)
    return end


def presentation(questions: list[dict[str, Any]], shuffle_questions: bool,
                 shuffle_options: bool, rng: random.Random) -> dict[str, Any] | None:
    """An attempt's own order of questions and of each choice question's options, or None
    when the exam shuffles neither (the exam's order)."""
    if not shuffle_questions and not shuffle_options:
        return None
    order = [q["id"] for q in questions]
    if shuffle_questions:
        rng.shuffle(order)
    options: dict[str, list[str]] = {}
    if shuffle_options:
        for q in questions:
            if q.get("options"):
                options[q["id"]] = rng.sample(q["options"], len(q["options"]))
    return {"questions": order, "options": options}


def presented(questions: list[dict[str, Any]],
              order: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The questions in the attempt's order (`order` from `presentation`), each whole."""
    if not order:
        return questions
    by_id = {q["id"]: q for q in questions}
    # Ids the order does not know (none, unless the stored data was edited) go last.
    ids = [i for i in order["questions"] if i in by_id]
    ids += [q["id"] for q in questions if q["id"] not in set(ids)]
    result = []
    for qid in ids:
        question = by_id[qid]
        shuffled = order["options"].get(qid)
        if shuffled is not None and sorted(shuffled) == sorted(question.get("options") or []):
            question = question | {"options": list(shuffled)}
        result.append(question)
    return result
