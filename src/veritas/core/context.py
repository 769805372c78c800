"""Who asked, as the services see it: built by the web layer, recorded by the audit."""

from __future__ import annotations

from dataclasses import dataclass

# Key in a session's `info` under which services leave the revocation messages that must
# reach every process once the transaction commits (the web layer's unit of work sends them).
PENDING_REVOCATIONS = "revocations"


@dataclass(frozen=True)
class RequestContext:
    ip: str | None
    user_agent: str | None
