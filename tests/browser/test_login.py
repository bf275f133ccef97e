"""With ACCESS_PASSWORD set: pages need the login, the warning is gone, log out works."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from comfyui_docker.settings import Settings

from .conftest import needs_chromium
from .live import LiveApp

pytestmark = [pytest.mark.browser, needs_chromium]
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    base = tmp_path_factory.mktemp("secured")
    live = LiveApp(Settings.from_env({"WORKSPACE_ROOT": str(base), "ACCESS_PASSWORD": PASSWORD})).start()
    yield live
    live.stop()


def test_login_and_logout(page: Any, secured: LiveApp) -> None:
    page.goto(secured.url + "/settings")
    assert "/login" in page.url  # redirected to the login form
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    page.get_by_text("Wrong password.").wait_for()
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(secured.url + "/settings")
    assert page.locator("#no-password-warning").count() == 0
    page.wait_for_function(
        "window.Alpine && Alpine.store('cd').live"
    )  # the events socket accepted the session
    token = secured.app.state.dashboard.auth.api_token()
    page.click("text=Show")
    assert page.locator("#api-token").inner_text() == token
    # A change through htmx carries the CSRF header and succeeds.
    page.fill("#download_parallel_files", "3")
    page.click("#settings-form button[type=submit]")
    page.locator("#settings-notice").wait_for()
    page.watch.shot("flow-login-settings")
    page.click("text=Log out")
    page.wait_for_url("**/login**")
    page.goto(secured.url + "/")
    assert "/login" in page.url
    page.watch.shot("flow-logged-out")
    assert [e for e in page.watch.errors if "401" not in e] == [], page.watch.failed


def test_log_out_everywhere_from_settings(page: Any, secured: LiveApp) -> None:
    page.goto(secured.url + "/login?next=/settings")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(secured.url + "/settings")
    cookie = next(c for c in page.context.cookies() if c["name"] == "cd_session")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#logout-everywhere")
    page.wait_for_url("**/login**")
    # the session is over on the server: the old cookie, put back, opens nothing
    page.context.add_cookies([cookie])
    page.goto(secured.url + "/settings")
    assert "/login" in page.url
