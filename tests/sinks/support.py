"""Shared test helpers: broker URLs, the sample event, a refused port."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bridge.domain.events import Operation, Origin, Product, StoredEvent

REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def sample_event(**overrides: Any) -> StoredEvent:
    """The product.md example event; keyword arguments replace fields."""
    event = StoredEvent(
        id="01JD3Q6W8M6V7J4K3Z5X2N1B0A",
        seq=1042,
        product=Product.CRM,
        source="acme-eu",
        module="Leads",
        operation=Operation.UPDATED,
        record_id="5725767000003000010",
        occurred_at=datetime(2024, 6, 11, 14, 25, 53, 625000, tzinfo=UTC),
        origin=Origin.WEBHOOK,
        data={"Last_Name": "Müller", "Lead_Status": "Contacted"},
    )
    return replace(event, **overrides)


def closed_port_socket() -> socket.socket:
    """A bound but not listening socket: connecting to its port is refused until it listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock
