"""The database token and budget stores pass the store contracts on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.secretbox import SecretBox
from bridge.store.budget_store import DbBudgetStore
from bridge.store.database import create_engine
from bridge.store.token_store import DbTokenStore
from bridge.zoho.ports import BudgetStore, TokenStore
from bridge.zoho.tokens import StoredToken
from tests.support import SECRET_KEY
from tests.zoho.contracts import BudgetStoreContract, TokenStoreContract


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


class TestDbTokenStore(TokenStoreContract):
    @pytest.fixture
    def store(self, engine: AsyncEngine) -> TokenStore:
        return DbTokenStore(engine, SecretBox(SECRET_KEY))


class TestDbBudgetStore(BudgetStoreContract):
    @pytest.fixture
    def store(self, engine: AsyncEngine) -> BudgetStore:
        return DbBudgetStore(engine)


async def test_access_tokens_are_encrypted_at_rest(engine: AsyncEngine) -> None:
    store = DbTokenStore(engine, SecretBox(SECRET_KEY))
    await store.save("acme", StoredToken("1000.plain-access-token", None, 5.0, ()))
    async with engine.connect() as conn:
        from sqlalchemy import text

        raw = await conn.scalar(text("SELECT access_token_encrypted FROM zoho_tokens"))
    assert "plain-access-token" not in str(raw)


@pytest.mark.postgres
async def test_token_lock_excludes_another_replica(postgres_url: str) -> None:
    import asyncio

    first, second = create_engine(postgres_url), create_engine(postgres_url)
    box = SecretBox(SECRET_KEY)
    a, b = DbTokenStore(first, box), DbTokenStore(second, box)
    try:
        async with a.lock("acme"):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(_enter(b, "acme"), timeout=0.3)
        await asyncio.wait_for(_enter(b, "acme"), timeout=2)
    finally:
        await first.dispose()
        await second.dispose()


async def _enter(store: DbTokenStore, name: str) -> None:
    async with store.lock(name):
        pass
