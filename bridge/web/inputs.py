"""Parsing admin inputs: JSON bodies into pydantic models, query parameters into values.

Validation messages name the field and the problem, never the value sent (it may be a
secret)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from bridge.errors import InvalidInput, MalformedRequest
from bridge.web.bodies import read_limited

M = TypeVar("M", bound=BaseModel)
ADMIN_BODY_LIMIT = 256 * 1024


async def json_body(request: Request, model: type[M]) -> M:
    raw = await read_limited(request, ADMIN_BODY_LIMIT)
    try:
        doc = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedRequest(f"body is not valid JSON: {exc}") from None
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidInput(problems) from None


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    if not value.lstrip("-").isdigit() or not low <= int(value) <= high:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}")
    return int(value)


def optional_int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise InvalidInput(f"{name} must be a whole number")
    return int(value)


def time_param(request: Request, name: str) -> datetime | None:
    value = request.query_params.get(name)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 time, e.g. 2025-04-09T15:25:54Z") from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{name} must include a UTC offset, e.g. 2025-04-09T15:25:54Z")
    return parsed


def choice_param(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if value not in choices:
        raise InvalidInput(f"{name} must be one of {', '.join(choices)}")
    return value
