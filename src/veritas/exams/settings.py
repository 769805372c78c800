"""ExamSettings: the keys of an exam's `metadata` that Veritas itself reads, typed.

A teacher's metadata is checked against this model when the exam is created or edited, so a
bad setting is a 422 naming it, never an analysis that fails later. Keys Veritas does not read
stay allowed (and are stored as sent) for the school's own use. Everything that reads a setting
reads it from here: the integrity policy and the course facts in the analysis, the review
workflow; ingestion reads its one setting, `anomaly_rules`, with the same AnomalyRules type
(monitoring/rules.py), without the rest (the hot path stays apart from the analysis).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    Tag,
    ValidationError,
    model_validator,
)

from veritas.analysis import integrity
from veritas.json_limits import json_problem
from veritas.monitoring.rules import AnomalyRules, Threshold

log = logging.getLogger(__name__)

# int stays int when stored back (the policy version digests what was sent); bool is no number.
Weight = Annotated[StrictInt | StrictFloat, Field(ge=0, le=1e6, allow_inf_nan=False)]
Signal = Literal["focus_away_seconds", "focus_episodes", "paste_ratio", "typing_shortfall",
                 "camera_off_share", "paste_jumps", "peer_similarity"]


class _Strict(BaseModel):
    # Inside a setting Veritas reads, an unknown key is a typo that would silently do nothing.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_preset(name: str) -> str:
    if name not in integrity.POLICIES:
        raise ValueError(f"unknown integrity policy {name!r}; one of {', '.join(integrity.POLICIES)}")
    return name


Preset = Annotated[str, AfterValidator(_known_preset)]


def _iso_text(value: Any) -> Any:
    if not isinstance(value, str | date):
        raise ValueError("must be an ISO date, such as 2026-09-01")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_text)]


class PolicyOverride(_Strict):
    """A preset with some of its weights and thresholds changed (docs/integrity.md)."""

    preset: Preset = "standard"
    weights: dict[Signal, Weight] = {}
    scale: Threshold | None = None
    medium_below: Threshold | None = None
    high_below: Threshold | None = None
    flag_z: Threshold | None = None
    version: Annotated[str, Field(min_length=1, max_length=100)] | None = None

    @model_validator(mode="after")
    def check_consistent(self) -> PolicyOverride:
        integrity.policy_for({"integrity_policy": self.spec()})  # raises ValueError: a 422
        return self

    def spec(self) -> dict[str, Any]:
        """What the teacher wrote, as policy_for reads it (its digest is the version)."""
        return self.model_dump(exclude_unset=True)


def _policy_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "preset"
    if isinstance(value, Mapping | PolicyOverride):
        return "override"
    return None


IntegrityPolicy = Annotated[
    Annotated[Preset, Tag("preset")] | Annotated[PolicyOverride, Tag("override")],
    Discriminator(_policy_form, custom_error_type="integrity_policy",
                  custom_error_message="integrity_policy must be a preset name or an object"),
]


class ReviewSettings(_Strict):
    require_second_reviewer: StrictBool = False


class ExamSettings(BaseModel):
    """The exam metadata keys Veritas reads; any other key is the school's and kept as is."""

    model_config = ConfigDict(extra="allow", frozen=True)

    anomaly_rules: AnomalyRules = AnomalyRules()
    integrity_policy: IntegrityPolicy | None = None
    review: ReviewSettings = ReviewSettings()
    # Day 0 of the course for dropout risk (docs/momentum-and-risk.md), an ISO date.
    course_start: IsoDate | None = None
    # The exam's share of its course grade; 1 when not given.
    weight: Weight | None = None

    @model_validator(mode="after")
    def check_storable(self) -> ExamSettings:
        problem = json_problem(self.stored())
        if problem is not None:
            raise ValueError(problem)
        return self

    def stored(self) -> dict[str, Any]:
        """The metadata to store: what was sent, unknown keys included, nothing added."""
        return self.model_dump(mode="json", exclude_unset=True)

    @property
    def policy(self) -> integrity.Policy:
        spec = self.integrity_policy
        if isinstance(spec, PolicyOverride):
            return integrity.policy_for({"integrity_policy": spec.spec()})
        return integrity.policy_for({"integrity_policy": spec})

    @property
    def anomaly_thresholds(self) -> dict[str, float]:
        """The ingestion rules' thresholds: the defaults, overridden by what the exam sets."""
        return self.anomaly_rules.thresholds()

    @property
    def grade_weight(self) -> float:
        return 1.0 if self.weight is None else float(self.weight)


def exam_settings(metadata: Mapping[str, Any] | None) -> ExamSettings:
    """The stored metadata's settings; raises ValidationError if it holds a bad one (written
    past the API, by an older version or by hand)."""
    return ExamSettings.model_validate(metadata or {})


def lenient_settings(metadata: Mapping[str, Any] | None, exam_id: Any) -> ExamSettings:
    """The stored settings, or the defaults when they are bad: for readers that must go on
    (ingestion, the review outcome). Says so in the log, naming the exam."""
    try:
        return exam_settings(metadata)
    except ValidationError as exc:
        log.warning("exam %s has invalid settings in its metadata, using the defaults: %s",
                    exam_id, problems(exc))
        return ExamSettings()


def problems(exc: ValidationError) -> str:
    """The errors on one line, each with its setting's path."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
