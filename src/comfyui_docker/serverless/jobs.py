"""One RunPod job, start to end, on the worker's ComfyUI: `JobRunner.run(job) -> output`.

    input checked (request.py) -> ComfyUI ready? (waits while it restarts) -> `images` uploaded
    -> workflow loaded (API or UI format, or a template), `set` applied (workflows/service.py)
    -> queued and followed over the WebSocket, progress sent (progress.py); a rejection for
       missing models installs them first with `install_missing`, else names preset and URL
    -> outputs as base64 or S3 URLs (outputs.py) -> the job's uploaded images removed

Every failure is the job's `{"error": ...}` (failures.py) and the worker takes the next job: a
validation error (by node title and input), a failing node (its exception), COMFYUI_JOB_TIMEOUT
(the prompt is interrupted), a job cancelled by RunPod (same), ComfyUI dying mid-job (the
supervisor restarts it; the next job waits until it is ready).

Runs on the runtime's event loop (worker.py); nothing here touches the RunPod SDK but the
`progress_update` and upload functions it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..comfyui import ComfyUIGateway, PromptRejected, RunResult
from ..errors import AppError, ServiceUnavailable
from ..settings import Secret
from ..supervisor import Service, State
from ..workflows.missing import MissingModel
from ..workflows.service import Prepared, WorkflowService
from .config import ServerlessSettings
from .failures import ComfyUIDown, JobFailed, error_output
from .outputs import OutputSender
from .progress import Progress, Send
from .request import UPLOAD_FAILED, InputImage, JobInputError, JobRequest, parse_job_input

if TYPE_CHECKING:
    from ..downloads.service import PresetService

log = logging.getLogger(__name__)

#: States in which ComfyUI will not come back by itself.
DOWN = (State.FATAL, State.BLOCKED, State.NOT_INSTALLED, State.STOPPED)
#: How long the supervisor may take to notice that ComfyUI died under a job.
CRASH_NOTICE_S = 3.0


def api_key_extra(job_key: str | None, default: Secret) -> dict[str, str] | None:
    """ComfyUI's `extra_data` for its API nodes: the job's `comfy_org_api_key`, else
    COMFY_ORG_API_KEY (ComfyUI keeps it out of /queue and /history)."""
    key = job_key or default.get()
    return {"api_key_comfy_org": key} if key else None


class JobRunner:
    def __init__(
        self,
        *,
        workflows: WorkflowService,
        gateway: ComfyUIGateway,
        comfyui: Service,
        options: ServerlessSettings,
        sender: OutputSender,
        inputs_dir: Path,
        presets: PresetService | None = None,
        send_progress: Send | None = None,
        ready_wait_s: float = 600.0,
    ) -> None:
        self.workflows = workflows
        self.gateway = gateway
        self.comfyui = comfyui
        self.options = options
        self.sender = sender
        self.inputs_dir = inputs_dir
        self.presets = presets
        self.send_progress = send_progress
        self.ready_wait_s = ready_wait_s
        self.jobs = 0
        self._inputs: Counter[str] = Counter()  # uploaded names in use by running jobs
        self._definitions_pid: int | None = None  # ComfyUI life whose definitions were fetched

    # ---- the job -----------------------------------------------------------------------------
    async def run(self, job: Mapping[str, Any]) -> dict[str, Any]:
        job_id = str(job.get("id") or "job")
        started = time.perf_counter()
        progress = Progress(job, self.send_progress)
        self.jobs += 1
        try:
            output = await self._run(job_id, job.get("input"), progress)
            outcome = f"{len(output.get('images') or [])} file(s)"
        except AppError as exc:
            output = error_output(exc)
            outcome = f"failed: {output['error'].splitlines()[0]}"
        except Exception as exc:  # a bug of ours must fail this job, not the worker
            log.exception("job %s: unexpected error", job_id)
            output = {"error": f"internal error of the worker: {type(exc).__name__}: {exc}"}
            outcome = "failed: internal error"
        if self.options.refresh_worker:
            output["refresh_worker"] = True
        log.info("job %s: %s in %.0f ms", job_id, outcome, (time.perf_counter() - started) * 1000)
        return output

    async def _run(self, job_id: str, raw: object, progress: Progress) -> dict[str, Any]:
        request = parse_job_input(raw)
        await self._wait_for_comfyui(progress)
        uploaded: list[str] = []
        try:
            await self._upload(request.images, uploaded, progress)
            use = self.workflows
            workflow = (
                use.template(request.template)
                if request.template
                else use.accept(request.workflow, "the job's workflow")
            )
            needs_definitions = workflow.is_ui or bool(request.values)
            pid = self.comfyui.status().pid
            prepared = await use.prepare(
                workflow,
                values=request.values or None,
                refresh=needs_definitions and pid != self._definitions_pid,
            )
            if prepared.definitions is not None and prepared.definitions.live:
                self._definitions_pid = pid
            try:
                result = await self._execute(job_id, prepared, request, progress)
                progress.stage("sending")
                entries, errors = await self.sender.send(job_id, result.prompt_id, result.outputs)
            except ServiceUnavailable as exc:
                raise await self._crashed(exc) from None
        finally:
            self._forget(uploaded)
        if entries:
            return {"images": entries, **({"errors": errors} if errors else {})}
        if errors:
            raise JobFailed("Job processing failed", hint="; ".join(errors), errors=errors)
        return {"status": "success_no_images", "images": []}

    # ---- ComfyUI's state ---------------------------------------------------------------------
    async def _wait_for_comfyui(self, progress: Progress) -> None:
        state = self.comfyui.status().state
        if state in (State.STARTING, State.BACKOFF):
            progress.stage("waiting for ComfyUI", state=state.value)
            try:
                state = await self.comfyui.wait_state(State.RUNNING, *DOWN, timeout=self.ready_wait_s)
            except TimeoutError:
                raise JobFailed(
                    f"ComfyUI was not ready within {self.ready_wait_s:g} s",
                    hint="see the worker's log (comfyui.log on the volume)",
                ) from None
        if state is not State.RUNNING:
            status = self.comfyui.status()
            raise ComfyUIDown(
                f"ComfyUI is {status.state.value} on this worker: {status.detail}",
                hint="the worker is replaced (refresh_worker); see comfyui.log in the volume's logs folder",
            )

    async def _crashed(self, exc: ServiceUnavailable) -> JobFailed:
        """The error for a job whose ComfyUI went away under it."""
        with contextlib.suppress(TimeoutError):
            await self.comfyui.wait_state(State.BACKOFF, State.STARTING, *DOWN, timeout=CRASH_NOTICE_S)
        status = self.comfyui.status()
        if status.state is State.RUNNING:
            return JobFailed(f"ComfyUI stopped answering during the job: {exc.message}", hint="send it again")
        return JobFailed(
            f"ComfyUI stopped while running the workflow ({status.detail or status.state.value}); "
            "the worker restarts it and takes the next job once it is ready",
            hint="send the job again; if it happens again, the workflow may need more memory than it has",
        )

    # ---- inputs ------------------------------------------------------------------------------
    async def _upload(self, images: tuple[InputImage, ...], uploaded: list[str], progress: Progress) -> None:
        if not images:
            return
        progress.stage("uploading", images=len(images))
        for image in images:
            try:
                await self.gateway.upload(image.name, image.data)
            except AppError as exc:
                if isinstance(exc, ServiceUnavailable):
                    raise
                raise JobInputError(f"{UPLOAD_FAILED}: {image.name}: {exc.message}", hint=exc.hint) from None
            self._inputs[image.name] += 1
            uploaded.append(image.name)

    def _forget(self, names: list[str]) -> None:
        """Remove the job's uploaded images (they would pile up on the network volume), unless
        another running job uploaded the same name."""
        for name in names:
            self._inputs[name] -= 1
            if self._inputs[name] <= 0:
                del self._inputs[name]
                (self.inputs_dir / name).unlink(missing_ok=True)

    # ---- running -----------------------------------------------------------------------------
    async def _execute(
        self, job_id: str, prepared: Prepared, request: JobRequest, progress: Progress
    ) -> RunResult:
        extra = api_key_extra(request.comfy_org_api_key, self.options.comfy_org_api_key)
        installed = False
        while True:
            try:
                return await self._follow(prepared, extra, progress)
            except PromptRejected as exc:
                if not exc.missing:
                    raise
                missing = await self._missing(prepared, exc)
                exc.details["missing"] = [self._describe(m) for m in missing]
                if not request.install_missing or installed:
                    raise
                progress.stage("downloading", files=[m.path for m in missing])
                log.info("job %s: installing %s", job_id, ", ".join(m.path for m in missing))
                await self.workflows.install_and_wait(missing, label=f"serverless job {job_id}")
                installed = True

    async def _follow(
        self, prepared: Prepared, extra: dict[str, Any] | None, progress: Progress
    ) -> RunResult:
        prompt_ids: list[str] = []

        def events(kind: str, data: Mapping[str, object]) -> None:
            if kind == "queued":
                prompt_ids.append(str(data.get("prompt_id")))
            progress(kind, data)

        limit = self.options.job_timeout
        try:
            async with asyncio.timeout(limit) as deadline:
                return await self.workflows.run(prepared, on_event=events, extra_data=extra)
        except TimeoutError:
            if not deadline.expired():
                raise
            await self._stop(prompt_ids)
            where = f" at {progress.node}" if progress.node else ""
            raise JobFailed(
                f"the workflow did not finish within COMFYUI_JOB_TIMEOUT={limit:g} s "
                f"and was interrupted{where}",
                hint="raise COMFYUI_JOB_TIMEOUT, or make the workflow lighter",
            ) from None
        except asyncio.CancelledError:  # RunPod cancelled the job, or its execution timeout hit
            await asyncio.shield(self._stop(prompt_ids))
            raise

    async def _stop(self, prompt_ids: list[str]) -> None:
        """Take the job's prompt out of ComfyUI, whether it runs or still waits."""
        for prompt_id in prompt_ids:
            with contextlib.suppress(AppError):
                await self.gateway.delete(prompt_id)
            with contextlib.suppress(AppError):
                await self.gateway.interrupt(prompt_id)

    # ---- missing models ----------------------------------------------------------------------
    async def _missing(self, prepared: Prepared, exc: PromptRejected) -> list[MissingModel]:
        """What ComfyUI said it lacks, with the workflow's URLs and the presets that have it."""
        known = {(m.ref.folder, m.ref.name): m for m in await self.workflows.missing(prepared)}
        out = []
        for ref in exc.missing:
            found = known.get((ref.folder, ref.name))
            if found is None:
                providers = tuple(self.presets.providers(ref.folder, ref.name)) if self.presets else ()
                found = MissingModel(ref, providers)
            out.append(found)
        return out

    def _describe(self, missing: MissingModel) -> dict[str, Any]:
        out = missing.to_dict()
        out["url"] = missing.ref.url or self._preset_url(missing)
        return out

    def _preset_url(self, missing: MissingModel) -> str | None:
        if self.presets is None or not missing.providers:
            return None
        try:
            files = self.presets.get(missing.providers[0]).all_files()
        except AppError:
            return None
        for spec in files:
            if spec.folder == missing.ref.folder and missing.ref.name in (
                spec.filename,
                spec.path.split("/", 1)[1],
            ):
                return str(spec.url)
        return None
