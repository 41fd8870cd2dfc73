"""Console: channels (managed and imported) with renew and disable for managed ones, and
the setup page: connections, Books sources, pull subscriptions."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bridge.domain.states import ConnectionStatus
from bridge.errors import InvalidInput
from bridge.runtime import Runtime
from bridge.services.health import reauth_problem
from bridge.services.views import connection_view, gap_view, source_view, subscription_view
from bridge.web.console_kit import PREFIX, page, render

ACTIONS = {"renew": "Renew now", "disable": "Disable"}


async def _channels(request: Request, runtime: Runtime, csrf: str) -> Response:
    channels = await runtime.channels.views()
    gaps = [gap_view(g) for g in await runtime.managed_channels.gaps()]
    return render("console/channels.html", csrf=csrf, channels=channels, gaps=gaps[-50:],
                  done=request.query_params.get("done"), signed_in=True)  # fmt: skip


def _action(request_action: str) -> str:
    if request_action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}")
    return request_action


async def _confirm(request: Request, runtime: Runtime, csrf: str) -> Response:
    action = _action(request.query_params.get("action", ""))
    channel = await runtime.managed_channels.view(request.path_params["channel_id"])
    return render("console/confirm_channel.html", csrf=csrf, channel=channel, action=action,
                  label=ACTIONS[action], signed_in=True)  # fmt: skip


async def _act(request: Request, runtime: Runtime, csrf: str) -> Response:
    form = await request.form()
    action = _action(str(form.get("action", "")))
    channel_id = request.path_params["channel_id"]
    await runtime.managed_channels.view(channel_id)  # 404 for an imported or unknown one
    if action == "renew":
        renewed = await runtime.managed_channels.renew_now(channel_id)
        until = f"{renewed.expires_at:%Y-%m-%d %H:%M} UTC" if renewed.expires_at else "unknown"
        done = f"channel {channel_id} renewed; it expires {until}"
    else:
        note = await runtime.managed_channels.disable(channel_id)
        done = f"channel {channel_id} disabled ({note})"
    return RedirectResponse(f"{PREFIX}/channels?{urlencode({'done': done})}", 303)


async def _setup(request: Request, runtime: Runtime, csrf: str) -> Response:
    base = runtime.settings.public_url or str(request.base_url).rstrip("/")
    connections = []
    for info in await runtime.connections.all():
        fix = reauth_problem(info) if info.status is ConnectionStatus.NEEDS_REAUTH else None
        connections.append({**connection_view(info), "fix": fix})
    status = await runtime.deliveries.status()
    newest = status.last_seq or 0
    subscriptions = [{**subscription_view(s), "lag": max(newest - s.acked_seq, 0)}
                     for s in await runtime.subscriptions.all()]  # fmt: skip
    return render("console/setup.html", csrf=csrf, connections=connections,
                  sources=[source_view(s, base) for s in await runtime.sources.all()],
                  subscriptions=subscriptions, newest=newest, signed_in=True)  # fmt: skip


routes = [
    Route(f"{PREFIX}/channels", page(_channels), methods=["GET"]),
    Route(f"{PREFIX}/channels/{{channel_id}}/action", page(_confirm), methods=["GET"]),
    Route(f"{PREFIX}/channels/{{channel_id}}/action", page(_act), methods=["POST"]),
    Route(f"{PREFIX}/setup", page(_setup), methods=["GET"]),
]
