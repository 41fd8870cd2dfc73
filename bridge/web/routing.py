"""One route per path: a method the path does not take is answered 405 with every method
it does take in `Allow`.

Starlette tries routes in order, and for a method no route of a path takes it answers
405 with the `Allow` of the first route that matched the path only; modules declare one
route per method, so the answer named one method of several.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

Endpoint = Callable[[Request], Awaitable[Response]]


def one_route_per_path(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """`routes` with the plain function routes of one path merged into one route that
    dispatches on the method; the merged route takes the place of the first of them."""
    groups: dict[str, list[Route]] = {}
    for route in routes:
        if _mergeable(route):
            assert isinstance(route, Route)
            groups.setdefault(route.path, []).append(route)
    merged: list[BaseRoute] = []
    for route in routes:
        if not _mergeable(route):
            merged.append(route)
            continue
        assert isinstance(route, Route)
        group = groups.get(route.path)
        if group is None:
            continue  # merged into the first route of its path
        merged.append(group[0] if len(group) == 1 else _merge(route.path, group))
        del groups[route.path]
    return merged


def _mergeable(route: BaseRoute) -> bool:
    """A route of request-response functions (an ASGI app as endpoint stays as it is)."""
    return (
        isinstance(route, Route)
        and route.methods is not None
        and (inspect.isfunction(route.endpoint) or inspect.ismethod(route.endpoint))
    )


def _merge(path: str, group: list[Route]) -> Route:
    handlers: dict[str, Endpoint] = {}
    for route in group:
        for method in route.methods or ():
            handlers.setdefault(method, route.endpoint)

    async def endpoint(request: Request) -> Response:
        return await handlers[request.method](request)

    methods = sorted(handlers)
    return Route(path, endpoint, methods=methods, name=group[0].name)
