"""PartFile on its own: batched pwritev writes, the inline hash, and no read-back in order."""

from __future__ import annotations

import hashlib
import mmap
import os
from pathlib import Path

from comfyui_docker.downloads.diskio import direct_io_helps, file_system_of, pwrite_all
from comfyui_docker.downloads.partfile import PartFile, Piece


def test_blocks_are_written_back_to_back_and_hashed_from_memory(tmp_path: Path) -> None:
    blocks = [os.urandom(n) for n in (1, 70_000, 256 * 1024, 3, 1 << 20)] * 6
    data = b"".join(blocks)
    part = PartFile(tmp_path / "f.part", flush_every=512 * 1024)
    part.open([Piece(0, len(data))], len(data), {"url": "u"}, truncate=True)
    offset = 0
    for i in range(0, len(blocks), 5):
        batch = blocks[i : i + 5]
        part.write(0, offset, batch)
        offset += sum(len(b) for b in batch)
    size, digest = part.finish()
    part.close()
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / "f.part").read_bytes() == data
    assert part.read_back == 0  # written in order: every byte hashed from memory, none read again


def test_out_of_order_pieces_are_hashed_by_reading_back(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    pieces = [Piece(0, 1 << 20), Piece(1 << 20, 2 << 20), Piece(2 << 20, 3 << 20)]
    part = PartFile(tmp_path / "f.part")
    part.open(pieces, len(data), {"url": "u"}, truncate=True)
    for index in (2, 1, 0):
        start = pieces[index].start
        part.write(index, start, [data[start : start + (1 << 20)]])
    size, digest = part.finish()
    part.close()
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert part.read_back == 2 << 20  # pieces 2 and 1 arrived before the hash could reach them


def test_short_pwritev_continues_where_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        blocks = [bytes([i % 256]) * (i % 7 * 100 + 1) for i in range(1, 2000)]  # more than IOV_MAX buffers
        pwrite_all(fd, blocks, 10)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"\0" * 10 + b"".join(blocks)


def _aligned_blocks(data: bytes, size: int) -> list[mmap.mmap]:
    out = []
    for i in range(0, len(data), size):
        block = mmap.mmap(-1, size)  # page-aligned, as BodyTap's pool hands them out
        block[: len(data[i : i + size])] = data[i : i + size]
        out.append(block)
    return out


def test_aligned_blocks_bypass_the_page_cache(tmp_path: Path) -> None:
    data = os.urandom(256 * 1024)
    part = PartFile(tmp_path / "d.part")
    part.open([Piece(0, len(data))], len(data), {}, truncate=True)
    views = [memoryview(b) for b in _aligned_blocks(data, 64 * 1024)]
    part.write(0, 0, views, direct=True)
    size, digest = part.finish()
    part.close(save=False)
    if part.direct_io:  # the file system took O_DIRECT (ext4, xfs, tmpfs on Linux >= 6.6)
        assert part.direct_bytes == len(data)
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / "d.part").read_bytes() == data


def test_a_refused_direct_write_falls_back_to_the_page_cache(tmp_path: Path) -> None:
    data = os.urandom(64 * 1024)
    part = PartFile(tmp_path / "d.part")
    part.open([Piece(0, len(data) + 4096)], len(data) + 4096, {}, truncate=True)
    # one byte into a page: the kernel refuses this buffer for O_DIRECT (EINVAL)
    block = mmap.mmap(-1, len(data) + 4096)
    block[1 : 1 + len(data)] = data
    part.write(0, 0, [memoryview(block)[1 : 1 + len(data)]], direct=True)
    part.write(0, len(data), [b"x" * 4096], direct=False)
    part.close(save=False)
    assert part.direct_bytes == 0
    assert not part.direct_io  # and it stays on the page cache from now on
    assert (tmp_path / "d.part").read_bytes() == data + b"x" * 4096


def test_without_direct_io_everything_goes_through_the_page_cache(tmp_path: Path) -> None:
    data = os.urandom(128 * 1024)
    part = PartFile(tmp_path / "d.part", direct_io=False)
    part.open([Piece(0, len(data))], len(data), {}, truncate=True)
    part.write(0, 0, [memoryview(b) for b in _aligned_blocks(data, 64 * 1024)], direct=True)
    part.close(save=False)
    assert part.dfd is None and part.direct_bytes == 0
    assert (tmp_path / "d.part").read_bytes() == data


def test_out_of_order_blocks_stay_in_the_page_cache_for_the_hash(tmp_path: Path) -> None:
    # a second piece arriving first is read back for the hash later: it must not skip the
    # page cache (that read would go to the disk); the in-order piece may
    data = os.urandom(256 * 1024)
    half = len(data) // 2
    part = PartFile(tmp_path / "d.part")
    part.open([Piece(0, half), Piece(half, len(data))], len(data), {}, truncate=True)
    second = [memoryview(b) for b in _aligned_blocks(data[half:], 64 * 1024)]
    first = [memoryview(b) for b in _aligned_blocks(data[:half], 64 * 1024)]
    part.write(1, half, second, direct=True)
    part.write(0, 0, first, direct=True)
    size, digest = part.finish()
    part.close(save=False)
    assert part.direct_bytes == (half if part.direct_io else 0)
    assert part.read_back == half
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())


MOUNTS = """/dev/vda / ext4 rw,relatime 0 0
proc /proc proc rw 0 0
mfs#mfsmaster:9421 /workspace fuse.mfs rw,nosuid 0 0
nfs-server:/vol /mnt/nfs nfs4 rw,vers=4.2 0 0
/dev/vdb /mnt/nfs/local xfs rw 0 0
/dev/vdc /mnt/with\\040space btrfs rw 0 0
tmpfs /scratch tmpfs rw 0 0
/dev/vdd /scratch xfs rw 0 0
"""


def test_the_file_system_of_a_path_is_its_longest_mount(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS)
    assert file_system_of(Path("/workspace/models/x"), mounts) == "fuse.mfs"
    assert file_system_of(Path("/workspacefoo"), mounts) == "ext4"  # not under /workspace
    assert file_system_of(Path("/mnt/nfs/a"), mounts) == "nfs4"
    assert file_system_of(Path("/mnt/nfs/local/b"), mounts) == "xfs"
    assert file_system_of(Path("/mnt/with space/c"), mounts) == "btrfs"
    assert file_system_of(Path("/scratch/d"), mounts) == "xfs"  # mounted over the tmpfs
    assert file_system_of(Path("/x"), tmp_path / "missing") is None


def test_o_direct_only_on_local_disk_file_systems(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS)
    assert direct_io_helps(Path("/home/x"), mounts)  # ext4
    assert direct_io_helps(Path("/mnt/nfs/local/x"), mounts)  # xfs
    assert not direct_io_helps(Path("/workspace/models"), mounts)  # a FUSE network volume
    assert not direct_io_helps(Path("/mnt/nfs/x"), mounts)  # NFS batches buffered writes
    assert not direct_io_helps(Path("/x"), tmp_path / "missing")
