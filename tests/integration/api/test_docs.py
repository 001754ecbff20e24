"""The OpenAPI pages work offline: `/docs` and `/redoc` reference only this server's own URLs,
and every asset they load is served by it (from an installed package, not a CDN)."""

from __future__ import annotations

import re

import pytest

from tests.support.api import Serve

# src="...", href="...", spec-url="..." (ReDoc), and the quoted URLs the page's inline script
# passes to Swagger UI
_URL = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|\burl:\s*['"]([^'"]+)['"]""")


def _references(html: str) -> list[str]:
    return [a or b for a, b in _URL.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_local_assets(serve: Serve, page: str) -> None:
    async with serve() as client:
        h = client._http
        resp = await h.get(page)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        html = resp.text
        assert "cdn" not in html.lower() and "googleapis" not in html
        refs = _references(html)
        assert any(r.endswith(".js") for r in refs), refs
        for ref in refs:
            assert ref.startswith("/") and not ref.startswith("//"), f"{page} loads {ref}"
            asset = await h.get(ref)
            assert asset.status_code == 200, ref
            assert asset.content, ref
        scripts = [r for r in refs if r.endswith(".js")]
        for src in scripts:
            asset = await h.get(src)
            assert "javascript" in asset.headers["content-type"], src
            assert len(asset.content) > 100_000, src  # the real bundle, not a stub
        if page == "/docs":
            assert "/openapi.json" in refs and "/docs-assets/swagger-ui.css" in refs
            assert '"validatorUrl": null' in html  # no call to validator.swagger.io
            redirect = await h.get("/docs/oauth2-redirect")
            assert redirect.status_code == 200
