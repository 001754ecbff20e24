"""GET / (what is served), /health (process up), /ready (model loaded, dependencies reachable)
and /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import harclip
from api.auth import Authenticator, Principal, key_from, peer_of
from api.clients import Clients
from api.gate import GatedRoute
from api.runtime import AuthDep, ClientsDep, MetricsDep, PredictorDep, SettingsDep
from harclip.wire import Health, Readiness, ServiceInfo

router = APIRouter(tags=["service"], route_class=GatedRoute)
log = logging.getLogger(__name__)

_CHECK_TIMEOUT_S = 2.0
_PLAIN = frozenset({"ok", "not loaded"})  # check results any caller may read


def _caller(request: Request, auth: Authenticator) -> Principal | None:
    """The caller's principal if it shows a valid key (these routes are open: a missing key is
    fine, an unknown one costs the client's address a token, as everywhere)."""
    return auth.peek(key_from(request.headers), peer_of(request.scope))


def _local_path(name: str) -> bool:
    """Whether a base model name is a path on this host rather than a hub id (`org/name`)."""
    return (
        name.startswith(("/", "~", "."))
        or "\\" in name
        or name.count("/") != 1
        or Path(name).exists()
    )


@router.get(
    "/",
    response_model=ServiceInfo,
    summary="Service, model, engine and labels (labels only for callers who may read them)",
)
async def info(
    request: Request, predictor: PredictorDep, auth: AuthDep, settings: SettingsDep
) -> ServiceInfo:
    """Callers without read access (auth on, no valid key) get no labels; a base model loaded
    from a local path is named by its last folder only, unless the caller shows a valid key."""
    m = predictor.bundle.manifest
    caller = _caller(request, auth)
    base = m.base_model
    if caller is None and _local_path(base):
        base = "local:" + Path(base.replace("\\", "/")).name
    return ServiceInfo(
        service="harclip-api",
        version=getattr(harclip, "__version__", "0"),
        model=predictor.heads.current.model,
        base_model=base,
        engine=predictor.engine.name if predictor.engine is not None else settings.model.engine,
        image_size=m.image_size,
        labels=list(predictor.heads.head.labels) if caller or not auth.enabled else [],
        auth=auth.enabled,
        random_weights=m.random_weights,
    )


@router.get("/health", response_model=Health, summary="The process is up")
async def health() -> Health:
    return Health(status="ok")


async def _check(name: str, clients: Clients) -> str:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            if name == "redis":
                await clients.redis().ping()
            elif name == "elasticsearch":
                await clients.es().cluster.health()
        return "ok"
    except TimeoutError:
        return f"no answer within {_CHECK_TIMEOUT_S:g} s"
    except Exception as e:  # any failure of a probe means "not ready", with its reason
        return f"{type(e).__name__}: {e}"[:200]


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Model loaded and dependencies reachable (503 otherwise)",
    responses={503: {"model": Readiness, "description": "not ready; `checks` says why"}},
)
async def ready(
    request: Request,
    predictor: PredictorDep,
    clients: ClientsDep,
    auth: AuthDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Each check is "ok" or why not; only the model and `api.ready_requires` decide readiness
    (503). The reason's text (addresses, exception names) only for callers with a valid key,
    "unavailable" for others (the log has it too)."""
    names = [
        n
        for n, on in (
            ("redis", settings.redis.enabled),
            ("elasticsearch", settings.elasticsearch.enabled),
        )
        if on
    ]
    results = await asyncio.gather(*(_check(n, clients) for n in names))
    checks = {
        "model": "ok" if predictor.engine is not None else "not loaded",
        **dict(zip(names, results, strict=True)),
    }
    required = ("model", *settings.api.ready_requires)
    ok = all(v == "ok" for k, v in checks.items() if k in required)
    if any(v != "ok" for v in checks.values()):
        log.warning("%s: %s", "ready, degraded" if ok else "not ready", checks)
        if _caller(request, auth) is None:
            checks = {k: v if v in _PLAIN else "unavailable" for k, v in checks.items()}
    body = Readiness(ready=ok, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (harclip_http_*, harclip_api_*)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(api_metrics: MetricsDep) -> Response:
    return Response(generate_latest(api_metrics.registry), media_type=CONTENT_TYPE_LATEST)
