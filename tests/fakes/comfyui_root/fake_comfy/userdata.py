"""`/userdata`: the user's files under `--user-directory`/default, as ComfyUI 0.33's UserManager
(app/user_manager.py) serves them; the editor saves its workflows as `workflows/<name>.json`.

    GET    /userdata?dir=D[&recurse=true][&full_info=true][&split=true]   400 no dir, 403 outside, 404 missing
    GET    /userdata/{file}                       the bytes, as an attachment; 404 missing, 403 outside
    POST   /userdata/{file}[?overwrite=false][&full_info=true]   writes the body; 409 when it exists
    DELETE /userdata/{file}                       204
    POST   /userdata/{file}/move/{dest}[?overwrite=false]

`{file}` is URL-encoded (`workflows%2Fsub%2Fx.json`); a path leading out of the user's folder is 403.
"""

from __future__ import annotations

import glob
import mimetypes
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib import parse

from aiohttp import web


def _info(path: str, relative_to: str) -> dict[str, Any]:
    return {
        "path": os.path.relpath(path, relative_to).replace(os.sep, "/"),
        "size": os.path.getsize(path),
        "modified": int(os.path.getmtime(path) * 1000),
        "created": int(os.path.getctime(path) * 1000),
    }


class UserData:
    def __init__(self, user_dir: Path) -> None:
        self.root = os.path.abspath(user_dir)
        self.user_root = os.path.join(self.root, "default")

    def _path(self, file: str | None, create_dir: bool = True) -> str | None:
        path = self.user_root
        if file is not None:
            if "%" in file:
                file = parse.unquote(file)
            path = os.path.abspath(os.path.join(self.user_root, file))
            if os.path.commonpath((self.user_root, path)) != self.user_root:
                return None
        parent = os.path.split(path)[0]
        if create_dir and not os.path.exists(parent):
            os.makedirs(parent, exist_ok=True)
        return path

    def _param(self, request: web.Request, name: str = "file", exists: bool = False) -> str | web.Response:
        file = request.match_info.get(name)
        if not file:
            return web.Response(status=400)
        path = self._path(file)
        if not path:
            return web.Response(status=403)
        if exists and not os.path.exists(path):
            return web.Response(status=404)
        return path

    async def list(self, request: web.Request) -> web.StreamResponse:
        directory = request.rel_url.query.get("dir", "")
        if not directory:
            return web.Response(status=400, text="Directory not provided")
        path = self._path(directory)
        if not path:
            return web.Response(status=403, text="Invalid directory")
        if not os.path.exists(path):
            return web.Response(status=404, text="Directory not found")
        recurse = request.rel_url.query.get("recurse", "").lower() == "true"
        full_info = request.rel_url.query.get("full_info", "").lower() == "true"
        split = request.rel_url.query.get("split", "").lower() == "true"
        pattern = (
            os.path.join(glob.escape(path), "**", "*") if recurse else os.path.join(glob.escape(path), "*")
        )
        out: list[Any] = []
        for full in glob.glob(pattern, recursive=recurse):
            if not os.path.isfile(full):
                continue
            if full_info:
                out.append(_info(full, path))
                continue
            rel = os.path.relpath(full, path).replace(os.sep, "/")
            out.append([rel, *rel.split("/")] if split else rel)
        return web.json_response(out)

    async def get(self, request: web.Request) -> web.StreamResponse:
        path = self._param(request, exists=True)
        if not isinstance(path, str):
            return path
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return web.FileResponse(
            path,
            headers={
                "Content-Type": ctype,
                "X-Content-Type-Options": "nosniff",
                "Content-Disposition": "attachment",
            },
        )

    async def post(self, request: web.Request) -> web.StreamResponse:
        path = self._param(request)
        if not isinstance(path, str):
            return path
        overwrite = request.query.get("overwrite", "true") != "false"
        full_info = request.query.get("full_info", "false").lower() == "true"
        if not overwrite and os.path.exists(path):
            return web.Response(status=409, text="File already exists")
        body = await request.read()
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)
        user = self.user_root
        return web.json_response(_info(path, user) if full_info else os.path.relpath(path, user))

    async def delete(self, request: web.Request) -> web.StreamResponse:
        path = self._param(request, exists=True)
        if not isinstance(path, str):
            return path
        os.remove(path)
        return web.Response(status=204)

    async def move(self, request: web.Request) -> web.StreamResponse:
        source = self._param(request, exists=True)
        if not isinstance(source, str):
            return source
        dest = self._param(request, "dest")
        if not isinstance(dest, str):
            return dest
        overwrite = request.query.get("overwrite", "true") != "false"
        full_info = request.query.get("full_info", "false").lower() == "true"
        if not overwrite and os.path.exists(dest):
            return web.Response(status=409, text="File already exists")
        shutil.move(source, dest)
        user = self.user_root
        return web.json_response(_info(dest, user) if full_info else os.path.relpath(dest, user))

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", "/userdata", self.list),
            ("GET", "/userdata/{file}", self.get),
            ("POST", "/userdata/{file}", self.post),
            ("DELETE", "/userdata/{file}", self.delete),
            ("POST", "/userdata/{file}/move/{dest}", self.move),
        ]
