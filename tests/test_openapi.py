"""/openapi.json documents every body: each operation's success has a schema that names its
fields, and every error status has the one error schema (with its headers)."""

from __future__ import annotations

from tests.support import Api

ERROR = {"$ref": "#/components/schemas/ErrorOut"}


def _resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_operation_documents_its_bodies(api: Api) -> None:
    document = api.get("/openapi.json").json()
    operations = [(f"{method.upper()} {path}", operation)
                  for path, item in document["paths"].items()
                  for method, operation in item.items()]
    assert len(operations) >= 34
    for name, operation in operations:
        responses = operation["responses"]
        successes = {status: r for status, r in responses.items() if status.startswith("2")}
        assert successes, name
        for status, response in successes.items():
            if status == "204":
                assert "content" not in response, name
                continue
            content = response["content"]
            if "application/json" in content:
                schema = _resolve(document, content["application/json"]["schema"])
                # A named shape, not an open dict[str, Any].
                assert schema.get("properties"), (name, status, schema)
            else:
                # Text bodies: metrics, the alert stream, CSV exports, the incident report.
                assert set(content) <= {"text/plain", "text/event-stream", "text/csv",
                                        "text/html"}, (name, content)
        errors = {status: r for status, r in responses.items() if status[0] in "45"}
        if name == "GET /readyz":
            continue  # its 503 is the readiness body itself
        assert errors or name == "GET /healthz", name
        for status, response in errors.items():
            assert response["content"] == {"application/json": {"schema": ERROR}}, (name, status)
            headers = response.get("headers", {})
            if status == "401":
                assert headers["WWW-Authenticate"]["required"], name
            if status in ("429", "503"):
                assert headers["Retry-After"]["required"], name
    error = document["components"]["schemas"]["ErrorOut"]
    assert error["required"] == ["detail"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_every_operation_that_takes_a_token_documents_401_and_403(api: Api) -> None:
    document = api.get("/openapi.json").json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path.startswith(("/api/student", "/api/teacher", "/api/admin", "/api/analysis",
                                "/api/monitor")):
                assert {"401", "403", "422"} <= set(operation["responses"]), (method, path)
            if path.startswith("/api/") and "{" in path:
                assert "404" in operation["responses"], (method, path)


def test_an_error_body_is_what_the_document_says(api: Api) -> None:
    # One shape, two forms: FastAPI's list of problems, or Veritas's own sentence.
    teacher = api.user("teacher")
    problems = api.post("/api/teacher/exams", json={"title": 1}, headers=teacher["headers"])
    assert problems.status_code == 422
    assert all(set(p) == {"loc", "msg", "type"} for p in problems.json()["detail"])
    sentence = api.get("/api/teacher/exams", params={"cursor": "@@"}, headers=teacher["headers"])
    assert sentence.status_code == 422 and sentence.json() == {"detail": "invalid cursor"}
    unauthenticated = api.get("/api/teacher/exams")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
