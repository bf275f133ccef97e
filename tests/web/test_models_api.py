"""Models API: listing, disk usage, confined deletion, and missing models for a workflow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from comfyui_docker.model_paths import MODEL_FOLDERS
from comfyui_docker.workflows.refs import INPUT_FOLDERS

from .conftest import build, client_for


def put(svc, rel: str, data: bytes = b"weights") -> Path:
    path = svc.workspace.models / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


async def test_listing_sizes_owners_and_disk(client, app_svc) -> None:
    svc = app_svc[1]
    put(svc, "checkpoints/sd15.safetensors", b"x" * 10)
    put(svc, "loras/style/nested.safetensors", b"y" * 3)
    put(svc, "loras/.hidden", b"z")
    put(svc, "vae/ae.safetensors.part", b"p" * 5)
    body = (await client.get("/api/models")).json()
    assert set(body["folders"]) == {"checkpoints", "loras", "vae"}
    ck = body["folders"]["checkpoints"]
    assert ck["count"] == 1 and ck["bytes"] == 10
    f = ck["files"][0]
    assert f["name"] == "sd15.safetensors" and f["size"] == 10 and f["owners"] == ["SD15_BASE"]
    assert isinstance(f["mtime"], int)
    assert [x["name"] for x in body["folders"]["loras"]["files"]] == ["style/nested.safetensors"]
    assert body["folders"]["vae"]["files"][0]["partial"] is True
    assert body["disk"]["total"] > 0 and body["disk"]["free"] <= body["disk"]["total"]
    everything = (await client.get("/api/models", params={"include_empty": "true"})).json()
    assert set(MODEL_FOLDERS) <= set(everything["folders"])
    one = (await client.get("/api/models/loras")).json()
    assert one["folder"] == "loras" and one["count"] == 1
    assert (await client.get("/api/models/disk")).json()["total"] > 0


async def test_unknown_folder_suggests(client) -> None:
    r = await client.get("/api/models/lora")
    assert r.status_code == 404 and "loras" in r.json()["error"]["hint"]


async def test_delete_file(client, app_svc) -> None:
    path = put(app_svc[1], "loras/style/a.safetensors", b"abc")
    r = await client.delete("/api/models/loras/style/a.safetensors")
    assert r.status_code == 200 and r.json()["bytes"] == 3
    assert not path.exists()
    r = await client.delete("/api/models/loras/style/a.safetensors")
    assert r.status_code == 404


async def test_delete_owned_file_needs_force(client, app_svc) -> None:
    svc = app_svc[1]
    path = put(svc, "checkpoints/sd15.safetensors")
    svc.presets.installed.add("SD15_BASE")
    r = await client.delete("/api/models/checkpoints/sd15.safetensors")
    assert r.status_code == 409 and r.json()["error"]["details"]["owners"] == ["SD15_BASE"]
    assert path.exists()
    r = await client.delete("/api/models/checkpoints/sd15.safetensors", params={"force": "true"})
    assert r.status_code == 200 and not path.exists()


TRAVERSALS = [
    "..%2F..%2Fconfig%2Fextra_model_paths.yaml",
    "%2e%2e/%2e%2e/config/extra_model_paths.yaml",
    "%2e%2e%2f%2e%2e%2fconfig%2fextra_model_paths.yaml",
    "sub/..%2F..%2F..%2Fconfig%2Fextra_model_paths.yaml",
    "%2Fetc%2Fpasswd",
    "x.safetensors%00.txt",
    "..%5C..%5Cconfig%5Cextra_model_paths.yaml",
    ".%2Fx.safetensors",
]


@pytest.mark.parametrize("raw", TRAVERSALS)
async def test_delete_traversal_refused(client, app_svc, raw: str) -> None:
    svc = app_svc[1]
    put(svc, "loras/x.safetensors")
    before = sorted(p for p in svc.workspace.root.rglob("*"))
    r = await client.delete(f"/api/models/loras/{raw}")
    assert r.status_code in (400, 404), (raw, r.status_code, r.text)
    assert r.json()["error"]["code"] in ("invalid_input", "not_found")
    assert sorted(p for p in svc.workspace.root.rglob("*")) == before


async def test_delete_in_unknown_folder_refused(client, app_svc) -> None:
    (app_svc[1].workspace.config / "presets.yaml").write_text("presets: {}\n")
    r = await client.delete("/api/models/..%2Fconfig/presets.yaml")
    assert r.status_code in (400, 404)
    r = await client.delete("/api/models/config/presets.yaml")
    assert r.status_code == 404
    assert (app_svc[1].workspace.config / "presets.yaml").exists()


async def test_symlinks_out_of_the_volume(tmp_path: Path) -> None:
    app, svc = build(tmp_path / "ws")
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.safetensors"
    victim.write_bytes(b"precious")
    os.symlink(outside, svc.workspace.models / "loras" / "linkdir")
    os.symlink(victim, svc.workspace.models / "vae" / "link.safetensors")
    async with client_for(app) as c:
        r = await c.delete("/api/models/loras/linkdir/victim.safetensors")
        assert r.status_code == 400 and "outside" in r.json()["error"]["message"]
        r = await c.delete("/api/models/vae/link.safetensors")
        assert r.status_code == 400
    assert victim.read_bytes() == b"precious"
    assert (svc.workspace.models / "vae" / "link.safetensors").is_symlink()


def every_folder_workflow() -> dict:
    """A UI workflow naming a model, with its URL, in every ComfyUI model folder."""
    nodes = []
    for i, folder in enumerate(MODEL_FOLDERS, start=1):
        nodes.append(
            {
                "id": i,
                "type": "Note",
                "mode": 0,
                "properties": {
                    "models": [
                        {
                            "name": f"{folder}-model.safetensors",
                            "url": f"https://huggingface.co/x/y/resolve/main/{folder}.safetensors",
                            "directory": folder,
                        }
                    ]
                },
                "widgets_values": [],
            }
        )
    return {"nodes": nodes, "links": [], "version": 0.4}


async def test_missing_models_in_every_folder_type(client, app_svc) -> None:
    svc = app_svc[1]
    put(svc, "vae/vae-model.safetensors")  # one of them is present
    body = (await client.post("/api/models/missing", json={"workflow": every_folder_workflow()})).json()
    folders = {m["folder"] for m in body["missing"]}
    assert folders == set(MODEL_FOLDERS) - {"vae"}
    assert body["total"] == len(MODEL_FOLDERS) - 1 == body["installable"]
    for m in body["missing"]:
        assert m["install"] == {
            "kind": "url",
            "url": m["url"],
            "host": "huggingface.co",
            "allowed": True,
            "why": None,
        }


async def test_missing_models_api_prompt_every_loader_input(client, app_svc) -> None:
    prompt = {
        str(i): {"class_type": "SomeLoader", "inputs": {name: f"{name}.safetensors"}}
        for i, name in enumerate(INPUT_FOLDERS, start=1)
    }
    prompt["99"] = {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}}
    body = (await client.post("/api/models/missing", json={"workflow": prompt})).json()
    got = {(m["folder"], m["name"]) for m in body["missing"]}
    assert {(folder, f"{name}.safetensors") for name, folder in INPUT_FOLDERS.items()} <= got
    ae = next(m for m in body["missing"] if m["name"] == "ae.safetensors")
    assert ae["providers"] == ["FLUX_SCHNELL"]
    assert ae["install"] == {"kind": "preset", "preset_id": "FLUX_SCHNELL"}


async def test_install_missing_starts_presets_and_url_downloads(client, app_svc) -> None:
    workflow = {
        "1": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "2": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-schnell.safetensors"}},
    }
    ui = every_folder_workflow()
    ui["nodes"] = ui["nodes"][:2]
    r = await client.post("/api/models/install-missing", json={"workflow": workflow})
    body = r.json()
    assert r.status_code == 200
    assert [t["preset_id"] for t in body["tasks"]] == ["FLUX_SCHNELL"]  # one preset, started once
    r = await client.post("/api/models/install-missing", json={"workflow": ui})
    task = r.json()["tasks"][0]
    files = app_svc[1].presets.task(task["id"]).files
    assert [f["path"] for f in files] == [
        f"{MODEL_FOLDERS[0]}/{MODEL_FOLDERS[0]}-model.safetensors",
        f"{MODEL_FOLDERS[1]}/{MODEL_FOLDERS[1]}-model.safetensors",
    ]


async def test_missing_models_bad_input(client) -> None:
    r = await client.post("/api/models/missing", json={"workflow": {"foo": "bar"}})
    assert r.status_code == 400
    r = await client.post("/api/models/missing", json={"workflow": []})
    assert r.status_code == 422
    r = await client.post(
        "/api/models/missing", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "malformed_json"


async def test_folder_listing_stays_on_the_volume_and_ends(client, app_svc, tmp_path: Path) -> None:
    """A link loop used to hang the listing and grow memory; a link to /etc listed /etc."""
    loras = app_svc[1].workspace.models / "loras"
    put(app_svc[1], "loras/real.safetensors")
    (loras / "loop").symlink_to(loras)  # loras/loop/loop/loop/...
    (loras / "deep").mkdir()
    (loras / "deep" / "back").symlink_to(loras / "deep")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.safetensors").write_bytes(b"x")
    (loras / "etc").symlink_to(outside)
    (loras / "passwd.safetensors").symlink_to("/etc/passwd")
    vae = app_svc[1].workspace.models / "vae"
    (vae / "v.safetensors").write_bytes(b"v")
    (loras / "shared_vae.safetensors").symlink_to(vae / "v.safetensors")  # on the volume: listed
    body = (await client.get("/api/models/loras")).json()
    names = sorted(f["name"] for f in body["files"])
    assert names == ["real.safetensors", "shared_vae.safetensors"]  # each folder once, nothing off the volume
    assert "truncated" not in body
