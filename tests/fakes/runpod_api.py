"""Fakes of what a RunPod Serverless worker talks to, on 127.0.0.1, each a server in a thread.

RunPodJobs   RunPod's job API as the SDK uses it (`RUNPOD_WEBHOOK_GET_JOB`, `..._POST_OUTPUT`):
             job-take hands out queued jobs (else 204 after a short hold, like its long poll),
             job-stop hands out the ids of jobs to stop (`stop(id)`: a cancel, or the endpoint's
             execution timeout) the same way, job-done records what the worker posts: progress
             (`status: IN_PROGRESS`) and results. `env()` gives the worker's variables.
FakeS3       an S3 endpoint taking PUT /{bucket}/{key} (path style, as boto3 sends it to an
             address), keeping bodies and content types.
"""

from __future__ import annotations

import http.server
import json
import queue
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

HOLD_S = 0.3


class _Server:
    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _reply(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
        self.send_response(status)
        if body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


@dataclass
class Posted:
    job_id: str
    body: dict[str, Any]
    at: float


class _JobsHandler(_Handler):
    def do_GET(self) -> None:
        jobs: RunPodJobs = self.server.owner  # type: ignore[attr-defined]
        path = urllib.parse.urlsplit(self.path).path
        if "/job-take/" in path:
            jobs.takes += 1
            try:
                job = jobs.queued.get(timeout=HOLD_S)
            except queue.Empty:
                return self._reply(204)
            jobs.taken_at[job["id"]] = time.monotonic()
            return self._reply(200, json.dumps(job).encode())
        if "/job-stop/" in path:
            try:
                job_id = jobs.stops.get(timeout=HOLD_S)
            except queue.Empty:
                return self._reply(204)
            return self._reply(200, json.dumps({"jobsToStop": [job_id]}).encode())
        return self._reply(404)

    def do_POST(self) -> None:
        jobs: RunPodJobs = self.server.owner  # type: ignore[attr-defined]
        parts = urllib.parse.urlsplit(self.path).path.split("/")
        if "job-done" not in parts:
            return self._reply(404)
        job_id = parts[-1]
        body = json.loads(self._body() or b"null")
        with jobs.lock:
            jobs.posted.append(Posted(job_id, body, time.monotonic()))
        return self._reply(200, b"{}")


class RunPodJobs(_Server):
    def __init__(self) -> None:
        super().__init__(_JobsHandler)
        self.queued: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stops: queue.Queue[str] = queue.Queue()  # job ids for the worker's stop channel
        self.posted: list[Posted] = []
        self.taken_at: dict[str, float] = {}
        self.takes = 0
        self.lock = threading.Lock()

    def env(self, worker_id: str = "worker-1") -> dict[str, str]:
        return {
            "RUNPOD_WEBHOOK_GET_JOB": f"{self.url}/v2/endpoint/job-take/$ID?gpu=test",
            "RUNPOD_WEBHOOK_POST_OUTPUT": f"{self.url}/v2/endpoint/job-done/$RUNPOD_POD_ID/$ID?gpu=test",
            "RUNPOD_WEBHOOK_POST_STREAM": f"{self.url}/v2/endpoint/job-stream/$RUNPOD_POD_ID/$ID?gpu=test",
            "RUNPOD_POD_ID": worker_id,
        }

    def add(self, job_id: str, job_input: dict[str, Any]) -> None:
        self.queued.put({"id": job_id, "input": job_input})

    def stop(self, job_id: str) -> None:
        self.stops.put(job_id)

    def posts_for(self, job_id: str) -> list[Posted]:
        with self.lock:
            return [p for p in self.posted if p.job_id == job_id]

    def result(self, job_id: str) -> dict[str, Any] | None:
        """The final post for the job (not a progress update), once it came."""
        done = [p for p in self.posts_for(job_id) if p.body.get("status") != "IN_PROGRESS"]
        return done[-1].body if done else None


@dataclass
class Stored:
    body: bytes
    content_type: str | None
    headers: dict[str, str] = field(default_factory=dict)


class _S3Handler(_Handler):
    def do_PUT(self) -> None:
        s3: FakeS3 = self.server.owner  # type: ignore[attr-defined]
        key = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        with s3.lock:
            s3.objects[key] = Stored(self._body(), self.headers.get("Content-Type"), dict(self.headers))
        self.send_response(200)
        self.send_header("ETag", '"fake"')
        self.send_header("Content-Length", "0")
        self.end_headers()


class FakeS3(_Server):
    def __init__(self) -> None:
        super().__init__(_S3Handler)
        self.objects: dict[str, Stored] = {}
        self.lock = threading.Lock()
