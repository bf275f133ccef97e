"""Node sources: git URLs (`@commit`), folders, archives; what is refused before anything is written."""

from __future__ import annotations

import io
import os
import socket
import stat
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from comfyui_docker.errors import FetchError, InvalidInput
from comfyui_docker.nodes.sources import Source, default_name, fetch, git_commit, parse_source

from .kit import BareRepo, node_folder


@pytest.mark.parametrize(
    ("text", "kind", "location", "ref"),
    [
        ("https://github.com/o/ComfyUI-Foo", "git", "https://github.com/o/ComfyUI-Foo", None),
        (
            "https://github.com/o/ComfyUI-Foo.git@0123abc",
            "git",
            "https://github.com/o/ComfyUI-Foo.git",
            "0123abc",
        ),
        ("https://github.com/o/r@v1.2.0", "git", "https://github.com/o/r", "v1.2.0"),
        ("https://user@host.example/o/r", "git", "https://user@host.example/o/r", None),
        ("git@github.com:o/r.git", "git", "git@github.com:o/r.git", None),
        ("git@github.com:o/r.git@deadbeef", "git", "git@github.com:o/r.git", "deadbeef"),
        ("file:///srv/repos/x.git", "git", "file:///srv/repos/x.git", None),
    ],
)
def test_git_urls_and_their_commit(text: str, kind: str, location: str, ref: str | None) -> None:
    assert parse_source(text) == Source(kind, location, ref)


def test_folders_archives_and_names(tmp_path: Path) -> None:
    (tmp_path / "MyNode").mkdir()
    (tmp_path / "Pack-main.zip").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    folder = parse_source("MyNode", tmp_path)
    assert folder.kind == "folder" and default_name(folder) == "MyNode"
    archive = parse_source(str(tmp_path / "Pack-main.zip"))
    assert archive.kind == "archive" and default_name(archive) == "Pack"
    assert default_name(parse_source("https://github.com/o/ComfyUI-Foo.git@abc")) == "ComfyUI-Foo"
    with pytest.raises(InvalidInput, match="not an archive"):
        parse_source(str(tmp_path / "notes.txt"))
    with pytest.raises(InvalidInput, match="not a git URL, a folder or an archive"):
        parse_source(str(tmp_path / "missing"))
    with pytest.raises(InvalidInput, match="not a git URL, a folder or an archive"):
        parse_source("x" * 5000)  # too long for the file system: still a clear error
    with pytest.raises(InvalidInput, match="is not a git URL"):
        parse_source(str(tmp_path / "MyNode"), git_only=True)
    with pytest.raises(InvalidInput, match="no source"):
        parse_source("  ")


async def test_folder_copy_needs_an_init_and_keeps_links_inside(tmp_path: Path) -> None:
    good = node_folder(tmp_path, "good")
    (good / "__pycache__").mkdir()
    (good / "__pycache__" / "x.pyc").write_bytes(b"x")
    os.symlink("__init__.py", good / "alias.py")
    await fetch(parse_source(str(good)), tmp_path / "staged")
    assert (tmp_path / "staged" / "__init__.py").is_file() and (tmp_path / "staged" / "alias.py").is_symlink()
    assert not (tmp_path / "staged" / "__pycache__").exists()

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "nodes.py").write_text("")
    with pytest.raises(InvalidInput, match=r"no __init__\.py"):
        await fetch(parse_source(str(plain)), tmp_path / "staged2")

    leaky = node_folder(tmp_path, "leaky")
    os.symlink("/etc/passwd", leaky / "passwd")
    with pytest.raises(InvalidInput, match="outside the node's folder"):
        await fetch(parse_source(str(leaky)), tmp_path / "staged3")
    assert not (tmp_path / "staged3").exists()


def _zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _tar(
    path: Path, members: dict[str, bytes], links: dict[str, str] | None = None, device: str = ""
) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
        if device:
            info = tarfile.TarInfo(device)
            info.type = tarfile.CHRTYPE
            tf.addfile(info)
    return path


async def test_archives_with_one_top_folder_are_unpacked_into_the_node(tmp_path: Path) -> None:
    files = {"Pack-main/__init__.py": b"NODE_CLASS_MAPPINGS = {}\n", "Pack-main/sub/a.txt": b"a"}
    for archive in (
        _zip(tmp_path / "Pack-main.zip", files, {"Pack-main/link.txt": "sub/a.txt"}),
        _tar(tmp_path / "Pack-main.tar.gz", files, {"Pack-main/link.txt": "sub/a.txt"}),
    ):
        dest = tmp_path / f"out-{archive.name}"
        await fetch(parse_source(str(archive)), dest)
        assert (dest / "__init__.py").is_file() and (dest / "sub" / "a.txt").read_bytes() == b"a"
        assert os.readlink(dest / "link.txt") == "sub/a.txt"


UNSAFE = [
    ({"../evil.py": b"x", "n/__init__.py": b""}, None, "leads outside the archive"),
    ({"/etc/evil.py": b"x"}, None, "absolute path"),
    ({"n/__init__.py": b""}, {"n/out": "../../etc/passwd"}, "leads outside the archive"),
    ({"n/__init__.py": b""}, {"n/abs": "/etc/passwd"}, "absolute path"),
    # a link to the top folder's parent is inside the archive but outside the node once it is stripped
    ({"n/__init__.py": b""}, {"n/up": ".."}, "leads outside"),
]


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
@pytest.mark.parametrize(("members", "links", "message"), UNSAFE)
async def test_unsafe_archives_are_refused_and_nothing_is_written(
    tmp_path: Path, kind: str, members: dict[str, bytes], links: dict[str, str] | None, message: str
) -> None:
    archive = tmp_path / f"bad.{kind}"
    (_zip if kind == "zip" else _tar)(archive, members, links)
    dest = tmp_path / "dest"
    with pytest.raises(InvalidInput, match=message):
        await fetch(parse_source(str(archive)), dest)
    assert not dest.exists() and not (tmp_path / "evil.py").exists()


async def test_tar_devices_and_broken_archives_are_refused(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "dev.tar.gz", {"n/__init__.py": b""}, device="n/tty")
    with pytest.raises(InvalidInput, match="device or fifo"):
        await fetch(parse_source(str(archive)), tmp_path / "d1")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InvalidInput, match="not a readable archive"):
        await fetch(parse_source(str(broken)), tmp_path / "d2")
    assert not (tmp_path / "d1").exists() and not (tmp_path / "d2").exists()


async def test_git_clone_at_a_commit(tmp_path: Path) -> None:
    repo = BareRepo(tmp_path, "ComfyUI-Thing")
    first = repo.commit({"__init__.py": "NODE_CLASS_MAPPINGS = {}\n", "v.txt": "1"})
    second = repo.commit({"v.txt": "2"})
    dest = tmp_path / "at-first"
    await fetch(parse_source(f"{repo.url}@{first}"), dest)
    assert (dest / "v.txt").read_text() == "1" and git_commit(dest) == first
    dest = tmp_path / "at-head"
    await fetch(parse_source(repo.url), dest)
    assert (dest / "v.txt").read_text() == "2" and git_commit(dest) == second


async def test_git_failures_are_clear(tmp_path: Path) -> None:
    repo = BareRepo(tmp_path, "nopkg")
    repo.commit({"README.md": "no __init__ here"})
    with pytest.raises(InvalidInput, match=r"no __init__\.py"):
        await fetch(parse_source(repo.url), tmp_path / "a")
    with pytest.raises(FetchError, match="git checkout failed"):
        await fetch(parse_source(f"{repo.url}@0000000000000000000000000000000000000000"), tmp_path / "b")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(FetchError, match="git clone failed"):
        await fetch(parse_source(f"http://127.0.0.1:{port}/x.git"), tmp_path / "c")


async def test_a_git_server_that_does_not_answer_is_stopped(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        port = server.getsockname()[1]
        accepted: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:  # takes the connection, never says a word
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    accepted.append(server.accept()[0])
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            with pytest.raises(FetchError, match="no answer in 2 s"):
                await fetch(parse_source(f"http://127.0.0.1:{port}/x.git"), tmp_path / "d", timeout=2)
        finally:
            stop.set()
            thread.join(5)
            for conn in accepted:
                conn.close()
