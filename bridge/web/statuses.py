"""The one table from error class to HTTP status (used by the web layer, and by ingest to
record what a rejected delivery was answered)."""

from __future__ import annotations

from bridge.errors import (
    BridgeError,
    ConfigurationError,
    Conflict,
    InvalidInput,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    StoreUnavailable,
    UnsupportedMediaType,
    VerificationFailed,
)
from bridge.web.bodies import HeadersTooLarge, RequestTimeout
from bridge.zoho.errors import ZohoError

STATUS_BY_ERROR: tuple[tuple[type[BridgeError], int], ...] = (
    (MalformedRequest, 400),
    (InvalidInput, 400),
    (VerificationFailed, 401),
    (NotFound, 404),
    (RequestTimeout, 408),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (HeadersTooLarge, 431),
    (StoreUnavailable, 503),
    (ConfigurationError, 503),
    # Zoho refused or failed a call the operator asked for: the upstream is at fault.
    (ZohoError, 502),
)


def status_for(error: BridgeError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status
    return 500
