"""zoho-bridge: a self-hosted webhook receiver and event bridge for Zoho Books and Zoho CRM."""

__version__ = "0.1.0"
