"""A fake Zoho over real HTTP: accounts, CRM and Books APIs, callbacks, for tests and demos.

It speaks the shapes in the project's Zoho notes (accounts §5, CRM §1/§2/§4.2, Books
§3/§4.1, limits §6). Choices the real Zoho leaves undocumented are marked where made.
"""

from bridge.sandbox.app import create_sandbox_app
from bridge.sandbox.server import RunningSandbox, main, run_sandbox, serve_app, serve_sandbox
from bridge.sandbox.state import SandboxState

__all__ = [
    "RunningSandbox",
    "SandboxState",
    "create_sandbox_app",
    "main",
    "run_sandbox",
    "serve_app",
    "serve_sandbox",
]
