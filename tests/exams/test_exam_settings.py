"""Exam settings: the metadata keys Veritas reads are checked on create and edit (422 naming
the field, in FastAPI's error shape); valid ones and the school's own keys are stored as sent."""

from __future__ import annotations

import pytest
from tests.support import Api

from veritas.analysis.integrity import POLICIES

BODY = {"title": "Settings quiz", "subject": "Mathematics", "max_score": 10,
        "duration_minutes": 30, "passing_score": 5, "is_published": True}

# (metadata, the path inside metadata that the 422 must name)
BAD = [
    ({"integrity_policy": "bogus"}, ["integrity_policy"]),
    ({"integrity_policy": 7}, ["integrity_policy"]),
    ({"integrity_policy": {"preset": "nope"}}, ["integrity_policy"]),
    ({"integrity_policy": {"weights": {"typing_speed": 1}}}, ["integrity_policy"]),
    ({"integrity_policy": {"weights": {"paste_ratio": -1}}}, ["integrity_policy"]),
    ({"integrity_policy": {"high_below": 0.9, "medium_below": 0.5}}, ["integrity_policy"]),
    ({"integrity_policy": {"preset": "strict", "scael": 4}}, ["integrity_policy"]),
    ({"anomaly_rules": {"paste_chars": -5}}, ["anomaly_rules", "paste_chars"]),
    ({"anomaly_rules": {"paste_chars": "200"}}, ["anomaly_rules", "paste_chars"]),
    ({"anomaly_rules": {"paste_chars": True}}, ["anomaly_rules", "paste_chars"]),
    ({"anomaly_rules": {"paste_char": 100}}, ["anomaly_rules", "paste_char"]),
    ({"anomaly_rules": [200]}, ["anomaly_rules"]),
    ({"review": {"require_second_reviewer": "yes"}}, ["review", "require_second_reviewer"]),
    ({"course_start": "next autumn"}, ["course_start"]),
    ({"course_start": 20260901}, ["course_start"]),
    ({"weight": -1}, ["weight"]),
]


def _names(response, path: list[str]) -> bool:
    """A FastAPI-shaped 422 whose error locations include body.metadata.<path>."""
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert isinstance(errors, list) and all({"loc", "msg", "type"} <= set(e) for e in errors)
    return any(e["loc"][:2 + len(path)] == ["body", "metadata", *path] for e in errors)


@pytest.mark.parametrize(("metadata", "path"), BAD, ids=[str(m) for m, _ in BAD])
def test_bad_settings_are_422_on_create_and_edit(api: Api, metadata, path) -> None:
    teacher = api.user("teacher")
    created = api.post("/api/teacher/exams", headers=teacher["headers"],
                       json=BODY | {"metadata": metadata})
    assert _names(created, path), created.json()
    exam = api.exam(teacher, metadata={"department": "maths"})
    patched = api.patch(f"/api/teacher/exams/{exam['id']}", headers=teacher["headers"],
                        json={"metadata": metadata, "title": "renamed"})
    assert _names(patched, path), patched.json()
    # Nothing half-written: the exam is as it was.
    after = api.get(f"/api/teacher/exams/{exam['id']}", headers=teacher["headers"]).json()
    assert after["metadata"] == {"department": "maths"} and after["title"] == exam["title"]


def test_the_bogus_policy_exam_is_refused_before_any_student_can_submit(api: Api) -> None:
    teacher = api.user("teacher")
    response = api.post("/api/teacher/exams", headers=teacher["headers"],
                        json=BODY | {"metadata": {"integrity_policy": "bogus"}})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"][:3] == ["body", "metadata", "integrity_policy"]
    assert "bogus" in error["msg"]


def test_valid_settings_and_the_schools_own_keys_round_trip(api: Api) -> None:
    teacher = api.user("teacher")
    metadata = {
        "anomaly_rules": {"paste_chars": 50, "focus_lost_ms": 2500.5},
        "integrity_policy": {"preset": "relaxed", "weights": {"camera_off_share": 0},
                             "high_below": 0.1},
        "review": {"require_second_reviewer": True},
        "course_start": "2026-09-01",
        "weight": 20,
        # The school's own: kept exactly, whatever their shape.
        "department": "maths", "lms": {"course_id": 7, "tags": ["a", None, 1.5]},
    }
    exam = api.exam(teacher, metadata=metadata)
    assert exam["metadata"] == metadata
    url = f"/api/teacher/exams/{exam['id']}"
    assert api.get(url, headers=teacher["headers"]).json()["metadata"] == metadata
    for new in ({"integrity_policy": "strict", "room": "B12"}, {}):
        patched = api.patch(url, headers=teacher["headers"], json={"metadata": new})
        assert patched.status_code == 200, patched.text
        assert patched.json()["metadata"] == new
        assert api.get(url, headers=teacher["headers"]).json()["metadata"] == new


def test_settings_are_read_as_typed_fields() -> None:
    from veritas.exams.settings import ExamSettings

    settings = ExamSettings.model_validate({
        "anomaly_rules": {"paste_chars": 50},
        "integrity_policy": {"preset": "relaxed", "high_below": 0.1}, "weight": 0,
        "review": {"require_second_reviewer": True}, "course_start": "2026-09-01"})
    assert settings.anomaly_thresholds["paste_chars"] == 50.0
    assert settings.anomaly_thresholds["focus_lost_ms"] == 10_000  # the default
    assert settings.policy.high_below == 0.1
    assert settings.policy.version.startswith("relaxed-1+")
    assert settings.review.require_second_reviewer and settings.grade_weight == 0.0
    assert settings.course_start.isoformat() == "2026-09-01"
    defaults = ExamSettings()
    assert defaults.policy is POLICIES["standard"] and defaults.grade_weight == 1.0
    assert not defaults.review.require_second_reviewer
    assert ExamSettings.model_validate({"integrity_policy": "strict"}).policy is POLICIES["strict"]
