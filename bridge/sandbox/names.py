"""Module and entity names given to the sandbox's control endpoints, checked before use:
a typo (`Lead`, `invoicez`) is refused with the name meant, instead of making records no
channel or Books rule will ever announce."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from bridge.domain.books_entities import BOOKS_ENTITIES, books_entity

# Zoho CRM's standard module API names. Other names are taken as custom modules, unless
# they are a near miss of one of these.
CRM_MODULES = (
    "Leads", "Contacts", "Accounts", "Deals", "Tasks", "Events", "Calls", "Products",
    "Quotes", "Sales_Orders", "Purchase_Orders", "Invoices", "Campaigns", "Vendors",
    "Price_Books", "Cases", "Solutions", "Notes",
)  # fmt: skip
BOOKS_NAMES = tuple(e.path for e in BOOKS_ENTITIES)


def unknown_names(crm: Iterable[str] = (), books: Iterable[str] = ()) -> str | None:
    """Why some of these names are refused, or None when all are usable."""
    problems = []
    for name in crm:
        if name in CRM_MODULES:
            continue
        close = difflib.get_close_matches(name, CRM_MODULES, n=1, cutoff=0.75)
        if close or name.lower() in (m.lower() for m in CRM_MODULES):
            meant = close[0] if close else next(m for m in CRM_MODULES if m.lower() == name.lower())
            problems.append(f"CRM module {name!r} is not a module; did you mean {meant!r}?")
    for name in books:
        if books_entity(name) is None:
            close = difflib.get_close_matches(name.lower(), BOOKS_NAMES, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                f"{name!r} is not a Books entity; {hint}known: {', '.join(BOOKS_NAMES)}"
            )
    return "; ".join(problems) or None
