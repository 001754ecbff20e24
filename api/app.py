"""The API's FastAPI application (`create_app`) and its entry point
(`python -m api --bundle B [--host H] [--port P]`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

import harclip
from api import events, evidence, feedback, health, labels, predict, search, streams, watches, ws
from api.auth import generate_key
from api.docs import install_docs
from api.errors import install_handlers
from api.limits import BodyLimitMiddleware
from api.metrics import MetricsMiddleware
from api.origin import BrowserGuardMiddleware, allowed_hosts
from api.runtime import Runtime
from harclip.argtypes import PORT
from harclip.config import Settings, load_settings
from harclip.errors import HarclipError

if TYPE_CHECKING:
    from harclip.model.bundle import Bundle

log = logging.getLogger(__name__)

_DESCRIPTION = """Real-time human-action recognition with CLIP.

* **predict**: images (base64, URL or multipart upload) on the in-process engine; concurrent
  requests share micro-batches.
* **streams**: live predictions of camera streams (Redis) and their history (Elasticsearch).
* **search**: frames that match a text, by CLIP text embedding and kNN.
* **labels**: read or replace the label set; workers switch between batches.
* **watches**: standing text / example-image queries scored on every frame (docs/watches.md).
* WebSockets (not listed below): `/ws/streams/{id}` and `/ws/streams` stream live predictions
  (`?after=<entry id>` resumes), `/ws/ingest/{stream_id}` takes binary image frames. Their
  messages are the `harclip.wire` types (`type`: subscribed, prediction, heartbeat, dropped, ack,
  error with its HTTP-like `status`).

Errors are always `{"error": {"code": ..., "message": ...}}`. With auth on, send the key as
`X-API-Key` or `Authorization: Bearer <key>` (WebSockets also `?api_key=`); with auth off,
label changes and ingest still need an admin key.
"""


def create_app(settings: Settings, bundle: Bundle) -> FastAPI:
    """The API over `bundle`; the engine loads when the app starts (its lifespan)."""
    runtime = Runtime(settings, bundle)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="harclip API",
        version=harclip.__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by install_docs from installed assets, not from a CDN
        redoc_url=None,
        responses={500: {"description": "internal error (a bug: please report it)"}},
    )
    app.state.runtime = runtime
    app.state.auth = runtime.auth
    install_handlers(app)
    install_docs(app)
    for router in (
        health.router,
        predict.router,
        streams.router,
        search.router,
        labels.router,
        watches.router,
        events.router,
        evidence.router,
        feedback.router,
        ws.router,
    ):
        app.include_router(router)
    # Outermost last: metrics -> host and origin -> CORS -> body limit -> routes (each gated).
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api.max_body_bytes)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type", "Range"],
        )
    app.add_middleware(
        BrowserGuardMiddleware,
        hosts=allowed_hosts(settings.api.allowed_hosts, settings.api.host),
        origins=settings.api.cors_origins,
    )
    app.add_middleware(MetricsMiddleware, metrics=runtime.metrics)
    if not settings.auth.enabled and not runtime.auth.has_admin_key:
        log.warning(
            "auth is off and no admin key is set: label changes and ingest are refused "
            '(HARCLIP_AUTH__KEYS=\'{"<key>": "admin"}\', see python -m api --generate-key)'
        )
    return app


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m api", description="Serve the harclip API.")
    p.add_argument("--bundle", type=Path, help="model bundle (default: HARCLIP_MODEL__BUNDLE)")
    p.add_argument("--host", help="default: HARCLIP_API__HOST")
    p.add_argument("--port", type=PORT, help="default: HARCLIP_API__PORT")
    p.add_argument(
        "--generate-key",
        action="store_true",
        help="print a new random API key and exit (for HARCLIP_AUTH__KEYS)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.generate_key:
        print(generate_key())
        return 0
    try:
        import uvicorn

        from harclip.log import setup_logging
        from harclip.model.bundle import Bundle

        settings = load_settings()
        setup_logging("harclip-api", settings.log_format, settings.log_level, settings.log_shipping)
        bundle_path = args.bundle or settings.model.bundle
        if bundle_path is None:
            raise HarclipError("no model bundle: pass --bundle or set HARCLIP_MODEL__BUNDLE")
        app = create_app(settings, Bundle.load(bundle_path))
        host = args.host or settings.api.host
        port = args.port or settings.api.port
        log.info("serving on http://%s:%d (docs: /docs)", host, port)
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False,
                    ws_per_message_deflate=settings.api.ws_compression)  # fmt: skip
        return 0
    except HarclipError as e:
        print(f"api: error: {e}", file=sys.stderr)
        return 2
