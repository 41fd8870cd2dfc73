"""`zoho-bridge send-sample`: post a payload from samples/ to a running bridge."""

from __future__ import annotations

import json
from pathlib import Path

import click
import httpx

SAMPLE_CONTENT_TYPES = {".json": "application/json", ".form": "application/x-www-form-urlencoded"}


def samples_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_samples", package.parent / "samples"):
        if candidate.is_dir():
            return candidate
    raise click.ClickException("cannot find the samples directory")


def available() -> list[str]:
    return sorted(p.stem for p in samples_dir().iterdir() if p.suffix in SAMPLE_CONTENT_TYPES)


def _find(name: str) -> Path:
    for suffix in SAMPLE_CONTENT_TYPES:
        path = samples_dir() / f"{name.removesuffix(suffix)}{suffix}"
        if path.is_file():
            return path
    raise click.ClickException(f"no sample {name!r}; there are: {', '.join(available())}")


@click.command("send-sample")
@click.argument("name", required=False)
@click.option("--url", envvar="BRIDGE_URL", default="http://127.0.0.1:8000", show_default=True,
              help="The running bridge (or BRIDGE_URL).")  # fmt: skip
@click.option("--source", default="books", show_default=True, help="Books source name.")
@click.option("--token", help="The token to send: a Books source's (as ?token=) or a CRM "
              "channel's (replacing the sample's).")  # fmt: skip
@click.option("--crm-token", "crm_token", hidden=True, help="Old spelling of --token (CRM).")
@click.option("--event", help="Books ?event= value: created, updated or deleted.")
@click.option("--channel-id", help="CRM: replace the sample's channel_id.")
@click.option("--list", "list_only", is_flag=True, help="List the samples and exit.")
def send_sample(
    name: str | None,
    url: str,
    source: str,
    token: str | None,
    event: str | None,
    channel_id: str | None,
    crm_token: str | None,
    list_only: bool,
) -> None:
    """Post sample NAME (e.g. crm-insert, books-invoice) to the bridge at --url; exits 1
    when the bridge refuses it (a wrong --token: see it with `zoho-bridge requests list`)."""
    if list_only or not name:
        click.echo("\n".join(available()))
        return
    path = _find(name)
    body = path.read_bytes().strip()
    params: dict[str, str] = {}
    if path.stem.startswith("crm"):
        target = f"{url.rstrip('/')}/hooks/crm"
        doc = json.loads(body)
        if channel_id:
            doc["channel_id"] = channel_id
        if token or crm_token:
            doc["token"] = token or crm_token
        body = json.dumps(doc).encode()
    else:
        target = f"{url.rstrip('/')}/hooks/books/{source}"
        if token:
            params["token"] = token
        if event:
            params["event"] = event
    try:
        response = httpx.post(
            target,
            content=body,
            params=params,
            headers={"Content-Type": SAMPLE_CONTENT_TYPES[path.suffix]},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {target}: {exc}") from None
    click.echo(f"{response.status_code} {response.text}")
    if response.status_code >= 400:
        raise SystemExit(1)
