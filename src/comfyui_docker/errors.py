"""Domain errors: each carries an HTTP status and a message a user can act on.

    AppError                      base; status 500 unless a subclass says otherwise
    ├── SettingsError             a bad environment value (names the variable)            400
    ├── WorkspaceError            missing, read-only or malformed volume                   500
    ├── ModelPathsError           broken user extra_model_paths yaml                       400
    ├── NotFound                  unknown preset, task, file, workflow                     404
    │   ├── PresetNotFound
    │   └── TaskNotFound
    ├── Conflict                  the thing exists or is busy                              409
    │   └── RequirementConflict   a node's requirements conflict with the image's packages
    ├── InvalidInput              malformed request, bad path, bad parameter               400
    ├── MethodNotAllowed          the path's resource does not take this method            405
    ├── PayloadTooLarge           upload over the limit                                    413
    ├── UnsupportedMediaType      a body in a content type the route does not take         415
    ├── Unauthorized / Forbidden  login missing or refused                                 401 / 403
    ├── RateLimited               too many login attempts                                  429
    ├── ServiceUnavailable        ComfyUI not ready (carries its state)                    503
    └── DownloadError             a download failed; subclasses say why                    502
        ├── GatedModel            401/403 from the host: which token, where to accept      403
        ├── UrlNotFound           404: the URL is dead                                     404
        ├── ChecksumMismatch      size or sha256 differs from what was expected            502
        ├── UrlRefused            a workflow URL: host not allowed, or an internal address 403
        ├── DiskFull              not enough free space (numbers included)                 507
        ├── FetchError            a node's git URL or archive could not be fetched         502
        └── NodeInstallError      a node's requirements (pip) or install.py failed         502

The web layer renders every AppError as one JSON shape (`{"error": {...}}`) or as a page.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class SettingsError(AppError):
    status = 400
    code = "invalid_setting"

    def __init__(self, variable: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{variable}: {message}", hint=hint, variable=variable)
        self.variable = variable


class WorkspaceError(AppError):
    code = "workspace_error"


class ModelPathsError(AppError):
    status = 400
    code = "invalid_model_paths"


class NotFound(AppError):
    status = 404
    code = "not_found"


class PresetNotFound(NotFound):
    code = "preset_not_found"


class TaskNotFound(NotFound):
    code = "task_not_found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class RequirementConflict(Conflict):
    code = "requirement_conflict"


class InvalidInput(AppError):
    status = 400
    code = "invalid_input"


class MethodNotAllowed(AppError):
    """The path names a resource that does not take this method (`details.allow` lists those it takes)."""

    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class RateLimited(AppError):
    status = 429
    code = "rate_limited"


class ServiceUnavailable(AppError):
    status = 503
    code = "service_unavailable"


class DownloadError(AppError):
    status = 502
    code = "download_failed"


class GatedModel(DownloadError):
    status = 403
    code = "gated_model"


class UrlNotFound(DownloadError):
    status = 404
    code = "url_not_found"


class ChecksumMismatch(DownloadError):
    code = "checksum_mismatch"


class UrlRefused(DownloadError):
    status = 403
    code = "url_refused"


class DiskFull(DownloadError):
    status = 507
    code = "disk_full"


class FetchError(DownloadError):
    code = "node_fetch_failed"


class NodeInstallError(DownloadError):
    code = "node_install_failed"
