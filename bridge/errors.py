"""One error root for the whole bridge.

Each subclass's docstring is its default message. Storage translates driver errors into
these at its boundary; the web layer maps each class to one HTTP status in one place.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Something went wrong in zoho-bridge."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self)


class ConfigurationError(BridgeError):
    """The bridge is not configured correctly."""


class MalformedRequest(BridgeError):
    """The request body could not be understood."""


class UnsupportedMediaType(BridgeError):
    """The request's content type is not supported."""


class PayloadTooLarge(BridgeError):
    """The request body is larger than the configured limit."""


class VerificationFailed(BridgeError):
    """The request could not be verified."""


class NotFound(BridgeError):
    """No such object."""


class Conflict(BridgeError):
    """An object with that name already exists."""


class InvalidInput(BridgeError):
    """The input is not valid."""


class StoreUnavailable(BridgeError):
    """The database is unavailable; try again later."""


class SecretKeyError(ConfigurationError):
    """BRIDGE_SECRET_KEY is missing or cannot decrypt the stored secrets."""
