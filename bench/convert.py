"""Time to convert every official template (UI format -> API prompt).

Ours: `comfyui_docker.workflows.convert.convert` over all templates of the installed
comfyui-workflow-templates-json, node definitions already loaded (as the dashboard holds them),
workflow JSON already parsed; median of several full passes.

Peer: ComfyUI's own editor (comfyui-frontend-package 1.49.6 in Chromium), whose
`app.graphToPrompt()` time per template was recorded with the ground-truth samples
(`templates-api/summary.json` in tests/data/comfyui-samples/templates-api.tar.gz, field
`prompt_ms`; its `load_ms`, the time to load the graph into the editor first, is printed too).
The editor cannot run in this process, so that figure is the recorded one, not re-measured here;
the ratio compares it with ours on the same templates.

    .venv/bin/python bench/convert.py [--passes N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))  # the recorded ComfyUI answers

from comfy_samples import ground_truth, object_info  # noqa: E402
from comfyui_docker.workflows.convert import UnknownNodeError, convert  # noqa: E402
from comfyui_docker.workflows.templates import TemplateLibrary  # noqa: E402


def one_pass(workflows: dict[str, dict[str, Any]], info: dict[str, Any]) -> tuple[float, int, int]:
    ok = failed = 0
    start = time.perf_counter()
    for wf in workflows.values():
        try:
            convert(wf, info)
            ok += 1
        except UnknownNodeError:
            failed += 1
    return time.perf_counter() - start, ok, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", type=int, default=7)
    args = parser.parse_args()

    t0 = time.perf_counter()
    info = object_info()
    t_info = time.perf_counter() - t0
    lib = TemplateLibrary()
    t0 = time.perf_counter()
    workflows = {name: lib.load(name) for name in lib.infos()}
    t_load = time.perf_counter() - t0

    summary = ground_truth("summary.json")["templates"]
    sampled = {t["name"]: t for t in summary if t["name"] in workflows}
    sampled_wfs = {name: workflows[name] for name in sampled}

    all_times, sample_times = [], []
    ok = failed = 0
    for _ in range(args.passes):  # alternate: all templates, then the sampled subset
        seconds, ok, failed = one_pass(workflows, info)
        all_times.append(seconds)
        seconds, _, _ = one_pass(sampled_wfs, info)
        sample_times.append(seconds)

    ours_all = statistics.median(all_times)
    ours_sample = statistics.median(sample_times)
    peer_prompt = sum(t.get("prompt_ms", 0) for t in sampled.values()) / 1000
    peer_load = sum(t.get("load_ms", 0) for t in sampled.values()) / 1000

    print(f"templates: {len(workflows)} ({ok} convert, {failed} need node packs that are not installed)")
    print(
        f"setup: object_info parse {t_info * 1000:.0f} ms, "
        f"template JSON parse {t_load * 1000:.0f} ms (not in figures)"
    )
    print(
        f"ours, all {len(workflows)} templates: {ours_all * 1000:.1f} ms "
        f"(median of {args.passes}; {ours_all / len(workflows) * 1000:.2f} ms per template)"
    )
    print(f"ours, the {len(sampled)} sampled templates: {ours_sample * 1000:.1f} ms")
    print(
        f"peer, ComfyUI editor 1.49.6 graphToPrompt on the same {len(sampled)} (recorded): "
        f"{peer_prompt * 1000:.0f} ms"
        f" (+ {peer_load:.1f} s loading the graphs into the editor)"
    )
    if ours_sample > 0:
        print(
            f"ratio peer/ours (graphToPrompt only): {peer_prompt / ours_sample:.2f}x; "
            f"including the editor's load: {(peer_prompt + peer_load) / ours_sample:.0f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
