"""The install journal: SQLite on the volume (`cache/journal.sqlite3`), shared by every pod.

    files       every verified file under models/: url, size, sha256, mtime (so "present and
                verified" is a stat, not a re-hash)
    url_hashes  size and sha256 of the first complete download of a URL; later downloads of the
                same URL (another pod, a re-install) are held to them when the catalog has none
    installs    which preset (and variant) is installed, and its files
    tasks       every install task and its last state: history, and what to resume after a restart

Rollback-journal mode (not WAL: WAL needs shared memory, which network volumes do not give),
autocommit, a generous busy timeout for the moments two pods write at once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    mtime_ns INTEGER NOT NULL,
    verified_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS url_hashes (
    url TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    recorded_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS installs (
    preset_id TEXT PRIMARY KEY,
    variant TEXT,
    files TEXT NOT NULL,
    installed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    preset_id TEXT NOT NULL,
    variant TEXT,
    state TEXT NOT NULL,
    bytes_done INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    files TEXT NOT NULL DEFAULT '[]',
    spec TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    owner TEXT NOT NULL DEFAULT ''
);
"""
UNFINISHED = ("queued", "downloading", "verifying")


@dataclass(frozen=True)
class FileRecord:
    path: str
    url: str
    size: int
    sha256: str
    mtime_ns: int


class Journal:
    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=DELETE")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        columns = {r["name"] for r in self.db.execute("PRAGMA table_info(tasks)")}
        if "owner" not in columns:  # a journal written before tasks had owners
            self.db.execute("ALTER TABLE tasks ADD COLUMN owner TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        self.db.close()

    # ---- files ------------------------------------------------------------------------
    def record_file(self, path: str, url: str, size: int, sha256: str, mtime_ns: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
            (path, url, size, sha256, mtime_ns, self.clock()),
        )

    def file(self, path: str) -> FileRecord | None:
        row = self.db.execute("SELECT * FROM files WHERE path = ?", (path,)).fetchone()
        if row is None:
            return None
        return FileRecord(row["path"], row["url"], row["size"], row["sha256"], row["mtime_ns"])

    def forget_file(self, path: str) -> None:
        self.db.execute("DELETE FROM files WHERE path = ?", (path,))

    def url_hash(self, url: str) -> tuple[int, str] | None:
        row = self.db.execute("SELECT size, sha256 FROM url_hashes WHERE url = ?", (url,)).fetchone()
        return (int(row["size"]), str(row["sha256"])) if row else None

    def record_url_hash(self, url: str, size: int, sha256: str) -> None:
        """Remember the first complete download of `url` (later ones never overwrite it)."""
        self.db.execute(
            "INSERT OR IGNORE INTO url_hashes VALUES (?, ?, ?, ?)", (url, size, sha256, self.clock())
        )

    # ---- installs ---------------------------------------------------------------------
    def set_installed(self, preset_id: str, variant: str | None, files: Iterable[str]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO installs VALUES (?, ?, ?, ?)",
            (preset_id, variant, json.dumps(list(files)), self.clock()),
        )

    def remove_install(self, preset_id: str) -> None:
        self.db.execute("DELETE FROM installs WHERE preset_id = ?", (preset_id,))

    def installs(self) -> dict[str, dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM installs").fetchall()
        return {
            r["preset_id"]: {
                "variant": r["variant"],
                "files": json.loads(r["files"]),
                "installed_at": r["installed_at"],
            }
            for r in rows
        }

    # ---- tasks ------------------------------------------------------------------------
    def save_task(self, row: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row["id"],
                row["kind"],
                row["preset_id"],
                row.get("variant"),
                row["state"],
                row.get("bytes_done", 0),
                row.get("bytes_total", 0),
                json.dumps(row["error"]) if row.get("error") else None,
                json.dumps(row.get("files", [])),
                json.dumps(row.get("spec", [])),
                row["created"],
                row["updated"],
                row.get("owner", ""),
            ),
        )

    def tasks(self, states: Iterable[str] | None = None, limit: int = 200) -> list[dict[str, Any]]:
        if states is None:
            rows = self.db.execute("SELECT * FROM tasks ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        else:
            wanted = list(states)
            marks = ",".join("?" * len(wanted))
            rows = self.db.execute(
                f"SELECT * FROM tasks WHERE state IN ({marks}) ORDER BY created",  # noqa: S608
                wanted,
            ).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["files"] = json.loads(d["files"])
            d["spec"] = json.loads(d["spec"])
            d["error"] = json.loads(d["error"]) if d["error"] else None
            out.append(d)
        return out
