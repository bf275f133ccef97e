"""COMFYUI_GPUS: which ComfyUIs start on which GPU, the per-GPU preflight, the RAM check, and the
test-only GPU declaration (COMFYUI_TEST_GPUS) that stands in for NVML here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from comfyui_docker import gpu
from comfyui_docker.declared_gpus import DeclaredNvml
from comfyui_docker.errors import SettingsError
from comfyui_docker.instance import Instance, database_path
from comfyui_docker.placement import GIB, deep_checks, memory_limit, plan
from comfyui_docker.settings import Settings


def settings_with(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"WORKSPACE_ROOT": str(tmp_path / "ws"), **env}, cwd=tmp_path)


def report_of(count: int) -> gpu.GpuReport:
    return gpu.judge(gpu.read_nvml(DeclaredNvml((24,) * count)), {"skipped": "test"}, "skipped")


@pytest.mark.parametrize(
    ("raw", "shown", "indexes", "every"),
    [
        ("all", "all", (), True),
        ("ALL ", "all", (), True),
        ("0, 1,3", "0,1,3", (0, 1, 3), False),
        ("2", "2", (2,), False),
    ],
)
def test_comfyui_gpus_values(
    tmp_path: Path, raw: str, shown: str, indexes: tuple[int, ...], every: bool
) -> None:
    s = settings_with(tmp_path, COMFYUI_GPUS=raw)
    assert s.comfyui_gpus.indexes == indexes and s.comfyui_gpus.every is every and s.comfyui_gpus.per_gpu
    assert s.public_items()["COMFYUI_GPUS"] == shown
    assert not settings_with(tmp_path).comfyui_gpus.per_gpu  # the default: one ComfyUI, every GPU


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"COMFYUI_GPUS": "first"}, "'first' is not a GPU index"),
        ({"COMFYUI_GPUS": "0,0"}, "GPU 0 is named twice"),
        ({"COMFYUI_GPUS": "0,-1"}, "'-1' is not a GPU index"),
        (
            {"COMFYUI_GPUS": "0,2", "COMFYUI_INTERNAL_PORT": "2998", "COMFYUI_PORT": "3000"},
            "already used by COMFYUI_PORT",
        ),
        ({"COMFYUI_GPUS": "9", "COMFYUI_INTERNAL_PORT": "65530"}, "above 65535"),
        ({"COMFYUI_TEST_GPUS": "two"}, "not a GPU count"),
        ({"COMFYUI_INSTANCE_RAM_GB": "0"}, "out of range"),
    ],
)
def test_bad_values_say_what_to_write(tmp_path: Path, env: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=says) as caught:
        settings_with(tmp_path, **env)
    assert caught.value.hint


def test_declared_gpus_answer_like_nvml(tmp_path: Path) -> None:
    s = settings_with(tmp_path, COMFYUI_TEST_GPUS="3x80")
    nvml = gpu.nvml_for(s)
    read = gpu.read_nvml(nvml)
    assert [d["index"] for d in read["devices"]] == [0, 1, 2]
    assert {d["memory_total"] for d in read["devices"]} == {80 * GIB} and read["cuda_driver"] == "13.0"
    assert s.public_items()["COMFYUI_TEST_GPUS"] == "3x80"
    assert settings_with(tmp_path, COMFYUI_TEST_GPUS="2").comfyui_test_gpus == (24, 24)


async def test_preflight_with_declared_gpus_runs_comfyui_on_the_cpu(tmp_path: Path) -> None:
    report = await gpu.preflight_for(
        settings_with(tmp_path, COMFYUI_TEST_GPUS="2", COMFYUI_PYTHON=sys.executable)
    )
    assert report.verdict == "ok" and report.declared and report.wants_cpu and report.indexes == [0, 1]
    assert "COMFYUI_TEST_GPUS" in report.message
    plain = await gpu.preflight_for(settings_with(tmp_path, COMFYUI_PYTHON=sys.executable))
    assert not plain.declared  # this machine has no GPU: NVML's own answer
    assert plain.verdict == "no_gpu"


def test_the_default_is_one_comfyui_for_every_gpu(tmp_path: Path) -> None:
    s = settings_with(tmp_path, COMFYUI_INTERNAL_PORT="9100")
    only = plan(s, report_of(4), memory=1 * GIB)
    assert only.instances == [Instance(9100)] and not only.warnings and not only.per_gpu
    assert only.instances[0].name == "comfyui" and only.instances[0].env == {}


def test_all_is_one_comfyui_per_visible_gpu(tmp_path: Path) -> None:
    s = settings_with(tmp_path, COMFYUI_GPUS="all", COMFYUI_INTERNAL_PORT="9100")
    got = plan(s, report_of(4), memory=64 * GIB)
    assert [(p.gpu, p.port, p.name, p.log_name) for p in got.instances] == [
        (0, 9100, "comfyui-0", "comfyui-0.log"),
        (1, 9101, "comfyui-1", "comfyui-1.log"),
        (2, 9102, "comfyui-2", "comfyui-2.log"),
        (3, 9103, "comfyui-3", "comfyui-3.log"),
    ]
    assert got.instances[2].env == {"CUDA_VISIBLE_DEVICES": "2", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert [i.index for i in got.instances] == [0, 1, 2, 3]  # the gateway's clients, in order
    # a temp folder and a database each, beside each other on the container's disk
    assert got.instances[1].temp_directory == database_path(9101).parent / "temp"
    assert len({i.temp_directory for i in got.instances}) == len({i.database for i in got.instances}) == 4
    assert not got.warnings and got.per_gpu


def test_all_starts_only_what_the_ram_holds_and_says_the_numbers(tmp_path: Path) -> None:
    s = settings_with(tmp_path, COMFYUI_GPUS="all", COMFYUI_INSTANCE_RAM_GB="8")
    got = plan(s, report_of(4), memory=int(30.5 * GIB))
    assert [p.gpu for p in got.instances] == [0, 1, 2]
    (warning,) = got.warnings
    assert "4 ComfyUIs need about 32.0 GiB" in warning and "may use 30.5 GiB, which holds 3" in warning
    assert "starting 3 (GPUs 0, 1, 2)" in warning and "COMFYUI_INSTANCE_RAM_GB" in warning
    assert [p.gpu for p in plan(s, report_of(4), memory=2 * GIB).instances] == [0]  # at least one


def test_a_list_is_started_as_asked_with_the_same_warning(tmp_path: Path) -> None:
    s = settings_with(tmp_path, COMFYUI_GPUS="0,1,3", COMFYUI_INSTANCE_RAM_GB="16")
    got = plan(s, report_of(4), memory=20 * GIB)
    assert [p.gpu for p in got.instances] == [0, 1, 3] and all(not p.problem for p in got.instances)
    assert "they may run out of RAM" in got.warnings[0]


def test_a_gpu_that_is_not_visible_is_held_with_why(tmp_path: Path) -> None:
    s = settings_with(tmp_path, COMFYUI_GPUS="0,5")
    got = plan(s, report_of(2), memory=64 * GIB)
    assert [p.problem for p in got.instances] == [
        "",
        "GPU 5 is not visible (this machine shows GPUs 0, 1); remove it from COMFYUI_GPUS",
    ]
    none = plan(s, report_of(0), memory=64 * GIB)
    assert "this machine shows no GPU" in none.instances[0].problem


def test_all_without_a_gpu_is_one_comfyui(tmp_path: Path) -> None:
    got = plan(settings_with(tmp_path, COMFYUI_GPUS="all"), report_of(0), memory=64 * GIB)
    assert got.instances == [Instance(8188)] and "no GPU is visible" in got.warnings[0]


def test_memory_limit_is_the_containers_when_lower(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text(f"{16 * GIB}\n")
    assert memory_limit(v2, total=64 * GIB) == 16 * GIB
    (v2 / "memory.max").write_text("max\n")
    assert memory_limit(v2, total=64 * GIB) == 64 * GIB
    v1 = tmp_path / "v1" / "memory"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    assert memory_limit(tmp_path / "v1", total=64 * GIB) == 64 * GIB
    (v1 / "memory.limit_in_bytes").write_text(f"{8 * GIB}\n")
    assert memory_limit(tmp_path / "v1", total=64 * GIB) == 8 * GIB
    assert memory_limit(tmp_path / "nothing", total=3 * GIB) == 3 * GIB


async def test_deep_checks_ask_torch_about_each_gpu_as_its_comfyui_sees_it(tmp_path: Path) -> None:
    """A stub torch whose CUDA works only for GPU 1 (as when GPU 0 is in a bad state)."""
    site = tmp_path / "site" / "torch"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text(
        "import os, types\n__version__ = '2.9.1'\nversion = types.SimpleNamespace(cuda='12.8')\n"
        "visible = os.environ.get('CUDA_VISIBLE_DEVICES')\n"
        "cuda = types.SimpleNamespace(is_available=lambda: visible == '1', device_count=lambda: 1)\n"
    )
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={tmp_path / "site"} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    instances = [Instance(9000, 0, 0), Instance(9001, 1, 1), Instance(9002, 2, 2, problem="not visible")]
    got = await deep_checks(python, instances)
    assert set(got) == {"0", "1"}  # a GPU held for a problem is not asked
    assert got["0"]["available"] is False and got["1"]["available"] is True and got["1"]["devices"] == 1


async def test_run_without_url_spreads_over_the_runtimes_comfyuis(tmp_path: Path) -> None:
    """`comfyui-docker run` builds the same plan as `start`: one client per GPU's ComfyUI."""
    import aiohttp

    from comfyui_docker.cli.workflows import _gateway

    s = settings_with(tmp_path, COMFYUI_GPUS="all", COMFYUI_TEST_GPUS="2", COMFYUI_INTERNAL_PORT="9100")
    async with aiohttp.ClientSession() as session:
        several = _gateway(session, s, None)
        assert [(c.name, c.base_url) for c in several.clients] == [
            ("comfyui-0", "http://127.0.0.1:9100"),
            ("comfyui-1", "http://127.0.0.1:9101"),
        ]
        assert [c.base_url for c in _gateway(session, s, "http://127.0.0.1:7000").clients] == [
            "http://127.0.0.1:7000"
        ]
        one = _gateway(session, settings_with(tmp_path, COMFYUI_INTERNAL_PORT="9100"), None)
        assert [(c.name, c.base_url) for c in one.clients] == [("comfyui", "http://127.0.0.1:9100")]


def _torch_stub(tmp_path: Path, working_gpu: str) -> Path:
    """A Python whose torch sees CUDA only with CUDA_VISIBLE_DEVICES=`working_gpu`."""
    site = tmp_path / "site" / "torch"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text(
        "import os, types\n__version__ = '2.9.1'\nversion = types.SimpleNamespace(cuda='12.8')\n"
        "visible = os.environ.get('CUDA_VISIBLE_DEVICES')\n"
        f"cuda = types.SimpleNamespace(is_available=lambda: visible == {working_gpu!r},"
        " device_count=lambda: 1)\n"
    )
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={tmp_path / "site"} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return python


async def test_an_instance_whose_gpu_fails_cuda_is_held_blocked_the_other_runs(tmp_path: Path) -> None:
    """The per-GPU check after the start: GPU 0's CUDA fails, so comfyui-0 is stopped and held
    `blocked` with the reason; comfyui-1 keeps running."""
    from comfyui_docker.services import Services
    from comfyui_docker.startup import _per_gpu_check
    from comfyui_docker.supervisor import ProcessSpec, Service, State, Supervisor, Timings

    s = settings_with(tmp_path, COMFYUI_PYTHON=str(_torch_stub(tmp_path, "1")))
    services = Services.create(s)
    supervisor = Supervisor()
    instances = [Instance.on_gpu(0, 9000, 0), Instance.on_gpu(1, 9001, 1)]
    fast = Timings(start_grace=0.1, ready_timeout=5, poll_interval=0.05, stop_sigint=1, stop_sigterm=1)
    for instance in instances:
        sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
        supervisor.add(Service(ProcessSpec(instance.name, sleeper, timings=fast))).start()
    try:
        for instance in instances:
            await supervisor.get(instance.name).wait_state(State.RUNNING, timeout=10)
        await _per_gpu_check(services, supervisor, instances)
        blocked = supervisor.status("comfyui-0")
        assert blocked.state is State.BLOCKED and blocked.pid is None
        assert "GPU 0 fails CUDA's check" in blocked.detail and "COMFYUI_GPUS" in blocked.detail
        assert supervisor.status("comfyui-1").state is State.RUNNING
    finally:
        await supervisor.stop()
