"""Security headers of every page and JSON answer: no framing by other sites, no sniffing,
no URL (which may carry ``?token=``) sent on to other sites as a referrer."""

from __future__ import annotations

from tornado.web import RequestHandler

__all__ = ["SECURITY_HEADERS", "add_security_headers"]

SECURITY_HEADERS: dict[str, str] = {
    # Clickjacking: no site, this one included, may show these pages in a frame.
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",  # the same, for browsers without CSP level 2
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def add_security_headers(handler: RequestHandler) -> None:
    """Set :data:`SECURITY_HEADERS` on ``handler``'s response."""
    for name, value in SECURITY_HEADERS.items():
        handler.set_header(name, value)
