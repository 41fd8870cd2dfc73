"""Logging setup: structlog, console or JSON, with secret-named fields redacted."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

from bridge.domain.redaction import REDACTED, is_secret_name


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key != "event" and is_secret_name(key):
            event_dict[key] = REDACTED
    return event_dict


class ExceptionTypeOnly(logging.Filter):
    """uvicorn logs an exception that escapes the app with its message and traceback, and
    either can quote the request (a body, a token). The bridge's front door catches
    everything first (web/front.py); this keeps only the type should one still get there.
    Lifespan failures (the bridge did not start) keep their traceback: they come from
    configuration, not from requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None and "lifespan" not in str(record.msg):
            kind = record.exc_info[0].__name__
            record.msg = f"{str(record.msg).strip()} ({kind}; message not logged)"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


_EXCEPTION_TYPE_ONLY = ExceptionTypeOnly()


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    numeric = logging.getLevelName(level.upper())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    # structlog's own list, changed in place: a logger cached on first use keeps the list
    # it was built with, so a later configuration (a CLI command run in-process, a test
    # capturing logs) reaches loggers already used only if the list object stays the same.
    processors = structlog.get_config()["processors"]
    processors[:] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=numeric, format="%(message)s")
    # Alembic narrates every migration at INFO; only problems are worth showing.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    # httpx and httpcore log every request URL at INFO/DEBUG, and a webhook URL can carry a
    # token (?token=...): they are kept at WARNING whatever the bridge's own level.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # On the logger, not a handler: uvicorn's dictConfig replaces the handlers, and keeps
    # the filters of the loggers it configures.
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if _EXCEPTION_TYPE_ONLY not in uvicorn_errors.filters:
        uvicorn_errors.addFilter(_EXCEPTION_TYPE_ONLY)
