"""Storage adapters: SQLAlchemy 2 (async) on SQLite and PostgreSQL."""
