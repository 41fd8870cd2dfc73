"""Zoho data centres: where each one's accounts server and API domain live (zoho.md §5)."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class DataCentre:
    """One Zoho data centre: its short name, accounts server and default API domain."""

    name: str
    accounts_url: str
    api_domain: str
    confirmed: bool = True


# From Zoho's v8 SDK `crm/api/dc/*_data_center.py` (CONFIRMED in zoho.md §5). Zoho's token
# response names the API domain to use; these are the defaults before the first refresh.
DATA_CENTRES: dict[str, DataCentre] = {
    dc.name: dc
    for dc in (
        DataCentre("com", "https://accounts.zoho.com", "https://www.zohoapis.com"),
        DataCentre("eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu"),
        DataCentre("in", "https://accounts.zoho.in", "https://www.zohoapis.in"),
        DataCentre("com.au", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
        DataCentre("jp", "https://accounts.zoho.jp", "https://www.zohoapis.jp"),
        # Canada's accounts server is on zohocloud.ca, not zoho.ca (SDK CA data centre).
        DataCentre("ca", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
        DataCentre("com.cn", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
        DataCentre("sa", "https://accounts.zoho.sa", "https://www.zohoapis.sa"),
        # UNCERTAIN: Zoho's multi-DC page lists a UK DC but the hosts were cut off in the
        # copy read (zoho.md §5); these follow the pattern of the others. Override per
        # connection if they turn out wrong.
        DataCentre("uk", "https://accounts.zoho.uk", "https://www.zohoapis.uk", confirmed=False),
    )
}


def data_centre(name: str) -> DataCentre:
    """The data centre called `name` (`com`, `eu`, ...), or `ConfigurationError`."""
    try:
        return DATA_CENTRES[name.lower().lstrip(".")]
    except KeyError:
        known = ", ".join(DATA_CENTRES)
        raise ConfigurationError(f"unknown Zoho data centre {name!r} (known: {known})") from None
