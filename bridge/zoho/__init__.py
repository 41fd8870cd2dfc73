"""Client side of Zoho: data centres, OAuth tokens, API budgets and the HTTP client.

Adapters that need storage (tokens, budgets) sit behind the protocols in `ports`; the
in-memory implementations here serve one process and the tests.
"""
