"""Services: orchestrate domain logic and storage. The web layer and the CLI call these."""
