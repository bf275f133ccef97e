"""Workflows API: list/read/upload/download/rename/delete with validated names, and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import build, client_for

UI = {"nodes": [{"id": 1, "type": "EmptyImage", "widgets_values": [64, 48, 1, 0]}], "links": []}
API = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0}}}


async def test_upload_multipart_then_list_read_download(client, app_svc) -> None:
    files = {"file": ("my flow.json", json.dumps(UI).encode(), "application/json")}
    r = await client.post("/api/workflows", files=files)
    assert r.status_code == 201 and r.json()["name"] == "my flow.json"
    assert (app_svc[1].workspace.workflows / "my flow.json").is_file()
    listed = (await client.get("/api/workflows")).json()
    assert [w["name"] for w in listed["workflows"]] == ["my flow.json"] and listed["total"] == 1
    r = await client.get("/api/workflows/my flow.json")
    assert r.status_code == 200 and r.json() == UI
    r = await client.get("/api/workflows/my flow.json/download")
    assert r.headers["content-disposition"].startswith("attachment")
    assert r.json() == UI


async def test_upload_json_and_conflict(client) -> None:
    r = await client.post("/api/workflows", json={"name": "api", "workflow": API})
    assert r.status_code == 201 and r.json()["name"] == "api.json"
    r = await client.post("/api/workflows", json={"name": "api.json", "workflow": API})
    assert r.status_code == 409
    r = await client.post(
        "/api/workflows", params={"overwrite": "true"}, json={"name": "api.json", "workflow": UI}
    )
    assert r.status_code == 201
    assert (await client.get("/api/workflows/api.json")).json() == UI


async def test_save_rename_delete(client) -> None:
    assert (await client.put("/api/workflows/a.json", json=UI)).status_code == 200
    assert (await client.put("/api/workflows/b.json", json=API)).status_code == 200
    r = await client.post("/api/workflows/a.json/rename", json={"new_name": "b.json"})
    assert r.status_code == 409
    r = await client.post("/api/workflows/a.json/rename", json={"new_name": "c"})
    assert r.status_code == 200 and r.json()["name"] == "c.json"
    assert (await client.get("/api/workflows/a.json")).status_code == 404
    r = await client.delete("/api/workflows/c.json")
    assert r.status_code == 200
    assert (await client.delete("/api/workflows/c.json")).status_code == 404


async def test_action_paths_are_never_workflow_names(client, app_svc) -> None:
    """`x/download` is the download of `x`: a PUT there is a method the download does not take
    (405 with Allow), not a save of a workflow `x/download.json`; `…/download.json` is a name."""
    assert (await client.put("/api/workflows/x.json", json=UI)).status_code == 200
    for method, path, allow in [
        ("PUT", "/api/workflows/x/download", "GET, HEAD"),
        ("DELETE", "/api/workflows/x/rename", "POST"),
        ("GET", "/api/workflows/x/run", "POST"),
    ]:
        r = await client.request(method, path, json=UI)
        assert r.status_code == 405, (method, path, r.text)
        assert r.headers["allow"] == allow and r.json()["error"]["code"] == "method_not_allowed"
    assert not (app_svc[1].workspace.workflows / "x").exists()
    assert (await client.put("/api/workflows/x/download.json", json=UI)).status_code == 200
    assert (await client.get("/api/workflows/x/download.json")).json() == UI


BAD_NAMES = [
    "..%2F..%2Fconfig%2Fuser_settings.yaml",
    "%2e%2e%2fsecret.json",
    "..%5Csecret.json",
    "%2Fetc%2Fpasswd",
    "x.json%00.txt",
    ".hidden.json",
    "..json",
]


@pytest.mark.parametrize("raw", BAD_NAMES)
async def test_traversal_names_refused_everywhere(client, app_svc, raw: str) -> None:
    svc = app_svc[1]
    (svc.workspace.config / "user_settings.yaml").write_text("a: 1\n")
    before = sorted(svc.workspace.root.rglob("*"))
    for method, path, kwargs in [
        ("GET", f"/api/workflows/{raw}", {}),
        ("GET", f"/api/workflows/{raw}/download", {}),
        ("DELETE", f"/api/workflows/{raw}", {}),
        ("PUT", f"/api/workflows/{raw}", {"json": UI}),
        ("POST", f"/api/workflows/{raw}/run", {}),
    ]:
        r = await client.request(method, path, **kwargs)
        assert r.status_code in (400, 404), (method, path, r.status_code)
    (svc.workspace.workflows / "ok.json").write_text(json.dumps(UI))
    before = sorted(svc.workspace.root.rglob("*"))
    r = await client.post("/api/workflows/ok.json/rename", json={"new_name": raw.replace("%2F", "/")})
    assert r.status_code in (400, 422)
    assert sorted(svc.workspace.root.rglob("*")) == before


@pytest.mark.parametrize(
    "name",
    [
        "../../evil.json",
        "/etc/cron.d/x.json",
        "a\\..\\b.json",
        "x\x00.json",
        "sub/../x.json",
        ".git/x.json",
        "a//b.json",
    ],
)
async def test_upload_names_refused(client, app_svc, name: str) -> None:
    files = {"file": (name, json.dumps(UI).encode(), "application/json")}
    r = await client.post("/api/workflows", files=files)
    assert r.status_code == 400, (name, r.text)
    r = await client.post("/api/workflows", json={"name": name, "workflow": UI})
    assert r.status_code == 400
    assert list(app_svc[1].workspace.workflows.iterdir()) == []
    assert not (app_svc[1].workspace.root / "evil.json").exists()


async def test_symlinked_workflow_to_outside_refused(tmp_path: Path) -> None:
    app, svc = build(tmp_path / "ws")
    secret = tmp_path / "secret.json"
    secret.write_text('{"nodes": []}')
    os.symlink(secret, svc.workspace.workflows / "link.json")
    async with client_for(app) as c:
        assert (await c.get("/api/workflows/link.json")).status_code == 400
        assert (await c.delete("/api/workflows/link.json")).status_code == 400
    assert secret.exists()


async def test_oversized_uploads(client, app_svc) -> None:
    big = b'{"nodes": [], "pad": "' + b"x" * (21 * 1024 * 1024) + b'"}'
    r = await client.post("/api/workflows", files={"file": ("big.json", big, "application/json")})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    async def chunks():
        for _ in range(22):
            yield b"x" * (1024 * 1024)

    r = await client.put(
        "/api/workflows/big.json", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert list(app_svc[1].workspace.workflows.iterdir()) == []


async def test_malformed_and_wrong_content(client) -> None:
    r = await client.put(
        "/api/workflows/x.json", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = await client.put("/api/workflows/x.json", json=[1, 2])
    assert r.status_code == 400
    r = await client.put("/api/workflows/x.json", json={"hello": "world"})
    assert r.status_code == 400 and "not a ComfyUI workflow" in r.json()["error"]["message"]
    files = {"file": ("x.json", b"\xff\xfe not utf8", "application/json")}
    assert (await client.post("/api/workflows", files=files)).status_code == 400
    r = await client.post("/api/workflows", content=b"plain", headers={"content-type": "text/plain"})
    assert r.status_code == 400 and "multipart" in r.json()["error"]["hint"]
    r = await client.post("/api/workflows", data={"name": "x.json"}, files={"other": ("a", b"b")})
    assert r.status_code == 400
    r = await client.post("/api/workflows", content=b"{bad", headers={"content-type": "application/json"})
    assert r.status_code == 400


async def test_run_when_comfyui_not_ready_is_503_with_state(tmp_path: Path) -> None:
    app, svc = build(tmp_path / "ws", supervisor="starting")
    (svc.workspace.workflows / "a.json").write_text(json.dumps(API))
    async with client_for(app) as c:
        r = await c.post("/api/workflows/a.json/run")
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["details"]["state"] == "starting" and "starting" in err["message"]
        r = await c.post("/api/generate", json={"workflow": API})
        assert r.status_code == 503


async def test_subfolders_are_listed_read_saved_renamed_and_deleted(client, app_svc) -> None:
    folder = app_svc[1].workspace.workflows
    assert folder == app_svc[1].workspace.root / "user" / "default" / "workflows"  # ComfyUI's own
    (folder / "people").mkdir()
    (folder / "people" / "portrait.json").write_text(json.dumps(UI))
    assert (await client.put("/api/workflows/a/b/deep.json", json=API)).status_code == 200
    listed = [w["name"] for w in (await client.get("/api/workflows")).json()["workflows"]]
    assert listed == ["a/b/deep.json", "people/portrait.json"]
    assert (await client.get("/api/workflows/people/portrait.json")).json() == UI
    assert (await client.get("/api/workflows/people%2Fportrait.json")).json() == UI
    r = await client.get("/api/workflows/people/portrait.json/download")
    assert r.headers["content-disposition"].startswith("attachment") and r.json() == UI
    r = await client.post("/api/workflows/people/portrait.json/rename", json={"new_name": "archive/old"})
    assert r.status_code == 200 and r.json()["name"] == "archive/old.json"
    assert (folder / "archive" / "old.json").is_file() and not (folder / "people" / "portrait.json").exists()
    r = await client.post("/api/workflows", json={"name": "x/y.json", "workflow": UI})
    assert r.status_code == 201 and r.json()["name"] == "x/y.json"
    assert (await client.delete("/api/workflows/a/b/deep.json")).json()["name"] == "a/b/deep.json"
    r = await client.post("/api/workflows/x/../../y.json/rename", json={"new_name": "z"})
    assert r.status_code in (400, 404)


async def test_a_subfolder_link_out_of_the_volume_is_refused(tmp_path: Path) -> None:
    app, svc = build(tmp_path / "ws")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.json").write_text(json.dumps(UI))
    os.symlink(outside, svc.workspace.workflows / "linked")
    async with client_for(app) as c:
        assert (await c.get("/api/workflows/linked/x.json")).status_code == 400
        assert (await c.put("/api/workflows/linked/new.json", json=UI)).status_code == 400
    assert sorted(p.name for p in outside.iterdir()) == ["x.json"]
