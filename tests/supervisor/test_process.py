"""Children of the runtime do not outlive it, even when it is killed with SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import psutil

RUNTIME = textwrap.dedent(
    """
    import asyncio, sys
    from comfyui_docker.supervisor.process import spawn
    from comfyui_docker.supervisor.spec import ProcessSpec

    async def main():
        child = await spawn(ProcessSpec(name="sleeper", argv=(sys.executable, "-c",
                                        "import time; time.sleep(60)")))
        print(child.pid, flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def test_a_child_gets_sigterm_when_the_runtime_is_killed() -> None:
    with subprocess.Popen([sys.executable, "-c", RUNTIME], stdout=subprocess.PIPE, text=True) as runtime:
        assert runtime.stdout is not None
        child_pid = int(runtime.stdout.readline())
        child = psutil.Process(child_pid)
        try:
            assert child.is_running() and child.ppid() == runtime.pid
            runtime.send_signal(signal.SIGKILL)
            runtime.wait(10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and child.is_running() and child.status() != "zombie":
                time.sleep(0.05)
            assert not child.is_running() or child.status() == "zombie", "the child outlived the runtime"
        finally:
            if child.is_running():
                child.kill()
