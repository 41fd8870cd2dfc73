"""The `X-Zoho-Webhook-Signature` scheme for Zoho Books webhooks.

Zoho documents this scheme for Zoho Billing, the sibling Finance product, with the same
"I want to secure this webhook" secret; for Books it is UNCERTAIN (zoho.md §3.3). It lives
here, alone and tested, so it can be corrected without touching the endpoint:

- every query parameter and, for form bodies, every (URL-decoded) form field,
- sorted by key and concatenated as `keyvalue` with no separators,
- followed by the raw body verbatim (empty for form bodies, whose fields are already in),
- HMAC-SHA256 with the secret, sent as lowercase hex or base64 (both accepted).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence

SIGNATURE_HEADER = "x-zoho-webhook-signature"


def signing_string(params: Iterable[tuple[str, str]], body: bytes) -> bytes:
    """Billing's example: query `subscription_id=90343, name=basic` and body `{...}` give
    `namebasicsubscription_id90343{...}`."""
    ordered = sorted(params, key=lambda pair: pair[0])
    return "".join(f"{key}{value}" for key, value in ordered).encode("utf-8") + body


def sign(secret: str, params: Iterable[tuple[str, str]], body: bytes) -> bytes:
    """The raw HMAC-SHA256 digest."""
    return hmac.new(secret.encode("utf-8"), signing_string(params, body), hashlib.sha256).digest()


def sign_hex(secret: str, params: Iterable[tuple[str, str]], body: bytes) -> str:
    return sign(secret, params, body).hex()


def _decode_presented(presented: str) -> bytes | None:
    value = presented.strip()
    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except ValueError:
        return None
    return decoded if len(decoded) == hashlib.sha256().digest_size else None


def verify(
    presented: str | None,
    secrets: Sequence[str],
    params: Sequence[tuple[str, str]],
    body: bytes,
) -> bool:
    """Whether `presented` is the signature of the request under any of `secrets`.

    Every secret is tried (no early exit) and compared with `hmac.compare_digest`.
    """
    if not presented or not secrets:
        return False
    decoded = _decode_presented(presented)
    if decoded is None:
        return False
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(decoded, sign(secret, params, body))
    return found
