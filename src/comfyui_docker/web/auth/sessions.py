"""Server-side sessions: a list of logged-in browsers in SQLite on the volume, and the volume's secret.

    config/session.key        32 random bytes (hex), mode 0600, made on the first login. Mixed
                              into the key that signs session cookies, so a cookie is only good
                              on pods that share this volume (and this password).
    cache/sessions.sqlite3    one row per session: sha256 of its id, created, expires, last seen,
                              the client address. A cookie counts only while its row exists:
                              logging out deletes the row, "log out everywhere" deletes them all.

The file is on the volume, so several pods sharing it share the list (rollback-journal mode, as
the install journal). A session found in the file is remembered in this process for
`recheck` seconds; an end of session here is seen at once, one made on another pod within that
time. Nothing is opened before the first use: `create_app` costs no I/O.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SECRET_NAME = "session.key"  # noqa: S105 - a file name, not a secret
DB_NAME = "sessions.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    last_seen REAL NOT NULL,
    address TEXT NOT NULL DEFAULT ''
);
"""
TOUCH_EVERY = 300.0  # write last_seen at most this often per session


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def read_or_make_secret(path: Path) -> bytes:
    """The volume's secret; made (0600, never readable by others, not even for a moment) if absent."""
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:  # another pod made it first: use theirs
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(value + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return bytes.fromhex(value)


class SessionStore:
    def __init__(
        self,
        db_path: Path | None,
        secret_path: Path | None,
        *,
        max_age: float,
        clock: Callable[[], float] = time.time,
        recheck: float = 10.0,
    ) -> None:
        """`None` paths keep everything in memory (sessions end with the process)."""
        self.db_path = db_path
        self.secret_path = secret_path
        self.max_age = max_age
        self.clock = clock
        self.recheck = recheck
        self._db: sqlite3.Connection | None = None
        self._secret: bytes | None = None
        self._lock = threading.Lock()
        self._known: dict[str, float] = {}  # id hash -> when the file last said it is live
        self._touched: dict[str, float] = {}

    # ---- the volume's secret and the file ------------------------------------------------
    def secret(self) -> bytes:
        if self._secret is None:
            if self.secret_path is None:
                self._secret = secrets.token_bytes(32)
            else:
                try:
                    self._secret = read_or_make_secret(self.secret_path)
                except (OSError, ValueError) as exc:
                    log.warning(
                        "cannot use %s (%s): sessions last until the dashboard restarts",
                        self.secret_path,
                        exc,
                    )
                    self._secret = secrets.token_bytes(32)
        return self._secret

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            target = ":memory:"
            if self.db_path is not None:
                try:
                    self.db_path.parent.mkdir(parents=True, exist_ok=True)
                    target = str(self.db_path)
                except OSError as exc:
                    log.warning("cannot create %s (%s): sessions kept in memory", self.db_path, exc)
            try:
                db = sqlite3.connect(target, timeout=30, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=DELETE")
                db.executescript(SCHEMA)
            except sqlite3.Error as exc:
                log.warning("cannot open %s (%s): sessions kept in memory", target, exc)
                db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                db.executescript(SCHEMA)
            self._db = db
        return self._db

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn().execute(sql, args)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # ---- sessions -------------------------------------------------------------------------
    def add(self, sid: str, *, address: str = "") -> None:
        now = self.clock()
        key = _digest(sid)
        self._run("DELETE FROM sessions WHERE expires < ?", (now,))
        self._run(
            "INSERT OR REPLACE INTO sessions (id_hash, created, expires, last_seen, address) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, now, now + self.max_age, now, address[:64]),
        )
        self._known[key] = now
        self._touched[key] = now

    def active(self, sid: str) -> bool:
        now = self.clock()
        key = _digest(sid)
        seen = self._known.get(key)
        if seen is not None and now - seen < self.recheck:
            return True
        row = self._run("SELECT expires FROM sessions WHERE id_hash = ?", (key,)).fetchone()
        if row is None or row[0] < now:
            self._known.pop(key, None)
            return False
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[key] = now
        if now - self._touched.get(key, 0.0) >= TOUCH_EVERY:
            self._touched[key] = now
            if len(self._touched) > 10_000:
                self._touched.clear()
            self._run("UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (now, key))
        return True

    def end(self, sid: str) -> bool:
        key = _digest(sid)
        self._known.pop(key, None)
        return self._run("DELETE FROM sessions WHERE id_hash = ?", (key,)).rowcount > 0

    def end_all(self) -> int:
        self._known.clear()
        return self._run("DELETE FROM sessions").rowcount

    def list(self, current: str | None = None) -> list[dict[str, Any]]:
        """Live sessions, newest first (no ids: `current` marks the caller's own)."""
        now = self.clock()
        mine = _digest(current) if current else None
        rows = self._run(
            "SELECT id_hash, created, last_seen, address FROM sessions WHERE expires >= ? "
            "ORDER BY created DESC LIMIT 200",
            (now,),
        ).fetchall()
        return [{"created": r[1], "last_seen": r[2], "address": r[3], "current": r[0] == mine} for r in rows]
