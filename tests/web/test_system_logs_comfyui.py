"""System facts, the logs tail, ComfyUI's state and restart, and the page nginx shows while
ComfyUI is not ready."""

from __future__ import annotations

from pathlib import Path

from .conftest import PASSWORD, build, client_for, token_of


async def test_system_honest_without_gpu(client) -> None:
    body = (await client.get("/api/system")).json()
    assert body["cpu"]["count"] >= 1 and 0 <= body["cpu"]["percent"] <= 100 * body["cpu"]["count"]
    assert body["memory"]["total"] > body["memory"]["available"] > 0
    assert body["disk"]["total"] > 0 and body["disk"]["path"].endswith("ws")
    assert body["gpus"] == [] and body["gpu_error"].startswith("no GPU")
    assert body["versions"]["comfyui_docker"] and body["versions"]["python"]
    assert body["runpod"] is None
    assert body["services"]["comfyui"]["state"] == "unmanaged"


async def test_runpod_urls(tmp_path: Path) -> None:
    app, _ = build(tmp_path / "ws", RUNPOD_POD_ID="abc123xyz", DASHBOARD_PORT="8080", COMFYUI_PORT="3000")
    async with client_for(app) as c:
        rp = (await c.get("/api/system")).json()["runpod"]
    assert rp["pod_id"] == "abc123xyz"
    assert rp["urls"] == {
        "dashboard": "https://abc123xyz-8080.proxy.runpod.net",
        "comfyui": "https://abc123xyz-3000.proxy.runpod.net",
    }


async def test_logs_tail_search_and_redaction(tmp_path: Path) -> None:
    app, svc = build(tmp_path / "ws", password=PASSWORD)
    token = token_of(app)
    lines = [f"\x1b[32m[INFO]\x1b[0m line {i}" for i in range(5000)]
    lines.append(f"oops someone logged the password {PASSWORD} and token {token}")
    (svc.workspace.logs / "comfyui.log").write_text("\n".join(lines) + "\n")
    auth = {"authorization": f"Bearer {token}"}
    async with client_for(app, headers=auth) as c:
        srcs = (await c.get("/api/logs")).json()["sources"]
        assert [s["name"] for s in srcs] == ["comfyui"]
        body = (await c.get("/api/logs/comfyui", params={"lines": 3})).json()
        assert body["lines"][:2] == ["[INFO] line 4998", "[INFO] line 4999"]
        assert PASSWORD not in body["lines"][2] and token not in body["lines"][2]
        assert "********" in body["lines"][2]
        found = (await c.get("/api/logs/comfyui", params={"search": "line 123", "lines": 50})).json()["lines"]
        assert found == [
            f"[INFO] line {n}" for n in (123, 1230, 1231, 1232, 1233, 1234, 1235, 1236, 1237, 1238, 1239)
        ]
        assert (await c.get("/api/logs/nginx")).status_code == 404
        assert (await c.get("/api/logs/..%2Fconfig%2Fuser_settings")).status_code in (404, 422)
        assert (await c.get("/api/logs/comfyui", params={"lines": 0})).status_code == 422


async def test_restart_and_state_through_the_supervisor(tmp_path: Path) -> None:
    app, svc = build(tmp_path / "ws", supervisor="running")
    async with client_for(app) as c:
        assert (await c.get("/api/service/comfyui")).json()["state"] == "running"
        r = await c.post("/api/service/comfyui/restart")
        assert r.status_code == 202 and r.json()["status"] == "restarting"
        for _ in range(20):
            if svc.supervisor.restarts:
                break
            import asyncio

            await asyncio.sleep(0.01)
        assert svc.supervisor.restarts == 1
        assert (await c.get("/api/service/comfyui")).json()["state"] == "starting"
    app, _ = build(tmp_path / "b")
    async with client_for(app) as c:
        assert (await c.post("/api/service/comfyui/restart")).status_code == 503


async def test_comfyui_unavailable_page(tmp_path: Path) -> None:
    app, svc = build(tmp_path / "ws", supervisor="fatal")
    (svc.workspace.logs / "comfyui.log").write_text("Traceback <script>alert(1)</script>\nIMPORT FAILED x\n")
    async with client_for(app) as c:
        r = await c.get("/comfyui-unavailable", headers={"accept": "text/html"})
        assert r.status_code == 503 and r.headers["cache-control"] == "no-store"
        assert "fatal" in r.text and "IMPORT FAILED" in r.text
        assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;" in r.text
        # host-relative URLs only: the page also works on ComfyUI's own host
        assert 'fetch("/comfyui-unavailable?format=json"' in r.text and "http://" not in r.text
        j = (await c.get("/comfyui-unavailable", params={"format": "json"})).json()
        assert j["state"] == "fatal" and j["ready"] is False and "IMPORT FAILED" in j["log_tail"]
        svc.supervisor.state_value = "running"  # says running, but nothing listens yet: not ready
        j = (await c.get("/comfyui-unavailable", params={"format": "json"})).json()
        assert j["ready"] is False
