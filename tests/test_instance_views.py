"""ComfyUI as one when there are several (one per GPU): ready while any runs, the others named."""

from __future__ import annotations

from comfyui_docker.instance_views import InstanceView, overall


def view(name: str, state: str, detail: str = "") -> InstanceView:
    return InstanceView(name, int(name[-1]), 8188 + int(name[-1]), state, detail)


def test_one_instance_is_itself() -> None:
    assert overall([InstanceView("comfyui", None, 8188, "backoff", "exit 1")]) == ("backoff", "exit 1")


def test_several_run_while_any_runs_and_name_the_others() -> None:
    assert overall([view("comfyui-0", "running"), view("comfyui-1", "running")]) == (
        "running",
        "2 ComfyUIs running",
    )
    state, detail = overall(
        [view("comfyui-0", "running"), view("comfyui-1", "blocked", "GPU 1 is not visible")]
    )
    assert (
        state == "running" and detail == "1 of 2 ComfyUIs running; comfyui-1 blocked (GPU 1 is not visible)"
    )


def test_none_running_says_the_most_hopeful_state() -> None:
    state, detail = overall(
        [view("comfyui-0", "fatal"), view("comfyui-1", "starting"), view("comfyui-2", "blocked")]
    )
    assert state == "starting" and "comfyui-0 fatal" in detail and "comfyui-2 blocked" in detail
    assert overall([view("comfyui-0", "fatal"), view("comfyui-1", "blocked")])[0] == "fatal"
