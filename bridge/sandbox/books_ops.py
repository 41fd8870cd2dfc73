"""Books record changes made through `SandboxState`, the webhooks they fire, and the
failed-delivery log behind "List failed workflow actions"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.domain.books_entities import BooksEntity, books_entity
from bridge.sandbox.callbacks import books_payload
from bridge.sandbox.core import StateCore
from bridge.sandbox.model import BooksEntitySettings, Change, Delivery, Org

FILTER_MODES = ("at_or_after", "equal", "ignored")
BOOKS_ACTIONS = ("insert", "update", "delete")


class BooksOps(StateCore):
    """Create, update and delete records of the nine Books entities in
    `bridge.domain.books_entities`; fire the org's webhooks for them.

    `entity` may be the list path (`customerpayments`) or the webhook key (`payment`).
    """

    def books_create(self, entity: str, fields: dict[str, Any], *, org: str | None = None) -> str:
        """Create a Books record; its webhook wraps it under the entity's key."""
        target, known = self.org(org), _entity(entity)
        stamp = books_time(self.clock.dt())
        record_id = self.new_id()
        record = {
            known.id_field: record_id,
            **fields,
            "created_time": stamp,
            "last_modified_time": stamp,
        }
        target.books_records.setdefault(known.path, {})[record_id] = record
        self._notify_books(target, known, record, "insert")
        return record_id

    def books_update(
        self, entity: str, record_id: str, fields: dict[str, Any], *, org: str | None = None
    ) -> None:
        """Change a Books record and fire the org's webhooks for `entity`."""
        target, known = self.org(org), _entity(entity)
        record = target.books_records[known.path][record_id]
        record.update(fields, last_modified_time=books_time(self.clock.dt()))
        self._notify_books(target, known, record, "update")

    def books_delete(self, entity: str, record_id: str, *, org: str | None = None) -> None:
        """Delete a Books record and fire the org's webhooks for `entity` (workflow rules
        can fire on delete: reconciliation.md B8)."""
        target, known = self.org(org), _entity(entity)
        record = target.books_records[known.path].pop(record_id)
        self._notify_books(target, known, record, "delete")

    def books_webhook(
        self,
        entity: str,
        url: str,
        *,
        org: str | None = None,
        actions: tuple[str, ...] = BOOKS_ACTIONS,
    ) -> None:
        """Send the Default Payload of every change to `entity` to `url`; `actions` limits
        it to some of `insert`, `update`, `delete`, as a workflow rule's action type does
        (Created, Edited, Deleted: reconciliation.md B8). The payload never says which
        action fired it, so a receiver tells deletions apart by the URL it gave the rule
        (e.g. `?event=deleted`)."""
        unknown = set(actions) - set(BOOKS_ACTIONS)
        if unknown or not actions:
            raise ValueError(f"actions must be some of {BOOKS_ACTIONS}, not {sorted(unknown)}")
        self.org(org).books_webhooks.append((_entity(entity).path, url, frozenset(actions)))

    def books_entity_settings(
        self, entity: str, *, filter: str | None = None, sortable: bool | None = None
    ) -> BooksEntitySettings:
        """Set how lists of `entity` treat `last_modified_time` (`at_or_after`, `equal`,
        `ignored`) and whether they accept `sort_column=last_modified_time`."""
        path = _entity(entity).path
        settings = self.books_settings.setdefault(path, BooksEntitySettings())
        if filter is not None:
            if filter not in FILTER_MODES:
                raise ValueError(f"filter must be one of {FILTER_MODES}")
            settings.filter = filter
        if sortable is not None:
            settings.sortable = sortable
        return settings

    def settings_for(self, path: str) -> BooksEntitySettings:
        return self.books_settings.get(path) or BooksEntitySettings()

    def _notify_books(
        self, org: Org, entity: BooksEntity, record: dict[str, Any], operation: str
    ) -> None:
        modified = (
            self.clock.dt()
            if operation == "delete"
            else datetime.strptime(record["last_modified_time"], "%Y-%m-%dT%H:%M:%S%z")
        )
        change = Change("books", org.name, entity.key, record[entity.id_field], operation, modified)
        for hooked, url, actions in org.books_webhooks:
            if hooked == entity.path and operation in actions:
                payload = books_payload(entity.key, record)
                self._enqueue(Delivery("books", org.name, url, payload, change=change))

    def record_failed_action(self, delivery: Delivery, reason: str) -> None:
        """Log a Books webhook that did not get a 2xx, as Workflow Logs do (zoho.md §3.4)."""
        org = self.orgs.get(delivery.org)
        if delivery.kind != "books" or org is None:
            return
        change = delivery.change
        org.failed_actions.append(
            {
                "action_id": self.new_id(),
                "action_type": "webhook",
                "entity": change.module if change else "",
                "entity_id": change.record_id if change else "",
                "url": delivery.url,
                "status_code": delivery.status,
                "failure_reason": reason,
                "execution_time": books_time(self.clock.dt()),
            }
        )


def books_time(when: datetime) -> str:
    # Books writes offsets without a colon, e.g. 2025-04-09T11:25:54-0400 (zoho.md §3.2).
    return when.strftime("%Y-%m-%dT%H:%M:%S%z")


def _entity(name: str) -> BooksEntity:
    found = books_entity(name)
    if found is None:
        raise KeyError(f"not a Books entity of bridge.domain.books_entities: {name!r}")
    return found
