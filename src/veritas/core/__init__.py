"""The core every layer may use: names and small types shared across domains.

It imports nothing from Veritas and nothing from FastAPI, so a service, a job or the
ingestion hot path can use it without pulling in the web layer or another domain. The unit of
work stays in veritas.db, which shares this bottom layer: it is database code (sessions and
the caller's identity for row-level security) and imports nothing above it either.
"""
