"""The fetch engine against the fault-injecting host: every fault ends in a correct file or a clear error."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aiohttp
import pytest

from comfyui_docker.downloads.diskio import direct_io_helps
from comfyui_docker.errors import ChecksumMismatch, DiskFull, DownloadError, GatedModel, UrlNotFound
from fakes.model_host import ModelHost

from .conftest import KIB, MIB, blob, listing, make_fetcher, sha

SIZE = 300 * KIB


def takes_o_direct(folder: Path) -> bool:
    if not direct_io_helps(folder):
        return False
    try:
        fd = os.open(folder / ".direct-probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    except (OSError, AttributeError):
        return False
    os.close(fd)
    (folder / ".direct-probe").unlink()
    return True


async def test_plain_download_verifies_and_renames(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(SIZE)
    url = host.add("/m.safetensors", data)
    seen: list[int] = []
    result = await make_fetcher(session).fetch(
        url, tmp_path / "m.safetensors", size=SIZE, sha256=sha(data), progress=seen.append
    )
    assert (tmp_path / "m.safetensors").read_bytes() == data
    assert result.sha256 == sha(data) and result.size == SIZE and result.refetched == 0
    assert sum(seen) == SIZE
    assert listing(tmp_path) == ["m.safetensors"]  # no .part, no .state left


async def test_connection_dropped_mid_body_resumes_with_range(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(SIZE)
    url = host.add("/m", data, "drop:100000", "drop:50000")
    fetcher = make_fetcher(session)
    result = await fetcher.fetch(url, tmp_path / "m.bin", sha256=sha(data))
    assert (tmp_path / "m.bin").read_bytes() == data
    ranges = [r.range for r in host.requests_for("/m")]
    assert ranges[0] == "bytes=0-"
    assert ranges[1] == "bytes=100000-" and ranges[2] == "bytes=150000-"
    assert result.refetched == 0
    assert len(fetcher.sleeps) == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("fault", ["status:500", "status:503", "status:502"])
async def test_server_errors_are_retried(
    fault: str, host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(SIZE)
    url = host.add("/m", data, fault, fault)
    await make_fetcher(session).fetch(url, tmp_path / "m.bin", sha256=sha(data))
    assert (tmp_path / "m.bin").read_bytes() == data
    assert [r.status for r in host.requests_for("/m")][:3] == [int(fault[-3:])] * 2 + [206]


async def test_429_honours_retry_after(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(SIZE)
    url = host.add("/m", data, "429:7")
    fetcher = make_fetcher(session)
    await fetcher.fetch(url, tmp_path / "m.bin", sha256=sha(data))
    assert fetcher.sleeps == [7.0]  # type: ignore[attr-defined]
    assert (tmp_path / "m.bin").read_bytes() == data


async def test_retry_budget_is_spent_then_a_clear_error_keeps_the_part(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(SIZE)
    url = host.add("/m", data, "drop:1000", *(["status:503"] * 10))
    with pytest.raises(DownloadError, match="giving up") as info:
        await make_fetcher(session).fetch(url, tmp_path / "m.bin")
    assert "resumes" in (info.value.hint or "")
    assert not (tmp_path / "m.bin").exists()
    assert (tmp_path / "m.bin.part").stat().st_size == 1000


async def test_retry_budget_resets_when_bytes_arrive(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(SIZE)
    faults = []
    for i in range(6):  # 6 cuts, more than the budget of 4, but each one makes progress
        faults += ["status:503", f"drop:{(i + 1) * 20000 - (i * 20000)}"]
    url = host.add("/m", data, *faults)
    await make_fetcher(session).fetch(url, tmp_path / "m.bin", sha256=sha(data))
    assert (tmp_path / "m.bin").read_bytes() == data


async def test_200_instead_of_206_starts_over(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(SIZE)
    url = host.add("/m", data, "drop:120000", "ignore_range")
    seen: list[int] = []
    result = await make_fetcher(session).fetch(
        url, tmp_path / "m.bin", sha256=sha(data), progress=seen.append
    )
    assert sum(seen) == SIZE  # the discarded prefix is taken back
    assert (tmp_path / "m.bin").read_bytes() == data
    assert result.restarts == 1
    assert result.refetched == 120000


async def test_short_body_is_resumed(host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path) -> None:
    data = blob(SIZE)
    url = host.add("/m", data, "short:70000")
    result = await make_fetcher(session).fetch(url, tmp_path / "m.bin", size=SIZE, sha256=sha(data))
    assert (tmp_path / "m.bin").read_bytes() == data
    assert result.refetched == 0
    assert host.requests_for("/m")[1].range == "bytes=70000-"


async def test_stalled_connection_times_out_and_resumes(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(SIZE)
    url = host.add("/m", data, "stall:3")
    await make_fetcher(session).fetch(url, tmp_path / "m.bin", sha256=sha(data))
    assert (tmp_path / "m.bin").read_bytes() == data


async def test_corrupt_bytes_keep_nothing_under_the_final_name(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(SIZE)
    url = host.add("/m", data, "corrupt")
    with pytest.raises(ChecksumMismatch, match="nothing was installed") as info:
        await make_fetcher(session).fetch(url, tmp_path / "m.bin", sha256=sha(data))
    assert "sha256" in info.value.message
    assert listing(tmp_path) == []


async def test_wrong_size_is_a_mismatch(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    url = host.add("/m", blob(SIZE))
    with pytest.raises(ChecksumMismatch, match="expected 999"):
        await make_fetcher(session).fetch(url, tmp_path / "m.bin", size=999)
    assert listing(tmp_path) == []


async def test_token_is_sent_to_its_host_and_never_follows_a_redirect(
    tls_host: ModelHost, tls_other_host: ModelHost, tls_session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(SIZE)
    cdn_url = tls_other_host.add("/cdn/m", data)
    url = tls_host.add("/resolve/m", b"", f"redirect:{cdn_url}")
    fetcher = make_fetcher(tls_session, tokens={"127.0.0.1": "hf_secret"})
    await fetcher.fetch(url, tmp_path / "m.bin", sha256=sha(data))
    assert (tmp_path / "m.bin").read_bytes() == data
    assert tls_host.requests_for("/resolve/m")[0].headers.get("authorization") == "Bearer hf_secret"
    cdn = tls_other_host.requests_for("/cdn/m")
    assert cdn and all("authorization" not in r.headers for r in cdn)


async def test_redirect_to_the_same_host_keeps_its_token(
    tls_host: ModelHost, tls_session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(1000)
    tls_host.add("/real", data, require_token="t0k")
    url = tls_host.add("/alias", b"", f"redirect:{tls_host.url('/real')}")
    await make_fetcher(tls_session, tokens={"127.0.0.1": "t0k"}).fetch(url, tmp_path / "m.bin")
    assert (tmp_path / "m.bin").read_bytes() == data


async def test_a_token_never_travels_over_plain_http(
    host: ModelHost, tls_host: ModelHost, tls_session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """`http://huggingface.co/...`, or an https URL redirecting to http, would send it in clear."""
    data = blob(1000)
    plain = host.add("/m", data)
    await make_fetcher(tls_session, tokens={"127.0.0.1": "hf_secret"}).fetch(plain, tmp_path / "a.bin")
    url = tls_host.add("/resolve/m", b"", f"redirect:{plain}")
    await make_fetcher(tls_session, tokens={"127.0.0.1": "hf_secret"}).fetch(url, tmp_path / "b.bin")
    assert tls_host.requests_for("/resolve/m")[0].headers.get("authorization") == "Bearer hf_secret"
    assert host.requests_for("/m") and all("authorization" not in r.headers for r in host.requests_for("/m"))
    assert (tmp_path / "b.bin").read_bytes() == data


async def test_gated_file_names_the_token_and_licence_page(
    tls_host: ModelHost, tls_session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    url = tls_host.add("/gated", blob(1000), require_token="right")
    with pytest.raises(GatedModel) as info:
        await make_fetcher(tls_session).fetch(
            url, tmp_path / "g.bin", licence_url="https://huggingface.co/org/m"
        )
    assert info.value.status == 403
    assert info.value.hint == "set HF_TOKEN and accept the licence at https://huggingface.co/org/m"
    with pytest.raises(GatedModel) as info:
        await make_fetcher(tls_session, tokens={"127.0.0.1": "wrong"}).fetch(url, tmp_path / "g.bin")
    assert (info.value.hint or "").startswith("check that HF_TOKEN is valid")
    assert listing(tmp_path) == []


async def test_404_says_the_url_is_dead(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    with pytest.raises(UrlNotFound, match="the URL is dead"):
        await make_fetcher(session).fetch(host.url("/nope"), tmp_path / "x.bin")
    assert listing(tmp_path) == []


async def test_not_enough_space_fails_before_the_first_byte(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    url = host.add("/m", blob(SIZE))
    fetcher = make_fetcher(session, free_space=lambda p: 1000)
    with pytest.raises(DiskFull) as info:
        await fetcher.fetch(url, tmp_path / "m.bin")
    assert info.value.details["needed"] == SIZE and info.value.details["free"] == 1000
    assert "0.00 GB free" in info.value.message
    assert not (tmp_path / "m.bin").exists()
    assert not (tmp_path / "m.bin.part").exists() or (tmp_path / "m.bin.part").stat().st_size == 0


async def test_resume_after_interruption_hashes_the_prefix(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(SIZE)
    url = host.add("/m", data, "drop:200000", *(["status:500"] * 10))
    with pytest.raises(DownloadError):
        await make_fetcher(session).fetch(url, tmp_path / "m.bin")
    host.files["/m"].faults.clear()
    seen: list[int] = []
    result = await make_fetcher(session).fetch(
        url, tmp_path / "m.bin", sha256=sha(data), progress=seen.append
    )
    assert result.resumed_from == 200000 and result.network_bytes == SIZE - 200000
    assert seen[0] == 200000 and sum(seen) == SIZE  # the resumed prefix counts as done
    assert (tmp_path / "m.bin").read_bytes() == data


async def test_416_on_a_complete_part_finishes(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(SIZE)
    url = host.add("/m", data)
    (tmp_path / "m.bin.part").write_bytes(data)  # complete part from an older tool, no state
    result = await make_fetcher(session).fetch(url, tmp_path / "m.bin", size=SIZE, sha256=sha(data))
    assert result.network_bytes == 0
    assert (tmp_path / "m.bin").read_bytes() == data


async def test_stale_part_bigger_than_the_file_starts_over(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(SIZE)
    url = host.add("/m", data)
    (tmp_path / "m.bin.part").write_bytes(blob(SIZE + 10, seed=9))
    result = await make_fetcher(session).fetch(url, tmp_path / "m.bin", sha256=sha(data))
    assert result.restarts == 1
    assert (tmp_path / "m.bin").read_bytes() == data


async def test_several_connections_fetch_pieces_and_hash_in_order(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(3 * MIB + 12345)
    with ModelHost(rate=4 * MIB) as host:
        url = host.add("/big", data)
        fetcher = make_fetcher(session, connections=4)
        result = await fetcher.fetch(url, tmp_path / "big.bin", size=len(data), sha256=sha(data))
        assert host.max_active_connections >= 4
    assert result.connections == 4
    assert (tmp_path / "big.bin").read_bytes() == data
    ranges = [r.range for r in host.requests_for("/big")]
    assert ranges[0] == "bytes=0-"  # one stream first, split at once (split_below=inf)...
    assert "bytes=262144-524287" in ranges  # ...after split_ahead (256 KiB), into 256 KiB pieces


async def test_a_stream_fast_enough_alone_is_not_split(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(2 * MIB)
    with ModelHost(rate=4 * MIB) as host:
        url = host.add("/big", data)
        # ~4 MiB/s measured against 256 KiB/s: a wide margin for a loaded machine
        fetcher = make_fetcher(session, connections=4, split_after=0.2, split_below=256 * KIB)
        result = await fetcher.fetch(url, tmp_path / "big.bin", sha256=sha(data))
        ranges = [r.range for r in host.requests_for("/big")]
    assert ranges == ["bytes=0-"]  # fast enough alone: one stream to the end
    assert result.connections == 1
    # the stream went through BodyTap in page-aligned blocks, written with O_DIRECT (all but
    # the bytes aiohttp had read with the headers) where the file system takes it
    if takes_o_direct(tmp_path):
        assert len(data) // 2 < result.direct_bytes <= len(data)
    assert (tmp_path / "big.bin").read_bytes() == data


async def test_a_slow_stream_is_split_across_connections(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(3 * MIB)
    with ModelHost(rate=2 * MIB) as host:  # a CDN capping each connection
        url = host.add("/big", data)
        fetcher = make_fetcher(session, connections=4, split_after=0.1, split_below=16 * MIB)
        result = await fetcher.fetch(url, tmp_path / "big.bin", sha256=sha(data))
        ranges = [r.range for r in host.requests_for("/big")]
        assert host.max_active_connections >= 4
    assert ranges[0] == "bytes=0-"
    assert len(ranges) > 4
    assert result.connections == 4
    assert result.refetched == 0  # the first stream stopped where the pieces begin
    assert (tmp_path / "big.bin").read_bytes() == data


@pytest.mark.parametrize("tap_min", [64 * KIB, 1 << 40], ids=["body-tap", "aiohttp"])
async def test_one_stream_survives_faults_on_both_read_paths(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path, tap_min: int
) -> None:
    data = blob(2 * MIB)
    url = host.add("/m", data, "drop:300000", "short:70000", "stall:3", "ok")
    fetcher = make_fetcher(session, tap_min=tap_min)
    result = await fetcher.fetch(url, tmp_path / "m.bin", sha256=sha(data))
    assert (tmp_path / "m.bin").read_bytes() == data
    assert result.refetched == 0
    assert [r.range for r in host.requests_for("/m")] == [
        "bytes=0-",
        "bytes=300000-",
        "bytes=370000-",
        "bytes=370000-",
    ]


async def test_several_connections_survive_drops_and_errors(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(2 * MIB)
    url = host.add("/big", data, "ok", "drop:1000", "status:503", "ok", "short:5000", "429:0")
    result = await make_fetcher(session, connections=3).fetch(url, tmp_path / "big.bin", sha256=sha(data))
    assert (tmp_path / "big.bin").read_bytes() == data
    assert result.refetched == 0


async def test_several_connections_fall_back_when_ranges_are_ignored(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(2 * MIB)
    url = host.add("/big", data, "ok", "ignore_range")
    result = await make_fetcher(session, connections=3).fetch(url, tmp_path / "big.bin", sha256=sha(data))
    assert result.restarts == 1
    assert (tmp_path / "big.bin").read_bytes() == data


async def test_server_without_ranges_gets_one_stream(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    data = blob(2 * MIB)
    with ModelHost(ranges=False) as host:
        url = host.add("/big", data)
        result = await make_fetcher(session, connections=4).fetch(url, tmp_path / "big.bin", sha256=sha(data))
        assert len(host.requests_for("/big")) == 1
    assert result.connections == 1
    assert (tmp_path / "big.bin").read_bytes() == data


async def test_multi_connection_resume_from_saved_state(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data = blob(2 * MIB)
    url = host.add("/big", data, "ok", *(["status:500"] * 40))
    with pytest.raises(DownloadError):
        await make_fetcher(session, connections=2).fetch(url, tmp_path / "big.bin")
    assert (tmp_path / "big.bin.part.state").exists()
    host.files["/big"].faults.clear()
    result = await make_fetcher(session, connections=2).fetch(url, tmp_path / "big.bin", sha256=sha(data))
    assert result.resumed_from > 0
    assert result.network_bytes == len(data) - result.resumed_from
    assert (tmp_path / "big.bin").read_bytes() == data


async def test_https_download_through_the_body_tap(
    https_host: tuple[str, Path], tls_session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    base, folder = https_host
    data = blob(12 * MIB + 5)
    (folder / "m.bin").write_bytes(data)
    fetcher = make_fetcher(tls_session, connections=1)
    result = await fetcher.fetch(base + "/m.bin", tmp_path / "m.bin", size=len(data), sha256=sha(data))
    assert (tmp_path / "m.bin").read_bytes() == data
    assert result.connections == 1
    if takes_o_direct(tmp_path):  # only BodyTap's whole 4 MiB blocks go to O_DIRECT: it read them
        assert result.direct_bytes >= 4 * MIB


async def test_a_part_with_holes_and_no_state_starts_over_without_a_sha256(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """What a run killed after splitting and before its first flush used to leave: the first
    stream's bytes, a hole, then a later piece. Taken for a contiguous prefix, the hole became
    zeros inside a file installed as done."""
    data = blob(SIZE)
    url = host.add("/m", data)
    part = bytearray(SIZE)
    part[:50_000] = data[:50_000]
    part[200_000:] = data[200_000:]
    (tmp_path / "m.bin.part").write_bytes(part)
    result = await make_fetcher(session).fetch(url, tmp_path / "m.bin")
    assert result.resumed_from == 0 and result.network_bytes == SIZE
    assert (tmp_path / "m.bin").read_bytes() == data


async def test_the_state_is_saved_before_the_first_byte(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A run killed at any moment leaves a part whose state says what to trust, even before its
    first flush (here never: flush_every is larger than the file)."""
    data = blob(2 * MIB)
    with ModelHost(rate=256 * KIB) as host:
        url = host.add("/big", data)
        fetcher = make_fetcher(session, connections=3, flush_every=64 * MIB)
        task = asyncio.create_task(fetcher.fetch(url, tmp_path / "big.bin"))
        part, state = tmp_path / "big.bin.part", tmp_path / "big.bin.part.state"
        for _ in range(400):
            if part.exists() and part.stat().st_size > 0:
                break
            await asyncio.sleep(0.005)
        saved = json.loads(state.read_text())  # there, before any flush
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert part.stat().st_size > 0
    assert saved["url"] == url and saved["total"] == len(data) and saved["pieces"][0][:2] == [0, len(data)]


@pytest.mark.parametrize("rows", [[[0, 100_000, 100_000]], [[0, 100_000, 5], [150_000, SIZE, 0]], "junk"])
async def test_a_saved_state_that_does_not_tile_the_file_starts_over(
    host: ModelHost, session: aiohttp.ClientSession, tmp_path: Path, rows: object
) -> None:
    """Half of a split (the first piece cut, the rest not yet listed), a gap, or junk: resuming
    from it would install a file with a part missing."""
    data = blob(SIZE)
    url = host.add("/m", data)
    (tmp_path / "m.bin.part").write_bytes(data[:100_000])
    state = {"version": 1, "total": SIZE, "pieces": rows, "url": url}
    (tmp_path / "m.bin.part.state").write_text(json.dumps(state))
    result = await make_fetcher(session).fetch(url, tmp_path / "m.bin")
    assert result.resumed_from == 0
    assert (tmp_path / "m.bin").read_bytes() == data
