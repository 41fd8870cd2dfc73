"""What `zoho-bridge sandbox` prints for each org: its credentials as one JSON line (for
scripts), a `connections add` line to paste, and the Books loop to try."""

from __future__ import annotations

import json
import shlex
from typing import Any

# A fake org's daily CRM credits are Zoho's smallest edition's; the demo's 1-minute polls
# need more room than a real org would give reconciliation.
DEMO_LIMITS = '{"crm_daily_credits": 100000}'


def announcement(org: dict[str, Any], sandbox_url: str) -> list[str]:
    """Lines for one org described by `control.describe_org`."""
    name = org["name"]
    command = [
        "zoho-bridge", "connections", "add", name, "--dc", org["dc"],
        "--client-id", org["client_id"], "--client-secret", org["client_secret"],
        "--refresh-token", org["refresh_tokens"][0],
        "--organization-id", org["organization_id"],
        "--accounts-url", org["accounts_url"], "--api-domain", org["api_domain"],
        "--limits", DEMO_LIMITS,
    ]  # fmt: skip
    control = f"{sandbox_url}/_sandbox/orgs/{name}"
    return [
        json.dumps(org),
        f"# org {name}: paste into a shell with the bridge's BRIDGE_* variables:",
        shlex.join(command),
        "# CRM loop: zoho-bridge channels create --connection "
        f"{shlex.quote(name)} --events Leads.all  (needs BRIDGE_PUBLIC_URL), then",
        f'#   curl -X POST {control}/crm/Leads -d \'{{"fields": {{"Last_Name": "Ada"}}}}\'',
        "# Books loop: zoho-bridge sources add books  (prints its webhook URL with ?token=), "
        f"zoho-bridge sources set books --connection {shlex.quote(name)}, then",
        f"#   curl -X POST {control}/books-webhooks "
        '-d \'{"entity": "invoices", "url": "<the webhook URL>"}\'',
        f"#   curl -X POST {control}/books/invoices "
        '-d \'{"fields": {"reference_number": "INV-1"}}\'   # the bridge gets the webhook',
    ]
