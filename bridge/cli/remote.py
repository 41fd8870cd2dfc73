"""The admin API of a running bridge (BRIDGE_URL), for the commands that act on what the
server does: status, replay, outbox, requests, channel renewal. Over it, a command sees the
server's own sinks and configuration, not those of the shell it runs in."""

from __future__ import annotations

from typing import Any

import click
import httpx

from bridge.settings import Settings

TIMEOUT = 60.0  # a replay by filter queues in one request


class ApiError(click.ClickException):
    """The bridge answered with an error: its status and its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AdminApi:
    """Blocking calls to /admin/... with the admin token; errors become ClickExceptions."""

    def __init__(self, url: str, token: str, transport: httpx.BaseTransport | None = None):
        self.url = url
        self._client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT,
            transport=transport,
        )  # fmt: skip

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return self._call("GET", path, params=clean)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (body or {}).items() if v is not None}
        return self._call("POST", path, json=clean)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise click.ClickException(
                f"cannot reach the bridge at BRIDGE_URL={self.url}: {exc}"
            ) from None
        if response.status_code == 401:
            raise ApiError(401, f"the bridge at {self.url} refused BRIDGE_ADMIN_TOKEN")
        if response.status_code >= 400:
            raise ApiError(response.status_code, f"{self.url}: {_message(response)}")
        return response.json() if response.content else None

    def close(self) -> None:
        self._client.close()


def admin_api(settings: Settings) -> AdminApi | None:
    """The running bridge's admin API when BRIDGE_URL is set, else None (local database)."""
    if settings.url is None:
        return None
    if settings.admin_token is None:
        raise click.ClickException(
            f"BRIDGE_URL is set ({settings.url}) but BRIDGE_ADMIN_TOKEN is not: "
            "the admin API needs the server's token"
        )
    return AdminApi(settings.url, settings.admin_token.get_secret_value())


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return f"{response.status_code} {str(body)[:200]}"
