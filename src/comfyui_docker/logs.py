"""One logging configuration: readable lines to stderr and the same into logs/ with rotation."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
_MARK = "_comfyui_docker_handler"


def configure(
    level: str = "INFO",
    log_dir: Path | None = None,
    *,
    verbose: bool = False,
    file_name: str = "dashboard.log",
) -> None:
    """(Re)configure the root logger; safe to call twice (our handlers are replaced)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.close()
    effective = logging.DEBUG if verbose else getattr(logging, level.upper(), logging.INFO)
    root.setLevel(effective)
    formatter = logging.Formatter(FORMAT, DATEFMT)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    setattr(stream, _MARK, True)
    root.addHandler(stream)
    if log_dir is not None and log_dir.is_dir():
        file_handler = logging.handlers.RotatingFileHandler(
            log_dir / file_name, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
        )
        file_handler.setFormatter(formatter)
        setattr(file_handler, _MARK, True)
        root.addHandler(file_handler)
    for noisy in ("aiohttp.access", "uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
