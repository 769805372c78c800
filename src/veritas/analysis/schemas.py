"""Bodies of the analysis endpoints."""

from __future__ import annotations

from typing import Any

from veritas.analysis.models import BehaviorAnalysis


def _value(v: Any) -> Any:
    return v.value if hasattr(v, "value") else v


def analysis_dict(analysis: BehaviorAnalysis | None) -> dict[str, Any] | None:
    if analysis is None:
        return None
    columns = BehaviorAnalysis.__table__.columns.keys()
    return {c: _value(getattr(analysis, c)) for c in columns}
