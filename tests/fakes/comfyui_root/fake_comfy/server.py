"""The fake's HTTP and WebSocket routes (COMFYUI.md §1-§3), every one also under /api except /internal."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import sys
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from .executor import Executor, Hub, QueueItem, now_ms
from .folders import FolderTable
from .nodes import RunContext, fill_dynamic
from .userdata import UserData
from .validate import validate_prompt

log = logging.getLogger("fake_comfy")
#: extra_data keys ComfyUI keeps out of /queue and /history (execution.SENSITIVE_EXTRA_DATA_KEYS).
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MB = 1024 * 1024

# The pinned packages ComfyUI 0.33 reports in /system_stats (comfyui-samples/system_stats.json).
PACKAGE_VERSIONS = (
    ("comfyui-frontend-package", "1.49.6"),
    ("comfyui-workflow-templates", "0.11.44"),
    ("comfyui-embedded-docs", "0.5.10"),
    ("comfy-kitchen", "0.2.31"),
    ("comfy-aimdo", "0.4.13"),
)


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@web.middleware
async def origin_only(request: web.Request, handler: Any) -> web.StreamResponse:
    """ComfyUI's guard when CORS is off (server.py, origin-only middleware): a browser request
    marked `Sec-Fetch-Site: cross-site` gets a bare 403; so does one whose `Origin` names
    another host than its loopback `Host` (the port is compared only when both carry one)."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return web.Response(status=403)
    host, origin = request.headers.get("Host"), request.headers.get("Origin")
    if host and origin:
        h = urllib.parse.urlsplit("//" + host.lower())
        o = urllib.parse.urlsplit(origin.lower())
        host_part = h.netloc if o.port is not None else h.hostname
        origin_part = o.netloc if h.port is not None else o.hostname
        if _loopback(h.hostname) and host_part and origin_part and host_part != origin_part:
            log.warning(
                "request with non matching host and origin %s != %s, returning 403", host_part, origin_part
            )
            return web.Response(status=403)
    if request.method == "OPTIONS":
        return web.Response()
    return await handler(request)


@dataclass
class Config:
    argv: list[str]
    output_dir: Path
    input_dir: Path
    temp_dir: Path
    user_dir: Path
    folders: FolderTable
    object_info: dict[str, Any]
    cpu: bool = True
    max_upload: int = 100 * MB
    metadata: bool = True
    step_seconds: float = 0.01
    foreign_argv: bool = False
    cors: bool = False  # --enable-cors-header: no origin check
    history_lag: float = 0.0  # FAKE_COMFYUI_MODE=history_lag:S
    log_entries: deque[dict[str, str]] = field(default_factory=lambda: deque(maxlen=300))


class FakeComfy:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.hub = Hub()
        self.executor = Executor(self.hub, self._context, self.info)
        self.executor.history_lag = cfg.history_lag

    # ---- helpers ---------------------------------------------------------------------------
    def info(self, cls: str) -> dict[str, Any]:
        if cls not in self.cfg.object_info:
            return {}
        return fill_dynamic(self.cfg.object_info, cls, self.cfg.folders, self.cfg.input_dir)

    def _context(self, item: QueueItem) -> RunContext:
        return RunContext(
            output_dir=self.cfg.output_dir,
            input_dir=self.cfg.input_dir,
            temp_dir=self.cfg.temp_dir,
            folders=self.cfg.folders,
            prompt=item.prompt,
            extra_pnginfo=dict(item.extra_data.get("extra_pnginfo") or {}),
            metadata=self.cfg.metadata,
            step_seconds=self.cfg.step_seconds,
        )

    def _custom(self, cls: str, name: str, value: Any) -> str | None:
        if cls in ("LoadImage", "LoadImageMask") and name == "image":
            rel = str(value).removesuffix(" [input]")
            path = (self.cfg.input_dir / rel).resolve()
            if not str(path).startswith(str(self.cfg.input_dir.resolve())) or not path.is_file():
                return f"Invalid image file: {value}"
        return None

    def _dir_for(self, kind: str | None) -> Path | None:
        return {"output": self.cfg.output_dir, "input": self.cfg.input_dir, "temp": self.cfg.temp_dir}.get(
            kind or "output"
        )

    # ---- routes ----------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        body = (
            "<!DOCTYPE html><html><head><title>ComfyUI</title></head>"
            "<body><div id='vue-app'></div></body></html>"
        )
        return web.Response(text=body, content_type="text/html")

    async def system_stats(self, request: web.Request) -> web.Response:
        argv = list(sys.argv)
        if self.cfg.foreign_argv:
            argv = ["main.py", "--port", "8188", "--output-directory", "/somewhere/else"]
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return web.json_response(
            {
                "system": {
                    "os": "linux",
                    "ram_total": pages,
                    "ram_free": free,
                    "comfyui_version": "0.33.0",
                    "required_frontend_version": "1.49.6",
                    "installed_templates_version": "0.11.44",
                    "required_templates_version": "0.11.44",
                    "comfy_package_versions": [
                        {"name": name, "installed": version, "required": version}
                        for name, version in PACKAGE_VERSIONS
                    ],
                    "python_version": sys.version,
                    "pytorch_version": "2.9.1+cu128",
                    "embedded_python": False,
                    "deploy_environment": "local-git",
                    "argv": argv,
                },
                "devices": [
                    {
                        "name": "cpu",
                        "type": "cpu",
                        "index": None,
                        "vram_total": pages,
                        "vram_free": free,
                        "torch_vram_total": pages,
                        "torch_vram_free": free,
                    }
                ],
            }
        )

    async def get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response({"exec_info": {"queue_remaining": self.executor.remaining()}})

    async def post_prompt(self, request: web.Request) -> web.Response:
        log.info("got prompt")
        body = await request.json()  # not JSON -> aiohttp's own 500 text/plain, like ComfyUI
        ex = self.executor
        if "number" in body:
            number: float = float(body["number"])
        else:
            number = ex.number
            if body.get("front"):
                number = -number
        ex.number += 1
        if "prompt" not in body:
            err = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return web.json_response({"error": err, "node_errors": {}}, status=400)
        prompt_id = body.get("prompt_id")
        if prompt_id is not None and (not isinstance(prompt_id, str) or not UUID_RE.match(prompt_id)):
            err = {
                "type": "invalid_prompt_id",
                "message": "Invalid prompt_id format",
                "details": f"prompt_id must be a valid UUID: {prompt_id!r}",
                "extra_info": {},
            }
            return web.json_response({"error": err, "node_errors": {}}, status=400)
        prompt = body["prompt"]
        targets = body.get("partial_execution_targets")
        error, outputs, node_errors = validate_prompt(prompt, self.info, self._custom, targets)
        if error is not None:
            log.warning("invalid prompt: %s", error["message"])
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        prompt_id = prompt_id or str(uuid.uuid4())
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        sensitive = {key: extra.pop(key) for key in SENSITIVE_EXTRA_DATA_KEYS if key in extra}
        extra["create_time"] = now_ms()
        await ex.put(QueueItem(number, prompt_id, prompt, extra, outputs, sensitive))
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    async def get_queue(self, request: web.Request) -> web.Response:
        ex = self.executor
        running = [ex.running.as_list()] if ex.running else []
        return web.json_response(
            {"queue_running": running, "queue_pending": [i.as_list() for i in ex.pending]}
        )

    async def post_queue(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            self.executor.clear_pending()
        if "delete" in body:
            self.executor.delete_pending([str(x) for x in body["delete"]])
        return web.Response(status=200)

    async def get_history(self, request: web.Request) -> web.Response:
        items = list(self.executor.history.items())
        max_items = request.query.get("max_items")
        if max_items is not None:
            items = items[-int(max_items) :] if int(max_items) > 0 else []
        return web.json_response(dict(items))

    async def get_history_one(self, request: web.Request) -> web.Response:
        pid = request.match_info["prompt_id"]
        entry = self.executor.history.get(pid)
        return web.json_response({pid: entry} if entry is not None else {})

    async def post_history(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            self.executor.history.clear()
        for pid in body.get("delete", []):
            self.executor.history.pop(str(pid), None)
            self.executor.jobs.pop(str(pid), None)
        return web.Response(status=200)

    async def interrupt(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {}
        if request.can_read_body:
            try:
                body = await request.json()
            except json.JSONDecodeError:
                body = {}
        self.executor.interrupt(body.get("prompt_id") if isinstance(body, dict) else None)
        return web.Response(status=200)

    async def free(self, request: web.Request) -> web.Response:
        await request.json()  # no body -> 500, as in ComfyUI
        return web.Response(status=200)

    async def view(self, request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        if "filename" not in query:
            return web.Response(status=404)
        filename = query["filename"]
        if filename.endswith("]") and " [" in filename:
            filename, kind = filename[:-1].rsplit(" [", 1)
        else:
            kind = query.get("type", "output")
        if not filename or filename[0] == "/" or ".." in filename:
            return web.Response(status=400)
        base = self._dir_for(kind)
        if base is None:
            return web.Response(status=400)
        folder = os.path.abspath(os.path.join(base, os.path.normpath(query.get("subfolder", ""))))
        if os.path.commonpath((folder, str(base))) != str(base):
            return web.Response(status=403)
        path = Path(folder) / os.path.basename(filename)
        if not path.is_file():
            return web.Response(status=404)
        return web.FileResponse(
            path,
            headers={"Content-Disposition": f'filename="{path.name}"', "X-Content-Type-Options": "nosniff"},
        )

    async def upload_image(self, request: web.Request) -> web.Response:
        post = await request.post()
        image = post.get("image")
        if not isinstance(image, web.FileField) or not image.filename:
            return web.Response(status=400)
        kind = str(post.get("type") or "input")
        base = self._dir_for(kind)
        if base is None:
            return web.Response(status=400)
        subfolder = str(post.get("subfolder", ""))
        folder = os.path.join(base, os.path.normpath(subfolder))
        filename = image.filename
        filepath = os.path.abspath(os.path.join(folder, filename))
        if os.path.commonpath((str(base), filepath)) != str(base):
            return web.Response(status=400)
        os.makedirs(folder, exist_ok=True)
        data = image.file.read()
        overwrite = str(post.get("overwrite", "")).lower() in ("true", "1")
        duplicate = False
        if not overwrite:
            stem, ext = os.path.splitext(filename)
            i = 1
            while os.path.exists(filepath):
                if Path(filepath).read_bytes() == data:
                    duplicate = True
                    break
                filename = f"{stem} ({i}){ext}"
                filepath = os.path.join(folder, filename)
                i += 1
        if not duplicate:
            Path(filepath).write_bytes(data)
        return web.json_response({"name": filename, "subfolder": subfolder, "type": kind})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(self.cfg.folders.model_types())

    async def models_folder(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if not self.cfg.folders.listable(folder):
            return web.Response(status=404)
        return web.json_response(self.cfg.folders.list(folder))

    async def experiment_models(self, request: web.Request) -> web.Response:
        return web.json_response(self.cfg.folders.experiment_models())

    async def experiment_models_folder(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if not self.cfg.folders.listable(folder):
            return web.Response(status=404)
        return web.json_response(self.cfg.folders.experiment_files(folder))

    async def object_info(self, request: web.Request) -> web.Response:
        return web.json_response({cls: self.info(cls) for cls in self.cfg.object_info})

    async def object_info_one(self, request: web.Request) -> web.Response:
        cls = request.match_info["node_class"]
        return web.json_response({cls: self.info(cls)} if cls in self.cfg.object_info else {})

    async def embeddings(self, request: web.Request) -> web.Response:
        return web.json_response([os.path.splitext(n)[0] for n in self.cfg.folders.list("embeddings")])

    async def features(self, request: web.Request) -> web.Response:
        return web.json_response(self.features_body())

    def features_body(self) -> dict[str, Any]:
        return {
            "supports_preview_metadata": True,
            "supports_model_type_tags": True,
            "max_upload_size": self.cfg.max_upload,
            "extension": {"manager": {"supports_v4": True}},
            "node_replacements": True,
            "assets": False,
        }

    async def jobs(self, request: web.Request) -> web.Response:
        jobs = self.executor.job_list()
        limit: int | None = None
        offset = 0
        try:
            if "limit" in request.query:
                limit = int(request.query["limit"])
                if limit <= 0:
                    return web.json_response({"error": "limit must be a positive integer"}, status=400)
        except ValueError:
            return web.json_response({"error": "limit must be an integer"}, status=400)
        try:
            offset = max(0, int(request.query.get("offset", 0)))
        except ValueError:
            return web.json_response({"error": "offset must be an integer"}, status=400)
        page = jobs[offset:] if limit is None else jobs[offset : offset + limit]
        has_more = limit is not None and offset + limit < len(jobs)
        return web.json_response(
            {
                "jobs": page,
                "pagination": {"offset": offset, "limit": limit, "total": len(jobs), "has_more": has_more},
            }
        )

    async def logs_raw(self, request: web.Request) -> web.Response:
        return web.json_response({"entries": list(self.cfg.log_entries), "size": {"cols": 80, "rows": 24}})

    async def folder_paths(self, request: web.Request) -> web.Response:
        return web.json_response(self.cfg.folders.paths)

    async def files_output(self, request: web.Request) -> web.Response:
        out = self.cfg.output_dir
        names = (
            sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
            if out.is_dir()
            else []
        )
        return web.json_response(names)

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId") or uuid.uuid4().hex
        self.hub.sockets[sid] = ws
        try:
            await self.hub.send(
                "status",
                {"status": {"exec_info": {"queue_remaining": self.executor.remaining()}}, "sid": sid},
                sid,
            )
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(msg.data)
                except json.JSONDecodeError:
                    continue
                if isinstance(frame, dict) and frame.get("type") == "feature_flags":
                    await ws.send_str(json.dumps({"type": "feature_flags", "data": self.features_body()}))
        finally:
            if self.hub.sockets.get(sid) is ws:
                del self.hub.sockets[sid]
        return ws

    # ---- app -------------------------------------------------------------------------------
    def app(self) -> web.Application:
        middlewares = [] if self.cfg.cors else [origin_only]
        app = web.Application(client_max_size=self.cfg.max_upload, middlewares=middlewares)
        routes: list[tuple[str, str, Any]] = [
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/prompt", self.get_prompt),
            ("POST", "/prompt", self.post_prompt),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_one),
            ("POST", "/history", self.post_history),
            ("POST", "/interrupt", self.interrupt),
            ("POST", "/free", self.free),
            ("GET", "/view", self.view),
            ("POST", "/upload/image", self.upload_image),
            ("GET", "/models", self.models),
            ("GET", "/models/{folder}", self.models_folder),
            ("GET", "/experiment/models", self.experiment_models),
            ("GET", "/experiment/models/{folder}", self.experiment_models_folder),
            ("GET", "/object_info", self.object_info),
            ("GET", "/object_info/{node_class}", self.object_info_one),
            ("GET", "/embeddings", self.embeddings),
            ("GET", "/features", self.features),
            ("GET", "/jobs", self.jobs),
            ("GET", "/ws", self.websocket),
            *UserData(self.cfg.user_dir).routes(),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, "/api" + path, handler)
        app.router.add_get("/", self.index)
        app.router.add_get("/internal/logs/raw", self.logs_raw)
        app.router.add_get("/internal/folder_paths", self.folder_paths)
        app.router.add_get("/internal/files/output", self.files_output)
        return app


class EntryHandler(logging.Handler):
    """Keeps the log lines for /internal/logs/raw."""

    def __init__(self, entries: deque[dict[str, str]]) -> None:
        super().__init__()
        self.entries = entries

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append({"t": datetime.now().isoformat(), "m": record.getMessage() + "\n"})
