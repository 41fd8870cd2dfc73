"""The in-memory stores pass the store contracts."""

from __future__ import annotations

import pytest

from bridge.zoho.memory import MemoryBudgetStore, MemoryTokenStore
from bridge.zoho.ports import BudgetStore, TokenStore

from .contracts import BudgetStoreContract, TokenStoreContract


class TestMemoryTokenStore(TokenStoreContract):
    @pytest.fixture
    def store(self) -> TokenStore:
        return MemoryTokenStore()


class TestMemoryBudgetStore(BudgetStoreContract):
    @pytest.fixture
    def store(self) -> BudgetStore:
        return MemoryBudgetStore()
