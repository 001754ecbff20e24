"""GET / (what is served), /health (process up), /ready (model loaded, dependencies reachable)
and /metrics (Prometheus)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import harclip
from api.runtime import Runtime, RuntimeDep
from harclip.wire import Health, Readiness, ServiceInfo

router = APIRouter(tags=["service"])

_CHECK_TIMEOUT_S = 2.0


@router.get("/", response_model=ServiceInfo, summary="Service, model, engine and labels")
async def info(rt: RuntimeDep) -> ServiceInfo:
    m = rt.bundle.manifest
    return ServiceInfo(
        service="harclip-api",
        version=getattr(harclip, "__version__", "0"),
        model=rt.heads.current.model,
        base_model=m.base_model,
        engine=rt.engine.name if rt.engine is not None else rt.settings.model.engine,
        image_size=m.image_size,
        labels=list(rt.heads.head.labels),
        auth=rt.auth.enabled,
    )


@router.get("/health", response_model=Health, summary="The process is up")
async def health() -> Health:
    return Health(status="ok")


async def _check(name: str, rt: Runtime) -> str:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            if name == "redis":
                await rt.redis().ping()
            elif name == "elasticsearch":
                await rt.es().cluster.health()
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
async def ready(rt: RuntimeDep) -> JSONResponse:
    names = [
        n
        for n, on in (
            ("redis", rt.settings.redis.enabled),
            ("elasticsearch", rt.settings.elasticsearch.enabled),
        )
        if on
    ]
    results = await asyncio.gather(*(_check(n, rt) for n in names))
    checks = {
        "model": "ok" if rt.engine is not None else "not loaded",
        **dict(zip(names, results, strict=True)),
    }
    ok = all(v == "ok" for v in checks.values())
    body = Readiness(ready=ok, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (harclip_http_*, harclip_api_*)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(rt: RuntimeDep) -> Response:
    return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
