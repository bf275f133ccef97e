"""Workflows API: the saved workflows (ComfyUI's own `user/default/workflows`, subfolders
included: workflows/saved.py), and running them through ComfyUI.

    GET    /api/workflows                       {workflows: [{name, size, mtime}]}
    POST   /api/workflows                       upload: multipart `file` (+ `name`), or JSON
                                                {name, workflow}; `?overwrite=true` replaces
    GET    /api/workflows/{name}                the workflow JSON
    PUT    /api/workflows/{name}                save (create or replace) from a JSON body
    GET    /api/workflows/{name}/download       as an attachment
    POST   /api/workflows/{name}/rename         {new_name}
    DELETE /api/workflows/{name}
    POST   /api/workflows/{name}/run            {set?, client_id?} -> {prompt_id, number, ...}
                                                (web/api/run.py: errors as POST /api/generate)

Names are the path below that folder (`sub/flow.json`), each part a plain name (letters, digits,
space, `_-.()[]+,&@'`): traversal, absolute paths, NUL and hidden names are refused with 400. Bodies are
limited to 20 MB (413). The content must be a JSON object in the UI format (`nodes`) or an API
prompt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from ...errors import Conflict, InvalidInput, MethodNotAllowed, PayloadTooLarge
from ...model_paths import atomic_write_text
from ...services import Services
from ...workflows.saved import MAX_DEPTH, PART_RE, SavedWorkflows
from ...workflows.saved import check_name as check_name
from ..deps import ServicesDep, WorkflowsDep
from ..errors import COMMON_ERRORS, error_responses
from .run import RunRequest, queue

MAX_BYTES = 20 * 1024 * 1024
_PART = PART_RE.pattern.strip("^$")
NAME_PATTERN = rf"^{_PART}(/{_PART}){{0,{MAX_DEPTH - 1}}}$"
#: The `{name}` of every route here: documented with its pattern (".json" is added when missing;
#: folders joined with "/", no ".."); checked by `check_name`, which answers 400 with what to change.
WorkflowName = Annotated[
    str,
    PathParam(
        description="A workflow's path below the workflows folder, e.g. `my flow.json` or `video/wan.json`",
        json_schema_extra={"pattern": NAME_PATTERN},
    ),
]

router = APIRouter(prefix="/api/workflows", tags=["workflows"], responses=error_responses(*COMMON_ERRORS))


class SaveRequest(BaseModel):
    name: str = Field(max_length=200, examples=["my flow.json"])
    workflow: dict[str, Any]


class RenameRequest(BaseModel):
    new_name: str = Field(max_length=200)


def saved(svc: Services) -> SavedWorkflows:
    return SavedWorkflows(svc.workspace.workflows, svc.workspace.root)


#: The last part of `/{name:path}/<action>`: such a path is the action's, never a workflow's own
#: (a workflow named `download` is `…/download.json`).
ACTIONS = {"download": ["GET", "HEAD"], "rename": ["POST"], "run": ["POST"]}


def _not_an_action(request: Request, name: str) -> None:
    """`PUT /api/workflows/x/download` is a method the download does not take (405), not a save."""
    folder, _, last = name.rpartition("/")
    if folder and last in ACTIONS:
        raise MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}", allow=ACTIONS[last])


def _path(svc: Services, name: str, *, must_exist: bool = True) -> Path:
    return saved(svc).path(name, must_exist=must_exist)


def parse_workflow(raw: bytes, source: str = "the upload") -> dict[str, Any]:
    if len(raw) > MAX_BYTES:
        raise PayloadTooLarge(f"{source} is larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(
            f"{source} is not valid JSON: {exc}", hint="export the workflow from ComfyUI"
        ) from None
    from ...workflows.service import check_workflow  # the workflow tools load on first use

    return check_workflow(data, source)


async def read_limited(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit + 64 * 1024:
        raise PayloadTooLarge(f"the upload is larger than {limit // (1024 * 1024)} MB")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit + 64 * 1024:
            raise PayloadTooLarge(f"the upload is larger than {limit // (1024 * 1024)} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _write(svc: Services, name: str, data: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    path = _path(svc, name, must_exist=False)
    if path.exists() and not overwrite:
        raise Conflict(f"a workflow named '{name}' exists", hint="pass overwrite=true or rename it")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False))
    return saved(svc).info(path)


@router.get("", summary="Saved workflows (ComfyUI's, subfolders included)")
async def list_workflows(svc: ServicesDep) -> dict[str, Any]:
    items = saved(svc).list()
    return {"workflows": items, "total": len(items)}


_UPLOAD_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "name": {"type": "string"},
                    },
                    "required": ["file"],
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/SaveRequest"}},
        },
        "required": True,
    }
}


@router.post(
    "",
    status_code=201,
    summary="Upload a workflow (multipart `file`, or JSON {name, workflow})",
    responses=error_responses(400, 409, 413, 415),
    openapi_extra=_UPLOAD_BODY,
)
async def upload(
    request: Request,
    svc: ServicesDep,
    overwrite: Annotated[bool, Query()] = False,
) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_limited(request, MAX_BYTES)
    if ctype == "application/json":
        try:
            parsed = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"the body is not valid JSON: {exc}") from None
        try:
            req = SaveRequest.model_validate(parsed)
        except ValueError:
            raise InvalidInput('expected {"name": ..., "workflow": {...}}') from None
        from ...workflows.service import check_workflow

        data = check_workflow(req.workflow)
        return _write(svc, req.name, data, overwrite)
    if ctype == "multipart/form-data":

        async def replay() -> Any:
            return {"type": "http.request", "body": body, "more_body": False}

        form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
        try:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                raise InvalidInput("no file in the upload", hint="send the workflow as the form field 'file'")
            raw = await file.read()
            field = form.get("name")
            name = field if isinstance(field, str) and field.strip() else (file.filename or "")
            if not name:
                raise InvalidInput("the upload has no file name", hint="send a 'name' field")
            data = parse_workflow(raw, "the upload")
            return _write(svc, name, data, overwrite)
        finally:
            await form.close()
    raise InvalidInput(
        f"unsupported content type '{ctype or 'none'}'",
        hint="send multipart/form-data with a 'file' field, or application/json",
    )


@router.get(
    "/{name:path}/download", summary="Download a workflow as a file", responses=error_responses(400, 404)
)
async def download(name: WorkflowName, svc: ServicesDep) -> FileResponse:
    path = _path(svc, name)
    return FileResponse(path, media_type="application/json", filename=path.name)


@router.get("/{name:path}", summary="One workflow (its JSON)", responses=error_responses(400, 404, 405))
async def read(name: WorkflowName, request: Request, svc: ServicesDep) -> FileResponse:
    _not_an_action(request, name)
    path = _path(svc, name)
    return FileResponse(path, media_type="application/json")


@router.put(
    "/{name:path}",
    summary="Save a workflow (create or replace)",
    # 404: a name with a line break matches no route at all
    responses=error_responses(400, 404, 405, 413),
)
async def save(name: WorkflowName, request: Request, svc: ServicesDep) -> dict[str, Any]:
    _not_an_action(request, name)
    data = parse_workflow(await read_limited(request, MAX_BYTES), "the body")
    return _write(svc, name, data, overwrite=True)


@router.post("/{name:path}/rename", summary="Rename a workflow", responses=error_responses(400, 404, 409))
async def rename(name: WorkflowName, body: RenameRequest, svc: ServicesDep) -> dict[str, Any]:
    src = _path(svc, name)
    dst = _path(svc, body.new_name, must_exist=False)
    if dst.exists() and dst != src:
        raise Conflict(
            f"a workflow named '{body.new_name}' exists", hint="choose another name or delete it first"
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)
    return saved(svc).info(dst)


@router.delete("/{name:path}", summary="Delete a workflow", responses=error_responses(400, 404, 405))
async def delete(name: WorkflowName, request: Request, svc: ServicesDep) -> dict[str, Any]:
    _not_an_action(request, name)
    path = _path(svc, name)
    path.unlink()
    return {"status": "deleted", "name": saved(svc).name_of(path)}


@router.post(
    "/{name:path}/run",
    summary="Queue a saved workflow in ComfyUI (the UI format is converted first)",
    responses=error_responses(400, 404, 502, 503),
)
async def run(
    name: WorkflowName, svc: ServicesDep, workflows: WorkflowsDep, body: RunRequest | None = None
) -> dict[str, Any]:
    path = _path(svc, name)
    workflow = workflows.accept(parse_workflow(path.read_bytes(), f"'{path.name}'"), path.name)
    body = body or RunRequest()
    return await queue(svc, workflows, workflow, body.set, body.client_id)
