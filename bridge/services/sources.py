"""Books sources: the inbound URLs /hooks/books/{name}, their tokens and secrets."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.credentials import new_token, token_digest
from bridge.domain.states import SignatureMode
from bridge.errors import InvalidInput, NotFound, SecretKeyError
from bridge.secretbox import SecretBox
from bridge.services.lookup import Lookup
from bridge.store import connections as connection_store
from bridge.store import sources as store
from bridge.store.sources import SourceInfo

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Zoho Books secrets are 12-50 alphanumeric characters (zoho.md §3.3).
BOOKS_SECRET_PATTERN = re.compile(r"^[A-Za-z0-9]{12,50}$")
MIN_TOKEN_LENGTH = 12


def check_name(name: str, what: str = "name") -> None:
    """Names of sources, connections, subscriptions: safe in URLs, paths and logs."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"{what} must be 1-64 characters: letters, digits, '_', '.', '-' (not first)"
        )


def check_tokens(tokens: list[str], *, maximum: int | None = None) -> None:
    for token in tokens:
        if len(token) < MIN_TOKEN_LENGTH:
            raise InvalidInput(f"each token must be at least {MIN_TOKEN_LENGTH} characters")
        if maximum is not None and len(token) > maximum:
            raise InvalidInput(f"a CRM channel token must be at most {maximum} characters")
        if token != token.strip():
            raise InvalidInput("a token must not start or end with whitespace")


def _signature_mode(value: str) -> SignatureMode:
    try:
        return SignatureMode(value)
    except ValueError:
        raise InvalidInput("signature_mode must be 'enforce' or 'report'") from None


@dataclass(frozen=True, slots=True)
class NewSource:
    info: SourceInfo
    generated_token: str | None


@dataclass
class SourceService:
    """Create, change and read Books sources; a change is seen by this process at once
    (its lookup cache is told) and by other replicas within the cache time."""

    engine: AsyncEngine
    box: SecretBox
    lookup: Lookup
    clock: Callable[[], datetime]

    def _encrypt_secrets(self, secrets: list[str]) -> list[str]:
        for secret in secrets:
            if not BOOKS_SECRET_PATTERN.fullmatch(secret):
                raise InvalidInput(
                    "each secret must be 12-50 letters and digits, as Zoho Books requires"
                )
        try:
            return [self.box.encrypt(s) for s in secrets]
        except SecretKeyError as exc:
            raise InvalidInput(exc.message) from None

    async def add(
        self,
        name: str,
        *,
        tokens: list[str] | None = None,
        secrets: list[str] | None = None,
        signature_mode: str = SignatureMode.ENFORCE,
    ) -> NewSource:
        """Create a Books source. With neither tokens nor secrets given, a token is
        generated (returned here once: only its digest is stored)."""
        check_name(name)
        mode = _signature_mode(signature_mode)
        secrets = secrets or []
        generated = None
        if tokens is None and not secrets:
            generated = new_token()
            tokens = [generated]
        tokens = tokens or []
        check_tokens(tokens)
        if not tokens and not secrets:
            raise InvalidInput(
                "a source needs at least one verification method: a token or a secret"
            )
        if not tokens and mode is SignatureMode.REPORT:
            raise InvalidInput("with no token, the signature must be enforced")
        info = await store.create_source(
            self.engine,
            name=name,
            token_hashes=[token_digest(t) for t in tokens],
            secrets_encrypted=self._encrypt_secrets(secrets),
            signature_mode=mode,
            now=self.clock(),
        )
        self.lookup.forget_source(name)
        return NewSource(info, generated)

    async def change(
        self,
        name: str,
        *,
        tokens: list[str] | None = None,
        secrets: list[str] | None = None,
        signature_mode: str | None = None,
        enabled: bool | None = None,
        connection: str | None = None,
    ) -> SourceInfo:
        """Replace a source's tokens and/or secrets (list several to rotate), switch it,
        or link it to the Zoho connection of the same Books organization (`""` unlinks):
        its webhooks and that connection's reconciliation are then matched."""
        current = await self.get(name)
        changes: dict[str, object] = {}
        if tokens is not None:
            check_tokens(tokens)
            changes["token_hashes"] = [token_digest(t) for t in tokens]
        if secrets is not None:
            changes["secrets_encrypted"] = self._encrypt_secrets(secrets)
        if signature_mode is not None:
            changes["signature_mode"] = _signature_mode(signature_mode)
        if enabled is not None:
            changes["enabled"] = enabled
        if connection is not None:
            if (
                connection
                and await connection_store.get_connection(self.engine, connection) is None
            ):
                raise NotFound(f"no connection named {connection!r}")
            changes["connection"] = connection or None
        has_tokens = bool(changes.get("token_hashes", current.token_hashes))
        has_secrets = bool(changes.get("secrets_encrypted", current.secrets_encrypted))
        if not has_tokens and not has_secrets:
            raise InvalidInput(
                "a source needs at least one verification method: a token or a secret"
            )
        info = await store.update_source(self.engine, name, self.clock(), **changes)
        self.lookup.forget_source(name)
        return info

    async def all(self) -> list[SourceInfo]:
        return await store.list_sources(self.engine)

    async def get(self, name: str) -> SourceInfo:
        found = await store.get_source(self.engine, name)
        if found is None:
            raise NotFound(f"no source named {name!r}")
        return found
