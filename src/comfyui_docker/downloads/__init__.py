"""Downloads: everything between a preset id and verified files on the volume.

http.py       one request: redirects by hand, tokens by host, statuses -> typed errors
bodytap.py    a large body read straight off the socket into reused page-aligned blocks
partfile.py   the <name>.part file: pieces, inline sha256 of the contiguous prefix, O_DIRECT, flushes
transfer.py   writer thread, retry budget, free-space check, one body -> one piece
fetch.py      one URL -> one verified file (resume, several connections, verify, rename)
locks.py      per-file lock files with owner and heartbeat (shared volumes)
journal.py    SQLite on the volume: verified files, first-download hashes, installs, tasks
tasks.py      install tasks, their events, and which runtime owns an unfinished one
installer.py  plan, space check, lock, fetch, record
presence.py   what of the catalog is on the volume (installed, partial) and a preset's listing
service.py    PresetService, the facade the dashboard, CLI and start-up use
"""
