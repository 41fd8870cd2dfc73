"""`zoho-bridge events tail`: follow a pull subscription over the HTTP API."""

from __future__ import annotations

import asyncio
import json

import click
import httpx

from bridge.errors import BridgeError

WAIT = 25  # seconds per long-poll; below the server's 30 s limit and common proxy timeouts


@click.command("tail")
@click.option("--subscription", "name", required=True, help="Subscription name.")
@click.option("--url", envvar="BRIDGE_URL", default="http://127.0.0.1:8000", show_default=True,
              help="The running bridge (or BRIDGE_URL).")  # fmt: skip
@click.option("--token", envvar="BRIDGE_SUBSCRIPTION_TOKEN", required=True,
              help="The subscription's token (or BRIDGE_SUBSCRIPTION_TOKEN).")  # fmt: skip
@click.option("--after", type=click.IntRange(0), help="Start after this seq (default: acked).")
@click.option("--ack", is_flag=True, help="Acknowledge each batch once printed.")
@click.option("--json", "as_json", is_flag=True, help="Print each envelope as one JSON line.")
@click.option("--max-events", type=click.IntRange(1), help="Stop after this many events.")
def tail(
    name: str, url: str, token: str, after: int | None, ack: bool, as_json: bool,
    max_events: int | None,
) -> None:  # fmt: skip
    """Print events of a pull subscription as they arrive (Ctrl-C to stop)."""
    try:
        asyncio.run(_follow(name, url.rstrip("/"), token, after, ack, as_json, max_events))
    except KeyboardInterrupt:
        pass
    except BridgeError as exc:
        raise click.ClickException(exc.message) from None


async def _follow(
    name: str, url: str, token: str, after: int | None, ack: bool, as_json: bool,
    max_events: int | None,
) -> None:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{url}/v1/subscriptions/{name}"
    shown = 0
    start = "the acknowledged seq" if after is None else f"seq {after}"
    click.echo(f"following {name} at {url}: waiting for events after {start} "
               "(Ctrl-C to stop)", err=True)  # fmt: skip
    waiting = True  # whether "waiting" was said since the last event printed
    async with httpx.AsyncClient(headers=headers, timeout=WAIT + 10) as client:
        while max_events is None or shown < max_events:
            params = {"wait": WAIT, "limit": 100} | ({"after": after} if after is not None else {})
            try:
                response = await client.get(f"{base}/events", params=params)
            except httpx.TransportError as exc:
                click.echo(f"cannot reach {url}: {exc!r}; retrying", err=True)
                await asyncio.sleep(2)
                continue
            if response.status_code != 200:
                raise BridgeError(f"{response.status_code}: {_message(response)}")
            page = response.json()
            items = page["items"][: None if max_events is None else max_events - shown]
            for envelope in items:
                click.echo(json.dumps(envelope, ensure_ascii=False) if as_json else _line(envelope))
            shown += len(items)
            if items:
                waiting = False
            elif not waiting:
                seq = page["next"] if after is None else after
                click.echo(f"waiting for events of {name} after seq {seq} "
                           "(Ctrl-C to stop)", err=True)  # fmt: skip
                waiting = True
            after = items[-1]["bridgeseq"] if items else page["next"]
            if ack and items:
                await client.post(f"{base}/ack", json={"seq": after})


def _line(envelope: dict[str, object]) -> str:
    return (f"{envelope['bridgeseq']:>8}  {envelope['time']}  {envelope['type']}  "
            f"{envelope['subject']}  {envelope['id']}")  # fmt: skip


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", response.text))
    except ValueError:
        return response.text[:200]
