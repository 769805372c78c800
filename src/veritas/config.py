"""One place for every setting, read from the environment (and a `.env` file)."""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_BYTES = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # Unset means: start the embedded PostgreSQL whose data lives in `data_dir`.
    database_url: str | None = None
    # The owner's URL, for migrations and DDL; DATABASE_URL is then the least-privilege
    # runtime role (README, "Database roles"). Unset: migrations use DATABASE_URL.
    migration_database_url: str | None = None
    data_dir: Path = Field(default=Path(".veritas"), validation_alias="VERITAS_DATA_DIR")

    jwt_secret: str | None = None
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    access_token_minutes: int = Field(default=24 * 60, ge=1)
    refresh_token_days: int = Field(default=7, ge=1)

    debug: bool = False
    log_level: str = "INFO"

    # /metrics answers only a request bearing this token; unset, it answers no one.
    metrics_token: str | None = None
    # A connection whose request line and headers take longer is closed (`veritas serve`).
    header_read_timeout_seconds: float = Field(default=5.0, gt=0, le=300)

    # Optional: revocations are mirrored to Redis and broadcast over its pub/sub.
    redis_url: str | None = None

    # X-Forwarded-For is believed only when the direct peer is one of these.
    trusted_proxies: list[str] = Field(default_factory=list)

    # Login throttle (README, "Login throttling"): per (account, address) pair and per address,
    # a few free failures, then delays that double with each further failure up to a cap.
    login_free_failures: int = Field(default=5, ge=1)
    login_delay_seconds: int = Field(default=30, ge=1)
    login_max_delay_seconds: int = Field(default=900, ge=1)
    login_ip_free_failures: int = Field(default=100, ge=1)
    login_ip_delay_seconds: int = Field(default=2, ge=1)
    login_ip_max_delay_seconds: int = Field(default=60, ge=1)
    # A key this long without a failure starts again from zero.
    login_failure_reset_seconds: int = Field(default=3600, ge=1)
    # Addresses (e.g. a school's own NAT) whose failures are throttled per pair only.
    login_ip_exempt: list[str] = Field(default_factory=list)
    # Self-registrations from one address per window (an admin's are not counted).
    register_max_per_ip: int = Field(default=100, ge=1)
    register_window_seconds: int = Field(default=3600, ge=1)

    # An attempt still in progress this long after its duration ran out becomes abandoned.
    attempt_grace_minutes: int = Field(default=10, ge=0)
    max_body_bytes: int = 8 * 1024 * 1024
    max_event_payload_bytes: int = 16 * 1024

    # Where users reach Veritas (e.g. https://veritas.school.example): the start of the
    # set-password links it hands out. Unset: the address the request that made a link used.
    public_url: str | None = None
    # How long a set-password link made for an account created from a class roster stays
    # usable; the teacher hands the links out, which may take a few days.
    roster_link_days: int = Field(default=7, ge=1, le=90)
    # A roster file's size (413 beyond it) and its rows at most (422 beyond them).
    roster_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    roster_max_rows: int = Field(default=5_000, ge=1)

    # Analysis jobs also run inside the server, so the one-command local run gets analyses;
    # `veritas worker` processes can take them over (both may run: jobs are locked).
    embedded_worker: bool = True
    view_refresh_minutes: int = Field(default=5, ge=1, le=60)
    # An exam with provisional integrity scores, no analysis pending and no attempt ended for
    # this long is rescored as one batch (README, "Provisional and final integrity scores").
    final_score_quiet_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # An OpenAI-compatible summary provider; unset means the built-in summarizer.
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_timeout_seconds: float = 10.0

    db_pool_size: int = 10
    db_max_overflow: int = 20
    # Ingestion writer: the queue bound (events) and the most rows in one statement.
    ingest_queue_max_events: int = 50_000
    ingest_max_batch_rows: int = 5_000
    # Per attempt, per process: a token bucket of events (429 with Retry-After beyond it).
    # The browser SDK sends about one event a second and drains a backlog in batches of
    # 1,000, so the burst must hold a full batch; the defaults are far above either.
    ingest_attempt_events_per_second: float = Field(default=200.0, gt=0)
    ingest_attempt_burst_events: int = Field(default=10_000, ge=1_000)
    # Drafts: one body's size (413 beyond it), and how many of the latest an attempt keeps.
    max_draft_bytes: int = Field(default=256 * 1024, ge=1024)
    max_drafts_per_attempt: int = Field(default=20, ge=1)

    @field_validator("trusted_proxies", "login_ip_exempt", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies", "login_ip_exempt")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry, strict=False)
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("PUBLIC_URL must start with https:// (or http://)")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _refuse_weak_secret(self) -> Settings:
        if self.debug:
            return self
        if not self.jwt_secret or len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"JWT_SECRET must be set to at least {MIN_SECRET_BYTES} bytes "
                "(or DEBUG=true for local development)"
            )
        return self

    @cached_property
    def signing_key(self) -> str:
        # Debug mode without a secret gets a random key (`veritas serve` makes one for all of
        # its workers): tokens die with the process.
        if self.jwt_secret:
            return self.jwt_secret
        import secrets

        return secrets.token_urlsafe(48)

    @cached_property
    def login_ip_exempt_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(entry, strict=False) for entry in self.login_ip_exempt]

    def ip_exempt_from_login_throttle(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.login_ip_exempt_networks)

    @cached_property
    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(entry, strict=False) for entry in self.trusted_proxies]


def sqlalchemy_url(url: str) -> str:
    """Turn a plain `postgresql://` URL, as DATABASE_URL is written, into the asyncpg dialect's."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def asyncpg_dsn(url: str) -> str:
    """The plain libpq form that asyncpg and psycopg accept."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url
