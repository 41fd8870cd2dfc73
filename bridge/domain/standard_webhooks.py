"""Standard Webhooks signatures (https://www.standardwebhooks.com, spec 1.0.0).

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is
`v1,<base64 HMAC-SHA256>` under a secret written `whsec_<base64>`. During rotation the
sender signs with every current secret and sends the signatures space-separated; a
receiver accepts the request when any one of them verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bridge.errors import InvalidInput, VerificationFailed

SECRET_PREFIX = "whsec_"  # a format marker, not a secret
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE = 300  # seconds; the spec's libraries all default to five minutes
# The spec asks for 24 to 64 random bytes (192 to 512 bits).
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


class SignatureInvalid(VerificationFailed):
    """The Standard Webhooks signature did not verify."""


@dataclass(frozen=True, slots=True)
class SigningSecret:
    """One symmetric signing key. Its repr and str never show the key."""

    key: bytes = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> SigningSecret:
        """A secret from `whsec_<base64>` (the prefix is optional, as in the spec's libraries)."""
        encoded = text.strip().removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("signing secret is not base64 (expected whsec_<base64>)") from None
        if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
            raise InvalidInput(
                f"signing secret must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, "
                f"not {len(key)}"
            )
        return cls(key)

    @classmethod
    def generate(cls) -> SigningSecret:
        """A fresh random 32-byte secret."""
        return cls(secrets.token_bytes(32))

    def serialize(self) -> str:
        """The `whsec_<base64>` form to hand to the subscriber."""
        return SECRET_PREFIX + base64.b64encode(self.key).decode("ascii")

    def __str__(self) -> str:
        return "whsec_**********"

    def signature(self, msg_id: str, timestamp: int | str, body: bytes) -> str:
        """`v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`."""
        return f"{SIGNATURE_VERSION},{self.digest(msg_id, str(timestamp), body).decode('ascii')}"

    def digest(self, msg_id: str, timestamp: str, body: bytes) -> bytes:
        """The base64 HMAC-SHA256 of the signed content, without the `v1,` label."""
        content = f"{msg_id}.{timestamp}.".encode() + body
        return base64.b64encode(hmac.new(self.key, content, hashlib.sha256).digest())


def sign(secrets_: Sequence[SigningSecret], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, space-separated."""
    if not secrets_:
        raise InvalidInput("at least one signing secret is needed")
    # The spec forbids `.` in the id: it would make the signed content ambiguous.
    if not msg_id or "." in msg_id or " " in msg_id:
        raise InvalidInput(f"webhook id {msg_id!r} must be non-empty without '.' or spaces")
    return " ".join(secret.signature(msg_id, timestamp, body) for secret in secrets_)


def signature_headers(
    secrets_: Sequence[SigningSecret], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three `webhook-*` headers for one delivery attempt at `timestamp` (unix seconds)."""
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: sign(secrets_, msg_id, timestamp, body),
    }


def verify(
    secrets_: Iterable[SigningSecret],
    headers: Mapping[str, str],
    body: bytes,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Raise SignatureInvalid unless one `v1` signature in `headers` matches one secret.

    `now` is the receiver's unix time: a timestamp further than `tolerance` seconds from it
    either way is refused, which is what stops a captured request being replayed later.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get(HEADER_ID)
    raw_timestamp = lowered.get(HEADER_TIMESTAMP)
    header = lowered.get(HEADER_SIGNATURE)
    if not msg_id or not raw_timestamp or not header:
        raise SignatureInvalid("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise SignatureInvalid("webhook-timestamp is not an integer") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureInvalid("webhook-timestamp is outside the tolerance")
    offered = [
        candidate.encode("ascii", "replace")
        for version, _, candidate in (part.partition(",") for part in header.split())
        if version == SIGNATURE_VERSION
    ]
    for secret in secrets_:
        # The header text, not the parsed int, is what the sender signed.
        expected = secret.digest(msg_id, raw_timestamp, body)
        # compare_digest: a plain == would leak, byte by byte, how much of a forgery matches.
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return
    raise SignatureInvalid()
