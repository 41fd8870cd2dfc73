"""The app built from the process environment, for ASGI servers that import a factory:
`uvicorn bridge.web.asgi:app_from_environment --factory` (and `serve --workers N`).

Like the CLI, this is an edge of the program, so it may read `os.environ`.
"""

from __future__ import annotations

import os

from pydantic import ValidationError
from starlette.applications import Starlette

from bridge.logs import configure_logging
from bridge.process import tune_gc
from bridge.settings import Settings, describe_errors
from bridge.web import server
from bridge.web.app import create_app


def app_from_environment() -> Starlette:
    try:
        settings = Settings.from_environ(os.environ)
    except ValidationError as exc:  # one line, naming the variables, not a traceback
        raise SystemExit(f"zoho-bridge: invalid setting: {describe_errors(exc)}") from None
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    server.configure(settings)  # this worker's limits, when `serve --workers N` runs it
    tune_gc()
    return app
