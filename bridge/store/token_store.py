"""`TokenStore` on the database: access tokens encrypted, one refresh at a time everywhere.

The lock is what keeps replicas inside Zoho's ten-tokens-per-ten-minutes limit (zoho.md
§5): on PostgreSQL a transaction-scoped advisory lock keyed by the connection name; on
SQLite (one process by design) an asyncio lock per connection.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.secretbox import SecretBox
from bridge.store.database import begin, connect
from bridge.store.models import TokenRow
from bridge.store.upsert import upsert
from bridge.zoho.tokens import StoredToken

# Advisory lock keys share one 64-bit space per database; this prefix keeps token locks
# apart from any other user of advisory locks.
_LOCK_NAMESPACE = "zoho-bridge:token:"


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_xact_lock`."""
    digest = hashlib.sha256((_LOCK_NAMESPACE + name).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class DbTokenStore:
    """A `TokenStore` in the `zoho_tokens` table."""

    def __init__(self, engine: AsyncEngine, box: SecretBox) -> None:
        self._engine = engine
        self._box = box
        self._postgres = engine.dialect.name == "postgresql"
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def load(self, connection: str) -> StoredToken | None:
        async with connect(self._engine) as conn:
            row = (
                await conn.execute(select(TokenRow).where(TokenRow.connection == connection))
            ).first()
        if row is None:
            return None
        token = row.access_token_encrypted
        return StoredToken(
            access_token=self._box.decrypt(token) if token else None,
            api_domain=row.api_domain,
            expires_at=float(row.expires_at),
            requested_at=tuple(float(t) for t in row.requested_at),
        )

    async def save(self, connection: str, token: StoredToken) -> None:
        values = {
            "connection": connection,
            "access_token_encrypted": self._box.encrypt(token.access_token)
            if token.access_token
            else None,
            "api_domain": token.api_domain,
            "expires_at": token.expires_at,
            "requested_at": list(token.requested_at),
        }
        async with begin(self._engine) as conn:
            await upsert(conn, TokenRow, values, ["connection"])

    @asynccontextmanager
    async def lock(self, connection: str) -> AsyncIterator[None]:
        async with self._locks[connection]:
            if not self._postgres:
                yield
                return
            # Held until this transaction ends, so a crashed holder frees it by itself.
            async with begin(self._engine) as conn:
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(connection)}
                )
                yield
