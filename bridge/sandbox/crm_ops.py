"""CRM record changes made through `SandboxState`, and the callbacks they fire."""

from __future__ import annotations

from typing import Any

from bridge.sandbox.callbacks import channel_wants, crm_payload
from bridge.sandbox.core import StateCore
from bridge.sandbox.model import Change, CrmRecord, Delivery, Org

# Fields a lead conversion copies onto the new Contact.
_CONTACT_FIELDS = ("First_Name", "Last_Name", "Email", "Phone", "Mobile")


class CrmOps(StateCore):
    """Create, update, delete and convert CRM records; notify live channels.

    `visible_after` (seconds; default `visibility_delay`) holds a change back from list
    and COQL reads although its Modified_Time is already set, like the "about a minute"
    before CRM changes reach the API (reconciliation.md C15, UNCERTAIN). Callbacks are
    not held back.
    """

    # Which callbacks a lead conversion fires, as (module, operation). UNCERTAIN: no
    # source says what the Notification API sends on conversion. Assumed: the lead is
    # updated (it is marked converted, its Modified_Time moves) and a Contact is inserted.
    # Set to () to model a conversion that announces nothing.
    convert_callbacks: tuple[tuple[str, str], ...] = (("Leads", "update"), ("Contacts", "insert"))

    def crm_create(
        self,
        module: str,
        fields: dict[str, Any],
        *,
        org: str | None = None,
        visible_after: float | None = None,
    ) -> str:
        """Create a record and notify channels watching `{module}.create`."""
        target = self.org(org)
        record = self._put(target, module, fields, visible_after)
        self._notify_crm(target, module, "insert", record, {})
        return record.id

    def crm_update(
        self,
        module: str,
        record_id: str,
        fields: dict[str, Any],
        *,
        org: str | None = None,
        visible_after: float | None = None,
    ) -> None:
        """Change fields of a record and notify channels watching `{module}.edit`."""
        target = self.org(org)
        record = target.crm_records[module][record_id]
        self._hold_back(record, visible_after)
        record.fields.update(fields)
        record.modified = self.clock.dt()
        self._notify_crm(target, module, "update", record, dict(fields))

    def crm_delete(self, module: str, record_id: str, *, org: str | None = None) -> None:
        """Move a record to the recycle bin and notify channels watching `.delete`."""
        target = self.org(org)
        record = target.crm_records[module].pop(record_id)
        deleted = self.clock.dt()
        target.crm_deleted.setdefault(module, []).append(
            {
                "id": record_id,
                "display_name": str(record.fields.get("Last_Name", record_id)),
                "type": "recycle",
                "deleted_by": {"name": "Sandbox User", "id": "1"},
                "created_by": {"name": "Sandbox User", "id": "1"},
                "deleted_time": deleted.isoformat(),
            }
        )
        record.modified = deleted  # the version a delete produces is stamped when it happened
        self._notify_crm(target, module, "delete", record, {})

    def crm_convert(
        self, lead_id: str, *, org: str | None = None, visible_after: float | None = None
    ) -> str:
        """Convert a lead: it is marked converted (Modified_Time moves) and leaves the
        default Leads list (visible with `converted=true|both`), a Contact is created from
        it, and nothing is deleted (reconciliation.md C8). Returns the Contact's id."""
        target = self.org(org)
        lead = target.crm_records["Leads"][lead_id]
        self._hold_back(lead, visible_after)
        lead.converted = True
        lead.modified = self.clock.dt()
        copied = {k: lead.fields[k] for k in _CONTACT_FIELDS if k in lead.fields}
        contact = self._put(target, "Contacts", copied, visible_after)
        for module, operation in self.convert_callbacks:
            record = lead if module == "Leads" else contact
            self._notify_crm(target, module, operation, record, {})
        return contact.id

    def _put(
        self, org: Org, module: str, fields: dict[str, Any], visible_after: float | None
    ) -> CrmRecord:
        now = self.clock.dt()
        record = CrmRecord(self.new_id(), now, now, dict(fields))
        record.visible_at = self.clock.now() + self._delay(visible_after)
        org.crm_records.setdefault(module, {})[record.id] = record
        return record

    def _hold_back(self, record: CrmRecord, visible_after: float | None) -> None:
        """Before a change: keep what the read APIs see now until the change shows."""
        now = self.clock.now()
        delay = self._delay(visible_after)
        if delay <= 0:
            record.shown, record.visible_at = None, now
            return
        seen = record.view(now)
        record.shown = None if seen is None else (seen if seen is record.shown else seen.snapshot())
        record.visible_at = now + delay

    def _delay(self, visible_after: float | None) -> float:
        return self.visibility_delay if visible_after is None else visible_after

    def _notify_crm(
        self, org: Org, module: str, operation: str, record: CrmRecord, values: dict[str, Any]
    ) -> None:
        now = self.clock.dt()
        change = Change("crm", org.name, module, record.id, operation, record.modified)
        for channel in org.channels.values():
            if channel.expiry <= now or not channel_wants(channel, module, operation):
                # "After this time, notifications for the channel are not sent." (§1.2)
                continue
            payload = crm_payload(
                channel,
                org.dc,
                module,
                operation,
                [record.id],
                values,
                int(self.clock.now() * 1000),
            )
            self._enqueue(
                Delivery(
                    "crm", org.name, channel.notify_url, payload, channel.channel_id, change=change
                )
            )
