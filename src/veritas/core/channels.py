"""PostgreSQL LISTEN/NOTIFY (and Redis pub/sub) channel names, shared by senders and listeners."""

# An attempt stopped taking events; the payload is its id (ingestion caches listen).
ATTEMPT_ENDED_CHANNEL = "veritas_attempt_ended"
# A token was revoked or a user locked or unlocked (auth.revocation's message format).
REVOCATION_CHANNEL = "veritas_auth"
