"""Every section renders as a page and as an htmx fragment; static assets; the page weight budget."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import httpx
import pytest

from comfyui_docker.settings import Settings
from comfyui_docker.web.app import create_app
from comfyui_docker.web.pages.static import STATIC

SECTIONS = ["/", "/outputs", "/generate", "/models", "/workflows", "/nodes", "/settings", "/pro"]
BUDGET = 50 * 1024
BUILT = (STATIC / "app.css").is_file() and (STATIC / "vendor" / "htmx.min.js").is_file()
needs_build = pytest.mark.skipif(
    not BUILT, reason="front-end not built: run make install (scripts/build-frontend.sh)"
)


@pytest.mark.parametrize("path", SECTIONS)
async def test_section_full_page(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["vary"] == "HX-Request"
    html = r.text
    assert html.startswith("<!doctype html>")
    for href in ("/outputs", "/generate", "/models", "/workflows", "/nodes", "/settings", "/pro"):
        assert f'href="{href}"' in html
    assert 'aria-current="page"' in html
    assert 'id="no-password-warning"' in html  # no ACCESS_PASSWORD in these settings


@pytest.mark.parametrize("path", SECTIONS)
async def test_section_fragment_from_same_route(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path, headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert r.headers["vary"] == "HX-Request"
    assert "<html" not in r.text and "<nav" not in r.text
    assert r.text.strip()


async def test_boosted_request_gets_full_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/outputs", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" in r.text


async def test_password_set_hides_warning(tmp_path: Path) -> None:
    settings = Settings.from_env({"WORKSPACE_ROOT": str(tmp_path / "ws"), "ACCESS_PASSWORD": "s3cret-pass"})
    app = create_app(settings)
    app.state.dashboard.services.workspace.ensure()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        r = await c.get("/settings", follow_redirects=False)
        assert r.status_code in (303, 401)  # a page needs the login
        login = await c.post("/login", data={"password": "s3cret-pass", "next": "/settings"})
        assert login.status_code in (200, 303), login.text[:300]
        r = await c.get("/settings")
        assert r.status_code == 200
        assert "no-password-warning" not in r.text
        token = app.state.dashboard.auth.api_token()
        assert token and f'data-token="{token}"' in r.text
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', r.text)
        assert csrf and csrf.group(1)


async def test_static_assets_cached_and_gzipped(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    m = re.search(r'src="(/static/app\.js\?v=([0-9a-f]+))"', page)
    assert m, "app.js is referenced with its content hash"
    r = await client.get(m.group(1), headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert "immutable" in r.headers["cache-control"]
    assert (
        r.headers["content-type"].startswith("text/javascript") or "javascript" in r.headers["content-type"]
    )
    again = await client.get(m.group(1), headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert (await client.get("/static/../pages/rendering.py")).status_code == 404
    assert (await client.get("/static/%2e%2e/pages/rendering.py")).status_code == 404
    missing = await client.get("/static/nope.js")
    assert missing.status_code == 404


def _assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+\.(?:js|css)\?v=[0-9a-f]+)"', html)


@needs_build
@pytest.mark.parametrize("path", SECTIONS)
async def test_page_weight_budget(client: httpx.AsyncClient, path: str) -> None:
    """JS + CSS referenced by the page, each gzipped: at most 50 KB."""
    html = (await client.get(path)).text
    assets = _assets(html)
    assert (
        any("htmx" in a for a in assets)
        and any("alpine" in a for a in assets)
        and any("app.css" in a for a in assets)
    )
    total = 0
    for url in assets:
        r = await client.get(url, headers={"Accept-Encoding": "identity"})
        assert r.status_code == 200, url
        total += len(gzip.compress(r.content, 9))
    assert total <= BUDGET, f"{path}: {total} bytes gzip > {BUDGET}"


@needs_build
def test_css_has_only_used_classes() -> None:
    css = (STATIC / "app.css").read_text()
    assert ".grid-cols-2" in css  # used by the galleries
    assert ".grid-cols-11" not in css  # never used: Tailwind left it out
    assert len(css) < 60_000
