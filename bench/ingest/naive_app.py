"""The one-commit-per-event design, as a reference: one ORM object and one COMMIT per event.

`POST /api/monitor/events` with the same body as Veritas's single-event form, on the same
table definition (veritas.monitoring.models.MonitoringEvent). It is given every benefit of
the doubt: the JWT is checked but nothing else about the caller, and each attempt's owner and
start time are cached after the first lookup, so what remains is the design itself:
`session.add(event); await session.commit()` for every event.

Run: DATABASE_URL=... JWT_SECRET=... uvicorn bench.ingest.naive_app:create_app --factory
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import orjson
from fastapi import FastAPI, Header, HTTPException, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from veritas.config import sqlalchemy_url
from veritas.exams.models import ExamAttempt
from veritas.monitoring.ingest import event_row_id
from veritas.monitoring.models import MonitoringEvent
from veritas.monitoring.rules import DEFAULT_RULES, evaluate


class EventIn(BaseModel):
    attempt_id: uuid.UUID
    event_type: str = Field(pattern=r"^[A-Za-z0-9_.]{1,64}$")
    severity: str = Field(default="normal", pattern="^(normal|warning|critical)$")
    data: dict[str, Any] = Field(default_factory=dict)
    event_id: uuid.UUID | None = None
    client_timestamp: datetime | None = None


def create_app() -> FastAPI:
    engine = create_async_engine(sqlalchemy_url(os.environ["DATABASE_URL"]), pool_size=10,
                                 max_overflow=20)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    secret = os.environ["JWT_SECRET"]
    attempts: dict[uuid.UUID, tuple[uuid.UUID, datetime]] = {}
    app = FastAPI()

    @app.post("/api/monitor/events", status_code=201)
    async def record(body: EventIn, authorization: str = Header()) -> Response:
        try:
            claims = jwt.decode(authorization.removeprefix("Bearer "), secret,
                                algorithms=["HS256"])
        except jwt.PyJWTError:
            raise HTTPException(401) from None
        async with sessions() as session:
            if body.attempt_id not in attempts:
                attempt = await session.get(ExamAttempt, body.attempt_id)
                if attempt is None:
                    raise HTTPException(404)
                attempts[body.attempt_id] = (attempt.student_id, attempt.started_at)
            student_id, started_at = attempts[body.attempt_id]
            if str(student_id) != claims["user_id"]:
                raise HTTPException(404)
            event_id = body.event_id or uuid.uuid4()
            anomaly, score, text = evaluate(body.event_type, body.severity, body.data,
                                            DEFAULT_RULES)
            event = MonitoringEvent(
                id=event_row_id(body.attempt_id, event_id), attempt_started_at=started_at,
                exam_attempt_id=body.attempt_id, student_id=student_id, event_id=event_id,
                event_type=body.event_type, severity=body.severity, data_payload=body.data,
                is_anomaly=anomaly, anomaly_score=score, description=text,
                analysis_notes=text, client_timestamp=body.client_timestamp,
                server_timestamp=datetime.now(UTC))
            session.add(event)
            await session.commit()
        return Response(orjson.dumps({"id": str(event.id), "status": "recorded"}),
                        status_code=201, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
