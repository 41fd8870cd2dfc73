"""The accounts server: the refresh grant and revocation (zoho.md §5)."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.sandbox.model import Grant
from bridge.sandbox.replies import answer, dc_of, state_of

TOKEN_LIFETIME = 3600
# "up to ten access tokens in a span of ten minutes" per refresh token (§5, CONFIRMED).
TOKENS_PER_WINDOW = 10
WINDOW = 600.0
TOKEN_LABEL = "POST /oauth/v2/token"
REVOKE = "POST /oauth/v2/token/revoke"


async def token(request: Request) -> Response:
    state, dc = state_of(request), dc_of(request)
    # The grant is form-encoded (§5); parsed by hand so the sandbox needs no multipart lib.
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    client_id, refresh = str(form.get("client_id", "")), str(form.get("refresh_token", ""))
    if form.get("grant_type") != "refresh_token":
        return answer(request, TOKEN_LABEL, 400, {"error": "unsupported_grant_type"})
    org = next((o for o in state.orgs.values() if o.client_id == client_id and o.dc == dc), None)
    if org is None or form.get("client_secret") != org.client_secret:
        return answer(request, TOKEN_LABEL, 200, {"error": "invalid_client"})
    if refresh not in org.refresh_tokens:
        # Zoho answers a dead refresh token with HTTP 200 and `invalid_code` (§5).
        return answer(request, TOKEN_LABEL, 200, {"error": "invalid_code"}, org=org.name)
    now = state.clock.now()
    recent = [t for t in org.token_requests.get(refresh, []) if now - t < WINDOW]
    if len(recent) >= TOKENS_PER_WINDOW:
        throttled = {
            "error_description": "You have made too many requests continuously. "
            "Please try again after some time.",
            "error": "Access Denied",
            "status": "failure",
        }
        return answer(request, TOKEN_LABEL, 400, throttled, org=org.name)
    org.token_requests[refresh] = [*recent, now]
    access = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
    state.grants[access] = Grant(org.name, dc, now + TOKEN_LIFETIME, refresh)
    api_domain = f"{request.url.scheme}://{request.url.netloc}/dc/{dc}/api"
    body: dict[str, object] = {
        "access_token": access,
        "expires_in": TOKEN_LIFETIME,
        "api_domain": api_domain,
        "token_type": "Bearer",
    }
    return answer(request, TOKEN_LABEL, 200, body, org=org.name)


async def revoke(request: Request) -> Response:
    state = state_of(request)
    refresh = request.query_params.get("token", "")
    for org in state.orgs.values():
        if refresh in org.refresh_tokens:
            org.refresh_tokens.discard(refresh)
            return answer(request, REVOKE, 200, {"status": "success"}, org=org.name)
    return answer(request, REVOKE, 400, {"error": "invalid_token", "status": "failure"})


routes = [
    Route("/oauth/v2/token", token, methods=["POST"]),
    Route("/oauth/v2/token/revoke", revoke, methods=["POST"]),
]
