"""Main actions end to end in Chromium against the live app, the fake ComfyUI and the model host."""

from __future__ import annotations

import io
import json
import os
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from comfy_samples import sample_path

from .conftest import needs_chromium
from .live import LiveApp

pytestmark = [pytest.mark.browser, needs_chromium]


def test_generate_demo_graph_shows_its_image(page: Any, stack: LiveApp) -> None:
    page.goto(stack.url + "/generate")
    page.wait_for_function("window.Alpine && Alpine.store('cd').live")
    page.fill("#f-width", "96")
    page.fill("#f-height", "64")
    page.click("#queue-btn")
    img = page.locator("#gen-images img").first
    img.wait_for(state="visible")
    page.wait_for_function("document.querySelector('#gen-images img').naturalWidth === 96")
    assert page.locator("#gen-status .badge").inner_text() == "done"
    assert page.locator("#gen-bar").get_attribute("style") == "width:100%"
    page.watch.shot("flow-generate-demo")
    # The image really is in the output folder, and the gallery shows it with its graph.
    files = list((stack.settings.workspace_root / "output" / "dashboard").glob("demo_*.png"))
    assert files
    page.goto(stack.url + "/outputs")
    card = page.locator(f'.output-card[data-rel="dashboard/{files[0].name}"]')
    card.locator("button").first.click()
    page.locator("#output-detail").get_by_text("96×64").wait_for()
    page.watch.shot("flow-outputs-detail")
    assert page.watch.errors == [], page.watch.failed


def test_generate_readable_error_and_missing_model(page: Any, stack: LiveApp) -> None:
    page.goto(stack.url + "/generate?template=sd15")
    page.wait_for_function("window.Alpine && Alpine.store('cd').live")
    assert page.locator("#no-model").is_visible()
    page.click("#queue-btn")
    problems = page.locator("#gen-problems")
    problems.wait_for(state="visible")
    text = problems.inner_text()
    assert "v1-5-pruned-emaonly-fp16.safetensors" in text and "not installed" in text
    assert "Traceback" not in text
    # The catalog knows a preset with that file: one click installs it.
    button = problems.get_by_role("button", name="Install preset SD15_BASE")
    button.wait_for()
    page.watch.shot("flow-generate-missing-model")
    button.click()
    page.locator("#toasts .toast", has_text="Installing SD15_BASE").wait_for()
    target = stack.settings.workspace_root / "models" / "checkpoints" / "v1-5-pruned-emaonly-fp16.safetensors"
    page.wait_for_function("true")  # let the download run
    for _ in range(200):
        if target.is_file():
            break
        page.wait_for_timeout(100)
    assert target.is_file()
    # The form now offers the installed file.
    page.goto(stack.url + "/generate?template=sd15")
    assert page.locator("#f-model option", has_text="v1-5-pruned-emaonly-fp16.safetensors").count() == 1


def test_outputs_zip_and_delete(page: Any, stack: LiveApp) -> None:
    out = stack.settings.workspace_root / "output"
    sample = sample_path("view_g1.png")
    for i in range(3):
        (out / f"pick_{i}.png").write_bytes(sample.read_bytes())
    page.goto(stack.url + "/outputs")
    for i in range(2):
        page.check(f'input[value="pick_{i}.png"]')
    with page.expect_download() as dl:
        page.click("#zip-btn")
    data = Path(dl.value.path()).read_bytes()
    assert sorted(zipfile.ZipFile(io.BytesIO(data)).namelist()) == ["pick_0.png", "pick_1.png"]
    page.once("dialog", lambda d: d.accept())
    page.click("#delete-btn")
    page.get_by_text("Deleted 2 files.").wait_for()
    assert not (out / "pick_0.png").exists() and (out / "pick_2.png").exists()
    assert page.locator('input[value="pick_0.png"]').count() == 0
    page.watch.shot("flow-outputs-deleted")
    assert page.watch.errors == [], page.watch.failed


def test_settings_save_and_validation(page: Any, stack: LiveApp) -> None:
    page.goto(stack.url + "/settings")
    page.fill("#hf_token", "not a token")
    page.click("#settings-form button[type=submit]")
    page.locator(".field-error").first.wait_for()
    assert not (stack.settings.workspace_root / "config" / "user_settings.yaml").exists()
    page.fill("#hf_token", "hf_browsertesttoken42")
    page.fill("#download_parallel_files", "2")
    page.click("#settings-form button[type=submit]")
    page.locator("#settings-notice").wait_for()
    assert "hf_…en42" in page.locator("#hf_token").get_attribute("placeholder")
    saved = (stack.settings.workspace_root / "config" / "user_settings.yaml").read_text()
    assert "hf_browsertesttoken42" in saved
    assert "hf_browsertesttoken42" not in page.content()
    page.watch.shot("flow-settings-saved")


def test_failed_request_is_shown(page: Any, stack: LiveApp) -> None:
    """htmx 2 does not swap errors: the global handler must show them."""
    page.goto(stack.url + "/pro")
    page.once("dialog", lambda d: d.accept())
    page.click("#restart-btn")  # no supervisor in this process: 503
    toast = page.locator("#toasts .toast").first
    toast.wait_for()
    assert re.search(r"503: ComfyUI is not supervised", toast.inner_text())
    page.evaluate("htmx.ajax('GET', '/outputs/meta/nope.png', {target: '#main'})")
    page.locator("#toasts .toast", has_text="404").wait_for()
    page.watch.shot("flow-error-toast")


def test_workflow_upload_check_and_install(page: Any, stack: LiveApp, tmp_path: Path) -> None:
    wf = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {
            "class_type": "LoraLoader",
            "inputs": {
                "lora_name": "browser_test_lora.safetensors",
                "strength_model": 1,
                "strength_clip": 1,
                "model": ["1", 0],
                "clip": ["1", 1],
            },
        },
    }
    path = tmp_path / "needs_lora.json"
    path.write_text(json.dumps(wf))
    page.goto(stack.url + "/workflows")
    page.set_input_files("#wf-file", str(path))
    row = page.locator('.wf-row[data-name="needs_lora.json"]')
    row.wait_for()
    # Drag and drop too: a File dropped on the zone is saved the same way.
    page.evaluate(
        """() => { const dt = new DataTransfer();
        const body = JSON.stringify({"1": {"class_type": "EmptyImage", "inputs": {}}});
        dt.items.add(new File([body], "dropped.json", {type: "application/json"}));
        const ev = new DragEvent('drop', {dataTransfer: dt, bubbles: true});
        document.getElementById('drop-zone').dispatchEvent(ev); }"""
    )
    dropped = page.locator('.wf-row[data-name="dropped.json"]')
    dropped.wait_for()
    # Running it: ComfyUI refuses the graph (it has no output node); the reason is shown.
    dropped.get_by_role("button", name="Run").click()
    dropped.get_by_text("has no output node").first.wait_for()
    row.locator(".check-btn").click()
    box = row.locator(".missing-box")
    box.get_by_text("loras/browser_test_lora.safetensors").wait_for()
    page.watch.shot("flow-workflow-missing")
    assert "preset WORKFLOW_DEPS" in box.inner_text()
    row.locator(".install-missing-btn").click()
    box.get_by_text("Every model this workflow names is on the volume.").wait_for(timeout=30_000)
    assert (
        stack.settings.workspace_root / "models" / "loras" / "browser_test_lora.safetensors"
    ).stat().st_size == 512 * 1024
    page.watch.shot("flow-workflow-installed")
    # The only failed request is the refused run above.
    assert [e for e in page.watch.errors if "status of 400" not in e] == [], page.watch.failed
    assert [f for f in page.watch.failed if "/run" not in f] == []


def test_workflow_urls_show_their_host_and_ask_first(
    page: Any, stack: LiveApp, model_host: Any, tmp_path: Path
) -> None:
    """A workflow's own model URLs: the host is shown, a host that is not allowed is refused,
    and nothing downloads before the user says yes to the hosts named."""
    data = os.urandom(64 * 1024)
    url = model_host.add("/from_workflow.safetensors", data)
    wf = {
        "nodes": [
            {"id": 1, "type": "Note", "properties": {"models": [
                {"name": "from_workflow.safetensors", "directory": "loras", "url": url},
                {"name": "elsewhere.safetensors", "directory": "loras", "url": "http://10.9.9.9/e.safetensors"},
            ]}},
        ]
    }  # fmt: skip
    path = tmp_path / "urls.json"
    path.write_text(json.dumps(wf))
    # the local test host is allowed by its address, from the Settings page
    page.goto(stack.url + "/settings")
    page.fill("#model_hosts", "127.0.0.1")
    page.click("#settings-form button[type=submit]")
    page.locator("#settings-notice").wait_for()
    page.goto(stack.url + "/workflows")
    page.set_input_files("#wf-file", str(path))
    row = page.locator('.wf-row[data-name="urls.json"]')
    row.wait_for()
    row.locator(".check-btn").click()
    box = row.locator(".missing-box")
    box.get_by_text("from 127.0.0.1").wait_for()
    box.get_by_title("10.9.9.9 is not an allowed model host").wait_for()
    assert box.get_by_text("not an allowed host").nth(0).is_hidden()  # the allowed one has none
    page.watch.shot("flow-workflow-urls")
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    row.locator(".install-missing-btn").click()
    page.wait_for_timeout(300)
    target = stack.settings.workspace_root / "models" / "loras" / "from_workflow.safetensors"
    assert asked and "127.0.0.1" in asked[0] and "10.9.9.9" not in asked[0]
    assert not target.exists()  # said no: nothing fetched
    page.once("dialog", lambda d: d.accept())
    row.locator(".install-missing-btn").click()
    box.get_by_text("loras/from_workflow.safetensors").wait_for()
    deadline = time.monotonic() + 30
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert target.read_bytes() == data
    assert not (target.parent / "elsewhere.safetensors").exists()
    page.goto(stack.url + "/settings")
    page.fill("#model_hosts", "")
    page.click("#settings-form button[type=submit]")
    page.locator("#settings-notice").wait_for()


def test_install_preset_progress_reaches_100(page: Any, stack: LiveApp) -> None:
    page.goto(stack.url + "/models")
    card = page.locator('.preset-card[data-preset="TINY_TEST"]')
    card.wait_for()
    assert card.locator(".badge").first.inner_text() == "not installed"
    widths: list[float] = []
    page.expose_function("recordWidth", lambda w: widths.append(float(w)))
    card.locator(".install-btn").click()
    bar = card.locator(".progress")
    bar.wait_for()
    page.evaluate(
        """() => { const el = document.querySelector('[data-preset="TINY_TEST"] .progress');
        new MutationObserver(() => window.recordWidth(parseFloat(el.style.width)))
          .observe(el, {attributes: true}); }"""
    )
    page.watch.shot("flow-preset-installing", full_page=False)
    card.locator(".badge", has_text="installed").first.wait_for(timeout=30_000)
    page.wait_for_function(
        "document.querySelector('[data-preset=\"TINY_TEST\"] .badge').textContent === 'installed'"
    )
    assert widths and max(widths) == 100.0, widths
    assert any(0 < w < 100 for w in widths), f"no intermediate progress seen: {widths}"
    assert (stack.settings.workspace_root / "models" / "checkpoints" / "tiny_test.safetensors").is_file()
    page.get_by_text("tiny_test.safetensors").first.wait_for()
    page.watch.shot("flow-preset-installed")
    assert page.watch.errors == [], page.watch.failed
    # Uninstall from the card: the file goes, the card says so.
    page.once("dialog", lambda d: d.accept())
    card.get_by_role("button", name="Uninstall").click()
    card.locator(".badge", has_text="not installed").wait_for()
    assert not (stack.settings.workspace_root / "models" / "checkpoints" / "tiny_test.safetensors").exists()


def test_official_template_search_and_inputs(page: Any, stack: LiveApp) -> None:
    page.goto(stack.url + "/generate")
    page.locator(".official-item").first.wait_for()
    page.fill('#official input[name="q"]', "z-image turbo")
    item = page.locator('.official-item[data-name="image_z_image_turbo"]')
    item.wait_for()
    item.click()
    detail = page.locator('[data-official="image_z_image_turbo"]')
    detail.wait_for()
    detail.get_by_text("diffusion_models/z_image_turbo_bf16.safetensors").wait_for()
    assert detail.get_by_role("button", name=re.compile(r"Install \d missing models")).is_visible()
    # The fake ComfyUI serves the real /object_info, so the template's main inputs are offered.
    assert detail.locator("textarea").count() >= 1, detail.inner_text()
    page.watch.shot("flow-official-template")
    # Running it goes through the same route as the form: ComfyUI refuses the models it lacks,
    # and the page lists them in the same box.
    detail.get_by_role("button", name="Run template").click()
    problems = page.locator("#gen-problems")
    problems.wait_for(state="visible")
    text = problems.inner_text()
    assert "z_image_turbo_bf16.safetensors" in text and "is not installed" in text, text
    assert "diffusion_models/z_image_turbo_bf16.safetensors" in text  # the missing-model list
    assert [e for e in page.watch.errors if "status of 400" not in e] == [], page.watch.failed


def test_cancel_an_install(page: Any, stack: LiveApp) -> None:
    page.goto(stack.url + "/models")
    page.select_option('select[aria-label="Type"]', "other")
    card = page.locator('.preset-card[data-preset="SLOW_TEST"]')
    card.locator(".install-btn").click()
    bar = "document.querySelector('[data-preset=\"SLOW_TEST\"] .progress')"
    page.wait_for_function(f"parseFloat(({bar} || {{style: {{}}}}).style.width) > 0")
    card.get_by_role("button", name="Cancel").click()
    card.get_by_text("cancelled").wait_for()
    assert card.locator(".badge").first.inner_text() == "not installed"
    assert card.locator(".install-btn").is_visible()  # it can be started again (resumes the .part)
    assert not (stack.settings.workspace_root / "models" / "checkpoints" / "slow_test.safetensors").exists()
    page.watch.shot("flow-preset-cancelled", full_page=False)
    assert page.watch.errors == [], page.watch.failed
