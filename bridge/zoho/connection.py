"""The plain data the client needs about one Zoho connection; no database here."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.zoho.datacentres import data_centre


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of an org's Zoho quota this bridge may spend.

    Books allows about 100 requests/min per org (zoho.md §6, UNCERTAIN), so 60/min leaves
    room for the customer's other integrations. Daily numbers are this bridge's share of
    the plan's cap, not the cap itself.
    """

    books_per_minute: int = 60
    books_daily: int = 1000
    crm_concurrency: int = 5
    crm_daily_credits: int = 2500


@dataclass(frozen=True, slots=True)
class Connection:
    """One Zoho OAuth identity for one organisation in one data centre.

    `accounts_url` and `api_domain` override the data centre's defaults (tests and the
    sandbox point them at a fake Zoho). `repr` hides the secrets.
    """

    name: str
    dc: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    organization_id: str | None = None
    accounts_url: str | None = None
    api_domain: str | None = None
    limits: Limits = field(default_factory=Limits)

    @property
    def accounts_base(self) -> str:
        """The accounts server to ask for tokens, without a trailing slash."""
        return (self.accounts_url or data_centre(self.dc).accounts_url).rstrip("/")

    @property
    def default_api_domain(self) -> str:
        """The API domain to use until a token response names one."""
        return (self.api_domain or data_centre(self.dc).api_domain).rstrip("/")
