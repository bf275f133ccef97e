"""WebSocket frame order, history, queue and jobs against the recorded runs (COMFYUI.md §2-§3)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp

from comfy_samples import sample
from fakes.comfyui_root.fake_comfy import png
from fakes.comfyui_root.launch import Comfy

TERMINAL = {"execution_success", "execution_error", "execution_interrupted"}


class Run:
    def __init__(self, frames: list[dict[str, Any]], post: dict[str, Any], history: dict[str, Any]) -> None:
        self.frames = frames
        self.post = post
        self.history = history


async def run_graph(comfy: Comfy, graph: dict[str, Any], *, interrupt_after: float | None = None) -> Run:
    client_id = f"t-{uuid.uuid4().hex[:8]}"
    frames: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{comfy.url}/ws?clientId={client_id}") as ws:
            first = json.loads((await ws.receive(timeout=10)).data)
            frames.append(first)
            async with session.post(
                f"{comfy.url}/prompt", json={"prompt": graph, "client_id": client_id}
            ) as r:
                assert r.status == 200, await r.text()
                post = await r.json()
            if interrupt_after is not None:

                async def interrupt() -> None:
                    await asyncio.sleep(interrupt_after)
                    async with session.post(f"{comfy.url}/interrupt", json={}) as r2:
                        assert r2.status == 200

                task = asyncio.create_task(interrupt())
            while True:
                msg = await ws.receive(timeout=30)
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                frame = json.loads(msg.data)
                frames.append(frame)
                if frame["type"] == "executing" and frame["data"]["node"] is None:
                    break
            if interrupt_after is not None:
                await task
        async with session.get(f"{comfy.url}/history/{post['prompt_id']}") as r:
            history = await r.json()
    return Run(frames, post, history)


def norm_frames(frames: list[dict[str, Any]], pid: str, client: str, subst: dict[str, str]) -> list[Any]:
    text = json.dumps(frames)
    for old, new in subst.items():
        text = text.replace(old, new)
    out = json.loads(text.replace(pid, "PID").replace(client, "CLIENT"))
    for frame in out:
        if "timestamp" in frame["data"]:
            frame["data"]["timestamp"] = 0
    return out


def recorded(name: str) -> tuple[list[Any], dict[str, Any], str, str]:
    rec = sample(name)
    pid = rec["post_prompt_response"]["prompt_id"]
    frames = [m["json"] for m in rec["messages"]]
    return norm_frames(frames, pid, rec["client_id"], {}), rec["history"][pid], pid, rec["client_id"]


def norm_history(entry: dict[str, Any], pid: str, subst: dict[str, str]) -> Any:
    text = json.dumps(entry)
    for old, new in subst.items():
        text = text.replace(old, new)
    out = json.loads(text.replace(pid, "PID"))
    out["prompt"][0] = 0
    out["prompt"][3] = {"client_id": "CLIENT", "create_time": 0}
    for _kind, data in out["status"]["messages"]:
        data["timestamp"] = 0
    return out


async def test_ws_g1_frames_history_and_png(comfy: Comfy) -> None:
    prefix = f"g1_{uuid.uuid4().hex[:6]}"
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 16711680},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }
    run = await run_graph(comfy, graph)
    pid = run.post["prompt_id"]
    client = run.frames[0]["data"]["sid"]
    want, want_hist, ref_pid, _ = recorded("ws_g1.json")
    assert norm_frames(run.frames, pid, client, {prefix: "cref_test"}) == want
    assert norm_history(run.history[pid], pid, {prefix: "cref_test"}) == norm_history(want_hist, ref_pid, {})
    data = (comfy.layout.output / f"{prefix}_00001_.png").read_bytes()
    assert png.size_of(data) == (64, 48)
    assert json.loads(png.text_chunks(data)["prompt"]) == graph

    # the same graph again: fully cached, `executed` replayed, nothing written
    again = await run_graph(comfy, graph)
    want_again, _, _, _ = recorded("ws_g1_again.json")
    got = norm_frames(
        again.frames, again.post["prompt_id"], again.frames[0]["data"]["sid"], {prefix: "cref_test"}
    )
    assert got == want_again
    assert sorted(p.name for p in comfy.layout.output.glob(f"{prefix}*")) == [f"{prefix}_00001_.png"]


async def test_ws_g2_scale_into_subfolder(comfy: Comfy) -> None:
    sub = f"cref{uuid.uuid4().hex[:6]}"
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 254},
        },
        "2": {
            "class_type": "ImageScale",
            "inputs": {
                "image": ["1", 0],
                "upscale_method": "bilinear",
                "width": 128,
                "height": 96,
                "crop": "disabled",
            },
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": f"{sub}/scaled"}},
    }
    run = await run_graph(comfy, graph)
    want, _, _, _ = recorded("ws_g2.json")
    got = norm_frames(run.frames, run.post["prompt_id"], run.frames[0]["data"]["sid"], {f'"{sub}"': '"cref"'})
    assert got == want
    assert png.size_of((comfy.layout.output / sub / "scaled_00001_.png").read_bytes()) == (128, 96)


async def test_ws_g3_progress_frames_and_temp_previews(comfy: Comfy) -> None:
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 4, "color": 8421503},
        },
        "2": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 16744447},
        },
        "3": {
            "class_type": "ColorTransfer",
            "inputs": {
                "image_target": ["1", 0],
                "image_ref": ["2", 0],
                "method": "reinhard_lab",
                "source_stats": "per_frame",
                "strength": 1.0,
            },
        },
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    run = await run_graph(comfy, graph)
    want, _, _, _ = recorded("ws_g3.json")
    kinds = [(f["type"], f["data"].get("node"), f["data"].get("value")) for f in run.frames]
    assert kinds == [(f["type"], f["data"].get("node"), f["data"].get("value")) for f in want]
    progress = [f["data"] for f in run.frames if f["type"] == "progress"]
    assert [(p["value"], p["max"]) for p in progress] == [(1, 4), (4, 4)]
    images = next(f for f in run.frames if f["type"] == "executed")["data"]["output"]["images"]
    assert len(images) == 4 and all(
        i["type"] == "temp" and i["filename"].startswith("ComfyUI_temp_") for i in images
    )
    assert (comfy.layout.temp / "temp" / images[0]["filename"]).is_file()


async def test_ws_g4_execution_error_on_dummy_checkpoint(comfy: Comfy) -> None:
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "2": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["1", 2]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
    }
    run = await run_graph(comfy, graph)
    want, want_hist, _, _ = recorded("ws_g4_error.json")
    assert [f["type"] for f in run.frames] == [f["type"] for f in want]
    error = next(f["data"] for f in run.frames if f["type"] == "execution_error")
    ref = next(f["data"] for f in want if f["type"] == "execution_error")
    assert set(error) == set(ref)
    text = json.dumps(error).replace(str(comfy.layout.vol), "/workspace/vol")
    error = json.loads(text)
    for key in ("node_id", "node_type", "executed", "exception_message", "exception_type", "current_inputs"):
        assert error[key] == ref[key], key
    entry = run.history[run.post["prompt_id"]]
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    assert entry["outputs"] == {} == want_hist["outputs"]
    assert entry["status"]["messages"][-1][0] == "execution_error"


# Observed on a real ComfyUI 0.33 (safetensors 0.8): what each loader says about a broken model file.
LOADER_ERRORS = [
    (
        "CheckpointLoaderSimple",
        "ckpt_name",
        2,
        "checkpoints",
        b"not really a model\n",
        "safetensors._safetensors_rust.SafetensorError",
        "Error while deserializing header: header too large\n",
    ),
    (
        "CheckpointLoaderSimple",
        "ckpt_name",
        2,
        "checkpoints",
        b"",
        "safetensors._safetensors_rust.SafetensorError",
        "Error while deserializing header: header too small\n",
    ),
    (
        "VAELoader",
        "vae_name",
        0,
        "vae",
        b"tiny but not a model",
        "safetensors._safetensors_rust.SafetensorError",
        "Error while deserializing header: header too large\n",
    ),
    (
        "VAELoader",
        "vae_name",
        0,
        "vae",
        (2).to_bytes(8, "little") + b"{}",
        "RuntimeError",
        "ERROR: VAE is invalid: None\n\nIf the VAE is from a checkpoint loader node your checkpoint does not "
        "contain a valid VAE.\n",
    ),
]


async def test_loaders_fail_on_broken_files_like_safetensors(comfy: Comfy) -> None:
    for n, (cls, field, out, folder, data, exc_type, message) in enumerate(LOADER_ERRORS):
        name = f"broken{n}.safetensors"
        (comfy.layout.vol / "models" / folder / name).write_bytes(data)
        graph = {
            "1": {"class_type": cls, "inputs": {field: name}},
            "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "2": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["1", out]}},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
        }
        run = await run_graph(comfy, graph)
        error = next(f["data"] for f in run.frames if f["type"] == "execution_error")
        assert (error["node_type"], error["exception_type"]) == (cls, exc_type), name
        assert error["exception_message"] == message, name


async def test_ws_g5_interrupt(comfy: Comfy) -> None:
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 512, "height": 512, "batch_size": 300, "color": 8421504},
        },
        "2": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 16744448},
        },
        "3": {
            "class_type": "ColorTransfer",
            "inputs": {
                "image_target": ["1", 0],
                "image_ref": ["2", 0],
                "method": "mkl_lab",
                "source_stats": "per_frame",
                "strength": 1.0,
            },
        },
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    run = await run_graph(comfy, graph, interrupt_after=0.5)
    types = [f["type"] for f in run.frames]
    assert types[-3:] == ["execution_interrupted", "status", "executing"]
    data = run.frames[-3]["data"]
    assert data["node_id"] == "3" and data["node_type"] == "ColorTransfer" and "1" in data["executed"]
    assert set(data) == set(
        next(
            m["json"]["data"]
            for m in sample("ws_g5_interrupt.json")["messages"]
            if m["json"]["type"] == "execution_interrupted"
        )
    )
    status = run.history[run.post["prompt_id"]]["status"]
    assert (status["status_str"], status["completed"], status["messages"][-1][0]) == (
        "error",
        False,
        "execution_interrupted",
    )


async def test_status_broadcast_but_execution_frames_only_to_owner(comfy: Comfy) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{comfy.url}/ws") as other:
        hello = json.loads((await other.receive(timeout=10)).data)
        assert hello["type"] == "status" and len(hello["data"]["sid"]) == 32
        graph = {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 4242},
            },
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bcast"}},
        }
        await run_graph(comfy, graph)
        seen = []
        while True:
            try:
                msg = await other.receive(timeout=0.5)
            except TimeoutError:
                break
            seen.append(json.loads(msg.data)["type"])
        assert seen and set(seen) == {"status"}
        await other.send_str(json.dumps({"type": "feature_flags", "data": {}}))
        reply = json.loads((await other.receive(timeout=5)).data)
        assert reply == {"type": "feature_flags", "data": sample("features.json")}


async def test_queue_interrupt_history_and_jobs(comfy: Comfy) -> None:
    def long(color: int, frames: int) -> dict[str, Any]:
        return {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 64, "height": 64, "batch_size": frames, "color": color},
            },
            "2": {
                "class_type": "EmptyImage",
                "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 1},
            },
            "3": {
                "class_type": "ColorTransfer",
                "inputs": {
                    "image_target": ["1", 0],
                    "image_ref": ["2", 0],
                    "method": "mkl_lab",
                    "source_stats": "per_frame",
                    "strength": 1.0,
                },
            },
            "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
        }

    small = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 42},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "qp"}},
    }
    url = comfy.url
    async with aiohttp.ClientSession() as s:

        async def post(path: str, body: Any) -> tuple[int, str]:
            async with s.post(url + path, json=body) as r:
                return r.status, await r.text()

        async def get(path: str) -> Any:
            async with s.get(url + path) as r:
                assert r.status == 200
                return await r.json()

        # one finished prompt of this test's own first: the pagination check below needs more
        # than the two jobs this test leaves, whatever ran before it in this module
        status, text = await post("/prompt", {"prompt": small, "client_id": "queue-probe"})
        assert status == 200
        done = json.loads(text)["prompt_id"]
        for _ in range(400):
            if await get(f"/history/{done}"):
                break
            await asyncio.sleep(0.05)
        ids = []
        # the first runs long enough (a real ComfyUI on CPU: seconds) to be interrupted while running
        for graph in (long(1234567, 1000), long(7654321, 2), small):
            status, text = await post("/prompt", {"prompt": graph, "client_id": "queue-probe"})
            assert status == 200
            ids.append(json.loads(text)["prompt_id"])
            # /api/jobs orders by creation time in milliseconds: prompts queued within the same
            # millisecond come back in no defined order
            await asyncio.sleep(0.005)
        a, b, c = ids
        await asyncio.sleep(0.2)
        queue = await get("/queue")
        assert [e[1] for e in queue["queue_running"]] == [a]
        assert [e[1] for e in queue["queue_pending"]] == [b, c]
        assert (
            len(queue["queue_running"][0]) == 5 and queue["queue_running"][0][3]["client_id"] == "queue-probe"
        )
        assert await get("/prompt") == {"exec_info": {"queue_remaining": 3}}
        jobs = await get("/api/jobs")
        assert [(j["id"], j["status"]) for j in jobs["jobs"][:3]] == [
            (c, "pending"),
            (b, "pending"),
            (a, "in_progress"),
        ]
        assert await post("/queue", {"delete": [c]}) == (200, "")
        assert [e[1] for e in (await get("/queue"))["queue_pending"]] == [b]
        assert await post("/interrupt", {"prompt_id": b}) == (200, "")
        assert len((await get("/queue"))["queue_pending"]) == 1
        assert await post("/interrupt", {"prompt_id": a}) == (200, "")
        for _ in range(100):
            if not (await get("/queue"))["queue_running"] and not (await get("/queue"))["queue_pending"]:
                break
            await asyncio.sleep(0.05)
        assert (await get(f"/history/{a}"))[a]["status"]["messages"][-1][0] == "execution_interrupted"
        assert (await get(f"/history/{b}"))[b]["status"]["status_str"] == "success"
        assert await get(f"/history/{c}") == {}
        assert await get("/history/does-not-exist") == {}
        assert list(await get("/history?max_items=1")) == [b]
        statuses = {j["id"]: j["status"] for j in (await get("/api/jobs"))["jobs"]}
        assert statuses[a] == "cancelled" and statuses[b] == "completed" and c not in statuses
        limited = await get("/api/jobs?limit=2")
        assert len(limited["jobs"]) == 2 and limited["pagination"]["has_more"] is True
        assert await post("/queue", {"clear": True}) == (200, "")
        assert await post("/history", {"delete": [b]}) == (200, "")
        assert await get(f"/history/{b}") == {}
