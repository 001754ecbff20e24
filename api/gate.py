"""The gate of every HTTP route: `GatedRoute` checks the key against the role the route declares
(`api.auth.requires`) and admits the request under the concurrency limit when the route is
`api.overload.bounded` - after routing, before the body is read or parsed.

FastAPI reads and parses a body (a multipart upload, a JSON document) before it runs a route's
dependencies, so a dependency alone would parse an unauthenticated 8 MB upload before its 401.
The gate wraps the route's handler (FastAPI's `get_route_handler` hook, which it also applies to
routes of included routers), so it sees the route's own declarations. A refused request's body
is read and dropped, never kept or parsed (at most the body limit, which `BodyLimitMiddleware`
enforces outside), so that the client reads the answer instead of a reset connection.

Every router of the API is built with `route_class=GatedRoute`; a route without it still checks
its key, in its `requires` dependency, but only after the body is parsed.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.auth import PRINCIPAL_KEY, Authenticator, Role, key_from, peer_of
from api.errors import error_response
from api.overload import ConcurrencyLimit, overloaded
from harclip.wire import ApiError

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


@dataclass(frozen=True, slots=True)
class Rule:
    """What a route declares: the role its key needs (None: open), whether it writes, and
    whether it counts against the concurrency limit."""

    role: Role | None = None
    write: bool = False
    bounded: bool = False


class GatedRoute(APIRoute):
    """An `APIRoute` whose handler authenticates and admits a request before reading its body."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        rule = rule_of(self.dependant)
        if rule.role is None and not rule.bounded:
            return handler

        async def gated(request: Request) -> Response:
            runtime = request.app.state.runtime
            auth: Authenticator = runtime.auth
            if rule.role is not None:
                try:
                    request.scope[PRINCIPAL_KEY] = auth.check(
                        key_from(request.headers), rule.role, write=rule.write,
                        peer=peer_of(request.scope),
                    )  # fmt: skip
                except ApiError as e:
                    return await _refuse(request, e)
            if not rule.bounded:
                return await handler(request)
            limit: ConcurrencyLimit = runtime.predicts
            if not limit.try_acquire():
                busy = f"{limit.limit} predict requests are being served; try again shortly"
                return await _refuse(request, overloaded(busy))
            try:
                return await handler(request)
            finally:
                limit.release()

        return gated


def rule_of(dependant: Dependant) -> Rule:
    """The rule a route's dependencies declare (`requires(role)`, `bounded`)."""
    role: Role | None = None
    write = bounded = False
    for call in _calls(dependant):
        marked = getattr(call, "harclip_role", None)
        if marked is not None:
            role, write = marked
        bounded = bounded or bool(getattr(call, "harclip_bounded", False))
    return Rule(role, write, bounded)


def _calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


async def _refuse(request: Request, err: ApiError) -> Response:
    """The answer `err`, once what the client sends is read and dropped (a client that sent
    `Expect: 100-continue` sends nothing until asked)."""
    if request.headers.get("expect", "").lower() != "100-continue":
        async for _ in request.stream():
            pass
    return error_response(err)
