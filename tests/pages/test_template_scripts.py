"""No Jinja output inside JavaScript: Alpine expressions (`x-…`, `@…`, `:…`) and htmx's JSON
attributes get data through `data-` attributes or `|tojson`. HTML escaping does not protect a
JavaScript string: `&#39;` in an attribute is a plain `'` to the expression that reads it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from comfyui_docker.services import Services
from comfyui_docker.settings import Settings
from comfyui_docker.web.app import create_app

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "comfyui_docker" / "web" / "templates"
SCRIPT_ATTR = re.compile(
    r"""(?:^|[\s%}])((?:x-[\w.:-]+|@[\w.:-]+|:[\w.-]+|hx-on[\w:.-]*|hx-vals|hx-headers|on[a-z]+))"""
    r"""=("[^"]*"|'[^']*')""",
    re.S,
)
JINJA = re.compile(r"{{(.*?)}}|{%(.*?)%}", re.S)


def script_attributes(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)[1:-1]) for m in SCRIPT_ATTR.finditer(text)]


def test_the_scanner_sees_what_it_must_refuse() -> None:
    found = script_attributes("""<a @click="go('{{ name }}')" x-text='{{ a | tojson }}'>""")
    assert found == [("@click", "go('{{ name }}')"), ("x-text", "{{ a | tojson }}")]


def test_no_template_puts_jinja_output_in_a_script_attribute() -> None:
    bad = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        for name, value in script_attributes(path.read_text(encoding="utf-8")):
            for m in JINJA.finditer(value):
                expr = (m.group(1) or m.group(2) or "").strip()
                if m.group(1) is not None and re.search(r"\|\s*tojson\s*$", expr):
                    continue  # JSON, escaped for HTML attributes (quotes, <, >, &)
                bad.append(f"{path.name}: {name}={value[:80]!r}")
    assert bad == []


async def test_a_quote_in_the_workspace_path_stays_data(tmp_path: Path) -> None:
    root = tmp_path / "ws');window.pwned=1;('"
    settings = Settings.from_env({"WORKSPACE_ROOT": str(root)}, cwd=tmp_path)
    svc = Services.create(settings)
    svc.workspace.init()
    app = create_app(settings, svc)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            page = (await c.get("/workflows")).text
    for name, value in script_attributes(page):
        assert "pwned" not in value, (name, value)
    assert "data-folder=" in page and "pwned" in page.split("data-folder=", 1)[1][:400]
