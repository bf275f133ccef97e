"""A finished job's files as worker-comfyui 5.x returns them: `{"filename", "type", "data"}`,
`type` `base64` (the bytes in `data`) or `s3_url` (uploaded through the RunPod SDK's helper when
BUCKET_ENDPOINT_URL is set). Ours adds `media` (image, video, audio, 3d, file): videos, audio
and 3D files come back like images, in the same list.

Files are read through the gateway (`/view`), never from a path ComfyUI names. ComfyUI's `temp`
files (PreviewImage) are left out, as worker-comfyui does. A file that cannot be read or uploaded
becomes a line of `errors`; the others are still returned.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import mimetypes
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..comfyui import ComfyUIGateway, OutputFile
from ..comfyui.shapes import as_object
from ..errors import AppError

log = logging.getLogger(__name__)

MEDIA_BY_SUFFIX: dict[str, str] = {
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif"), "image"),
    **dict.fromkeys((".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v"), "video"),
    **dict.fromkeys((".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac"), "audio"),
    **dict.fromkeys((".glb", ".gltf", ".obj", ".fbx", ".stl", ".ply", ".usdz"), "3d"),
}
#: Output keys of ComfyUI's nodes that say what a file is when its suffix does not.
MEDIA_BY_KEY = {"images": "image", "gifs": "video", "video": "video", "audio": "audio", "3d": "3d"}

#: (job id, file path, media) -> the URL of the uploaded file. Blocking (boto3): run in a thread.
Uploader = Callable[[str, Path, str], str]


@dataclass(frozen=True)
class JobFile:
    file: OutputFile
    media: str


def media_of(key: str, filename: str) -> str:
    return MEDIA_BY_SUFFIX.get(PurePosixPath(filename).suffix.lower()) or MEDIA_BY_KEY.get(key, "file")


def job_files(outputs: Mapping[str, object]) -> list[JobFile]:
    """Every saved (not temp) file of a prompt's outputs, in node order, each once."""
    found: list[JobFile] = []
    for node_output in outputs.values():
        for key, items in as_object(node_output).items():
            for item in items if isinstance(items, list) else ():
                file = OutputFile.parse(item)
                if file is None or file.type == "temp" or any(f.file == file for f in found):
                    continue
                found.append(JobFile(file, media_of(key, file.filename)))
    return found


def sdk_uploader() -> Uploader:
    """The RunPod SDK's upload helper (it reads BUCKET_* itself): `upload_image` for images, as
    worker-comfyui does; other media with their own content type under the job's id."""
    from runpod.serverless.utils import rp_upload

    def upload(job_id: str, path: Path, media: str) -> str:
        if media == "image":
            return str(rp_upload.upload_image(job_id, str(path)))
        content = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return str(
            rp_upload.upload_file_to_bucket(
                path.name, str(path), prefix=job_id, extra_args={"ContentType": content}
            )
        )

    return upload


class OutputSender:
    """Reads a job's files from ComfyUI and returns them as base64, or uploads them."""

    def __init__(self, gateway: ComfyUIGateway, uploader: Uploader | None = None) -> None:
        self.gateway = gateway
        self.uploader = uploader

    async def _read(self, item: JobFile, prompt_id: str) -> bytes:
        return b"".join([block async for block in self.gateway.view(item.file, prompt_id=prompt_id)])

    async def send(
        self, job_id: str, prompt_id: str, outputs: Mapping[str, object]
    ) -> tuple[list[dict[str, str]], list[str]]:
        """(entries of `images`, lines of `errors`)."""
        entries: list[dict[str, str]] = []
        errors: list[str] = []
        files = job_files(outputs)
        if not files:
            return entries, errors
        if self.uploader is None:
            for item in files:
                try:
                    data = await self._read(item, prompt_id)
                except AppError as exc:
                    errors.append(f"Failed to read {item.file.filename} from ComfyUI: {exc.message}")
                    continue
                encoded = base64.b64encode(data).decode("ascii")
                entries.append(self._entry(item, "base64", encoded))
            return entries, errors
        folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="comfyui-docker-job-"))
        try:
            for index, item in enumerate(files):
                path = folder / str(index) / PurePosixPath(item.file.filename).name  # the key keeps the name
                try:
                    data = await self._read(item, prompt_id)
                    await asyncio.to_thread(_write, path, data)
                    url = await asyncio.to_thread(self.uploader, job_id, path, item.media)
                except AppError as exc:
                    errors.append(f"Failed to read {item.file.filename} from ComfyUI: {exc.message}")
                    continue
                except Exception as exc:  # boto3 and the network: reported, the other files still go
                    log.warning("S3 upload of %s failed: %s", item.file.filename, exc)
                    errors.append(f"Error uploading {item.file.filename} to S3: {exc}")
                    continue
                entries.append(self._entry(item, "s3_url", url))
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)
        return entries, errors

    @staticmethod
    def _entry(item: JobFile, kind: str, data: str) -> dict[str, str]:
        return {"filename": item.file.filename, "type": kind, "data": data, "media": item.media}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
