"""Limits on the free-form JSON clients store (exam metadata, answers, event data, analyses).

Anything stored must also read back: pydantic refuses to serialize past ~250 levels of
nesting and orjson refuses integers beyond 64 bits, so a deeply nested event payload once
stored made its attempt's monitoring list a 500 for the teacher (a student could hide their
own events that way), and a huge integer in exam metadata broke event ingestion for the
exam. Such values are refused on the way in instead, with a 422 that says why.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator

MAX_DEPTH = 32
_INT_RANGE = range(-(2**63), 2**63)


def json_problem(value: Any) -> str | None:
    """Why `value` cannot be stored and read back, or None if it can."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        elif isinstance(node, bool):
            continue
        elif isinstance(node, int):
            if node not in _INT_RANGE:
                return "integers must fit in 64 bits"
            continue
        elif isinstance(node, float):
            if not math.isfinite(node):
                return "numbers must be finite"
            continue
        else:
            continue
        if depth > MAX_DEPTH:
            return f"JSON may nest at most {MAX_DEPTH} levels deep"
        stack.extend((child, depth + 1) for child in children)
    return None


def _storable(value: Any) -> Any:
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# A request field of free-form JSON that passes json_problem (pydantic answers 422 otherwise).
StorableObject = Annotated[dict[str, Any], AfterValidator(_storable)]
