"""Operator actions shared by the admin API and the CLI: sources and imported channels."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.credentials import ChannelToken, new_token, token_digest
from bridge.errors import InvalidInput, NotFound, SecretKeyError
from bridge.secretbox import SecretBox
from bridge.store import channels as channel_store
from bridge.store import sources as source_store

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Zoho Books secrets are 12-50 alphanumeric characters (zoho.md §3.3).
BOOKS_SECRET_PATTERN = re.compile(r"^[A-Za-z0-9]{12,50}$")
MIN_TOKEN_LENGTH = 12
MAX_CRM_TOKEN_LENGTH = 50  # zoho.md §1.2: a longer token is INVALID_DATA at Zoho
SIGNATURE_MODES = ("enforce", "report")


@dataclass(frozen=True, slots=True)
class NewSource:
    info: source_store.SourceInfo
    generated_token: str | None


def _check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise InvalidInput(
            "name must be 1-64 characters: letters, digits, '_', '.', '-' (not first)"
        )


def _check_tokens(tokens: list[str], *, maximum: int | None = None) -> None:
    for token in tokens:
        if len(token) < MIN_TOKEN_LENGTH:
            raise InvalidInput(f"each token must be at least {MIN_TOKEN_LENGTH} characters")
        if maximum is not None and len(token) > maximum:
            raise InvalidInput(f"a CRM channel token must be at most {maximum} characters")
        if token != token.strip():
            raise InvalidInput("a token must not start or end with whitespace")


def _encrypt_secrets(box: SecretBox, secrets: list[str]) -> list[str]:
    for secret in secrets:
        if not BOOKS_SECRET_PATTERN.match(secret):
            raise InvalidInput(
                "each secret must be 12-50 letters and digits, as Zoho Books requires"
            )
    try:
        return [box.encrypt(s) for s in secrets]
    except SecretKeyError as exc:
        raise InvalidInput(exc.message) from None


async def add_source(
    engine: AsyncEngine,
    box: SecretBox,
    *,
    name: str,
    tokens: list[str] | None,
    secrets: list[str],
    signature_mode: str,
    now: datetime,
) -> NewSource:
    """Create a Books source. With neither tokens nor secrets given, a token is generated."""
    _check_name(name)
    if signature_mode not in SIGNATURE_MODES:
        raise InvalidInput("signature_mode must be 'enforce' or 'report'")
    generated = None
    if tokens is None and not secrets:
        generated = new_token()
        tokens = [generated]
    tokens = tokens or []
    _check_tokens(tokens)
    if not tokens and not secrets:
        raise InvalidInput("a source needs at least one verification method: a token or a secret")
    if not tokens and signature_mode == "report":
        raise InvalidInput("with no token, the signature must be enforced")
    info = await source_store.create_source(
        engine,
        name=name,
        token_hashes=[token_digest(t) for t in tokens],
        secrets_encrypted=_encrypt_secrets(box, secrets),
        signature_mode=signature_mode,
        now=now,
    )
    return NewSource(info, generated)


async def change_source(
    engine: AsyncEngine,
    box: SecretBox,
    name: str,
    *,
    now: datetime,
    tokens: list[str] | None = None,
    secrets: list[str] | None = None,
    signature_mode: str | None = None,
    enabled: bool | None = None,
) -> source_store.SourceInfo:
    """Replace a source's tokens and/or secrets (list several to rotate), or switch it."""
    current = await source_store.get_source(engine, name)
    if current is None:
        raise NotFound(f"no source named {name!r}")
    changes: dict[str, object] = {}
    if tokens is not None:
        _check_tokens(tokens)
        changes["token_hashes"] = [token_digest(t) for t in tokens]
    if secrets is not None:
        changes["secrets_encrypted"] = _encrypt_secrets(box, secrets)
    if signature_mode is not None:
        if signature_mode not in SIGNATURE_MODES:
            raise InvalidInput("signature_mode must be 'enforce' or 'report'")
        changes["signature_mode"] = signature_mode
    if enabled is not None:
        changes["enabled"] = enabled
    has_tokens = bool(changes.get("token_hashes", current.token_hashes))
    has_secrets = bool(changes.get("secrets_encrypted", current.secrets_encrypted))
    if not has_tokens and not has_secrets:
        raise InvalidInput("a source needs at least one verification method: a token or a secret")
    return await source_store.update_source(engine, name, now, **changes)


async def import_channel(
    engine: AsyncEngine,
    *,
    channel_id: str,
    token: str,
    events: list[str],
    source: str,
    now: datetime,
) -> channel_store.ChannelInfo:
    if not channel_id.isdigit() or len(channel_id) > 64:
        raise InvalidInput("channel_id must be the decimal channel id Zoho knows")
    _check_tokens([token], maximum=MAX_CRM_TOKEN_LENGTH)
    _check_name(source)
    return await channel_store.import_channel(
        engine,
        channel_id=channel_id,
        token=ChannelToken(token_digest(token)),
        events=events,
        source=source,
        now=now,
    )


async def add_channel_token(
    engine: AsyncEngine,
    *,
    channel_id: str,
    token: str,
    retire_others_after: timedelta | None,
    now: datetime,
) -> channel_store.ChannelInfo:
    """Accept a new token; the current ones stay valid, or only for the given grace period."""
    _check_tokens([token], maximum=MAX_CRM_TOKEN_LENGTH)
    channel = await channel_store.get_channel(engine, channel_id)
    if channel is None:
        raise NotFound(f"no channel {channel_id}")
    kept = [t for t in channel.tokens if t.valid_at(now)]
    if retire_others_after is not None:
        until = now + retire_others_after
        kept = [ChannelToken(t.sha256, min(until, t.valid_until or until)) for t in kept]
    new = ChannelToken(token_digest(token))
    return await channel_store.replace_tokens(
        engine, channel_id, [*[t for t in kept if t.sha256 != new.sha256], new], now
    )
