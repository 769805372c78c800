"""The security headers every response carries (added by app.CountRequests, the outermost layer)."""

from __future__ import annotations

from veritas.reports.incident import STYLE_HASH as REPORT_STYLE_HASH

# The pages load only their own scripts and styles (no inline script, no handler attribute),
# talk only to their own origin and may not be framed. One inline stylesheet is admitted by
# its hash: the incident report's, whose page the teacher's attempt page opens from a blob
# (which keeps this policy).
PAGE_CSP = ("default-src 'self'; script-src 'self'; "
            f"style-src 'self' '{REPORT_STYLE_HASH}'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")
# Anything else (JSON, text, scripts) is never a document: it may load and frame nothing.
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'"

_PAGE = (b"content-security-policy", PAGE_CSP.encode())
_OTHER = (b"content-security-policy", OTHER_CSP.encode())
_COMMON = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
_NO_STORE = (b"cache-control", b"no-store")


def is_personal(path: str) -> bool:
    """The API's answers are personal data: no cache may keep them."""
    return path.startswith(("/api/", "/metrics"))


def secured(headers: list[tuple[bytes, bytes]], personal: bool) -> list[tuple[bytes, bytes]]:
    """The response's headers plus nosniff and Referrer-Policy, a CSP unless the route set its
    own, and `Cache-Control: no-store` when `personal`."""
    csp = html = False
    kept = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-security-policy":
            csp = True
        elif lowered == b"content-type":
            html = value.startswith(b"text/html")
        elif personal and lowered == b"cache-control":
            continue  # replaced by no-store below
        kept.append((name, value))
    kept.extend(_COMMON)
    if not csp:
        kept.append(_PAGE if html else _OTHER)
    if personal:
        kept.append(_NO_STORE)
    return kept
