"""No login token in a log line: ``?token=`` values and JWTs are replaced before writing.

Tornado's access log and error log write each request's URL, and WebSocket clients and
MJPEG viewers pass their token as ``?token=`` (a browser cannot set headers on a
WebSocket). Anyone who can read the log could otherwise log in as them.
:func:`install_log_redaction` puts :class:`RedactTokens` on every handler that writes
log records in the process, so every logger (Tornado, Bokeh, Panel, zvpanel) is covered.
"""

from __future__ import annotations

import logging
import re

__all__ = ["REDACTED", "redact", "RedactTokens", "install_log_redaction"]

REDACTED = "[redacted]"
#: The value of a ``token`` query parameter, up to the next parameter or the URL's end.
_TOKEN_PARAMETER = re.compile(r"(?i)([?&;]token=)[^&;\s\"'#<>]+")
#: A JWT anywhere (header.payload.signature; the header always starts ``{"`` = ``eyJ``).
_JWT = re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]+")


def redact(text: str) -> str:
    """``text`` with every ``token=`` query value and every JWT replaced by :data:`REDACTED`."""
    return _JWT.sub(REDACTED, _TOKEN_PARAMETER.sub(rf"\1{REDACTED}", text))


class RedactTokens(logging.Filter):
    """Rewrites a record's message (and traceback) without tokens; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatted here, so the handler writes this redacted text instead.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction() -> None:
    """Add :class:`RedactTokens` to every log handler of the process (once each).

    Run after logging is configured (``panel serve`` has done it before ``--setup``).
    """
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactTokens) for f in handler.filters):
                handler.addFilter(RedactTokens())
