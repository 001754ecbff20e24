"""The OpenAPI pages, `/docs` (Swagger UI) and `/redoc`, with their scripts, styles and icon served
by this API from an installed package (`fastapi-offline` ships Swagger UI 5 and ReDoc), so the
pages work on an offline or air-gapped host. FastAPI's own pages load them from a CDN."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"  # where the package's static folder is mounted
# swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png
_PACKAGE = ("fastapi_offline", "static")
_OAUTH2_REDIRECT = "/docs/oauth2-redirect"

# Swagger UI would send the schema to validator.swagger.io for its badge: not offline.
_SWAGGER_PARAMETERS: dict[str, Any] = {
    "dom_id": "#swagger-ui",
    "layout": "BaseLayout",
    "deepLinking": True,
    "showExtensions": True,
    "showCommonExtensions": True,
    "validatorUrl": None,
}


def install_docs(app: FastAPI) -> None:
    """Add `/docs`, its OAuth2 redirect page, `/redoc` and the assets they load. The app must be
    built with `docs_url=None, redoc_url=None`."""
    assert app.docs_url is None and app.redoc_url is None, "FastAPI's CDN pages are still on"
    app.mount(ASSETS, StaticFiles(packages=[_PACKAGE]), name="docs-assets")
    title = app.title

    def urls(request: Request) -> tuple[str, str]:
        root = request.scope.get("root_path", "")
        return f"{root}{app.openapi_url}", f"{root}{ASSETS}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi, assets = urls(request)
        return get_swagger_ui_html(
            openapi_url=openapi,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            oauth2_redirect_url=_OAUTH2_REDIRECT,
            swagger_ui_parameters=_SWAGGER_PARAMETERS,
        )

    @app.get(_OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        openapi, assets = urls(request)
        return get_redoc_html(
            openapi_url=openapi,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )
