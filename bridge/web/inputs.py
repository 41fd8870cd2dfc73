"""Parsing admin inputs: JSON bodies into pydantic models, query parameters into values.

Validation messages name the field and the problem, never the value sent (it may be a
secret)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from bridge.domain import jsonx
from bridge.domain.events import EventFilter, Operation, Origin, Product
from bridge.errors import InvalidInput, MalformedRequest
from bridge.web.bodies import read_limited

M = TypeVar("M", bound=BaseModel)
ADMIN_BODY_LIMIT = 256 * 1024
# Ids, sequence numbers and counts are 64-bit columns on both databases.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


async def json_body(request: Request, model: type[M]) -> M:
    raw = await read_limited(request, ADMIN_BODY_LIMIT)
    try:
        doc = jsonx.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedRequest(f"body is not valid JSON: {exc}") from None
    except jsonx.Refused as exc:
        raise MalformedRequest(f"body {exc}") from None
    problem = _unstorable(doc)
    if problem is not None:
        raise InvalidInput(problem)
    try:
        parsed = model.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidInput(problems) from None
    for name, value in parsed:
        if isinstance(value, datetime):
            try:
                value.astimezone(UTC)  # 0001-01-01T00:00+01:00 is before year 1 in UTC
            except OverflowError:
                raise InvalidInput(f"{name} is out of range") from None
    return parsed


def _unstorable(doc: Any, where: str = "body") -> str | None:
    """What no model field can take and no database can store, said with where it is but
    not the value: an integer beyond 64 bits, text with NUL or a lone surrogate. (Documents
    are bounded in depth by jsonx, so this recursion is too.)"""
    if isinstance(doc, str):
        return (
            None
            if jsonx.is_storable(doc)
            else f"{where}: text must not hold NUL or lone surrogates"
        )
    if isinstance(doc, int) and not isinstance(doc, bool):
        return None if INT_MIN <= doc <= INT_MAX else f"{where}: numbers must fit in 64 bits"
    items: list[tuple[str, Any]] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if not jsonx.is_storable(key):
                return f"{where}: names must not hold NUL or lone surrogates"
            items.append((key, value))
    elif isinstance(doc, list):
        items = [(str(i), value) for i, value in enumerate(doc)]
    for name, value in items:
        problem = _unstorable(value, name if where == "body" else f"{where}.{name}")
        if problem is not None:
            return problem
    return None


def _whole_number(value: str) -> int | None:
    """ASCII digits, an optional minus, and 19 digits at most (`isdigit` alone takes "²")."""
    digits = value.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        return None
    return int(value)


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    number = _whole_number(value)
    if number is None or not low <= number <= high:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}")
    return number


def optional_int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    number = _whole_number(value)
    if number is None or not 0 <= number <= INT_MAX:
        raise InvalidInput(f"{name} must be a whole number from 0 to {INT_MAX}")
    return number


def time_param(request: Request, name: str, *, naive_is_utc: bool = False) -> datetime | None:
    """An ISO 8601 time from the query string. It must carry a UTC offset, unless
    `naive_is_utc` (the console's `datetime-local` fields, labelled UTC)."""
    value = request.query_params.get(name)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 time, e.g. 2025-04-09T15:25:54Z") from None
    if parsed.tzinfo is None:
        if not naive_is_utc:
            raise InvalidInput(f"{name} must include a UTC offset, e.g. 2025-04-09T15:25:54Z")
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed.astimezone(UTC)  # 0001-01-01T00:00+01:00 is before year 1 in UTC
    except OverflowError:
        raise InvalidInput(f"{name} is out of range") from None
    return parsed


def event_filter(request: Request, *, naive_is_utc: bool = False) -> EventFilter:
    """The events filter of the admin API and the console, from the query string."""
    q = request.query_params
    return EventFilter(
        source=q.get("source") or None,
        module=q.get("module") or None,
        record_id=q.get("record_id") or None,
        operation=choice_param(request, "operation", tuple(Operation)),
        origin=choice_param(request, "origin", tuple(Origin)),
        product=choice_param(request, "product", tuple(Product)),
        since=time_param(request, "since", naive_is_utc=naive_is_utc),
        until=time_param(request, "until", naive_is_utc=naive_is_utc),
        request_id=q.get("request_id") or None,
    )


def choice_param(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if value not in choices:
        raise InvalidInput(f"{name} must be one of {', '.join(choices)}")
    return value
