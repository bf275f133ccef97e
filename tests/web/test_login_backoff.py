"""The login backoff: per address, a cap for all addresses, LRU expiry, a lane for known browsers,
and failed Bearer tokens counted in /auth/verify too. (The address itself: tests/test_startup.py
for uvicorn without nginx, tests/docker/test_nginx_security.py behind nginx.)"""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from comfyui_docker.web.auth import LoginBackoff

from .conftest import PASSWORD, build, client_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_per_address_backoff_doubles_after_five_failures_up_to_the_cap() -> None:
    clock = Clock()
    b = LoginBackoff(clock=clock, global_limit=1000)
    for _ in range(5):
        assert b.wait("a") == 0
        b.failed("a")
    waits = []
    for _ in range(9):
        waits.append(b.wait("a"))
        clock.now += waits[-1]
        assert b.wait("a") == 0
        b.failed("a")
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert b.wait("b") == 0  # another address is not affected
    b.succeeded("a")  # someone at that address got in: the next guess there still waits
    assert b.wait("a") == 60
    clock.now += 900  # forgotten a quarter of an hour after its last failure
    assert b.tracked() == 1 and b.wait("a") == 0 and b.tracked() == 0


def test_failures_from_all_addresses_are_capped_together() -> None:
    clock = Clock()
    b = LoginBackoff(clock=clock, global_limit=20, global_window=60)
    for i in range(20):
        assert b.wait(f"10.0.0.{i}") == 0
        b.failed(f"10.0.0.{i}")
    assert b.wait("10.9.9.9") == 60  # a fresh address waits too
    clock.now += 30
    assert b.wait("10.9.9.9") == 30
    clock.now += 30
    assert b.wait("10.9.9.9") == 0


def test_a_spray_of_ten_thousand_addresses_does_not_free_a_locked_out_one() -> None:
    """The old limiter cleared its whole table past 10,000 addresses, freeing everyone."""
    clock = Clock()
    b = LoginBackoff(clock=clock)
    for _ in range(8):
        clock.now += b.wait("victim-of-lockout")
        b.failed("victim-of-lockout")
    locked = b.wait("victim-of-lockout")
    assert locked > 0
    checked = 0
    for i in range(10_000):
        ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        if b.wait(ip) == 0:
            b.failed(ip)
            checked += 1
        clock.now += 0.001
    assert checked == 12  # 20 a minute from everyone, 8 of them the victim's: the rest never checked
    assert b.wait("victim-of-lockout") > 0


def test_the_table_forgets_the_oldest_address_not_all_of_them() -> None:
    clock = Clock()
    b = LoginBackoff(clock=clock, size=100, global_limit=10**6)
    for i in range(150):
        for _ in range(6):
            b.failed(f"a{i}")
        clock.now += 0.001
    assert b.tracked() == 100
    assert b.wait("a0") == 0  # evicted: the longest ago
    assert b.wait("a149") > 0 and b.wait("a50") > 0


def test_a_known_browser_has_its_own_lane() -> None:
    clock = Clock()
    b = LoginBackoff(clock=clock, global_limit=5)
    for _ in range(50):
        if b.wait("proxy") == 0:
            b.failed("proxy")
    assert b.wait("proxy") > 0
    assert b.wait("proxy", device="owner-browser") == 0
    for _ in range(5):
        b.failed("proxy", device="owner-browser")
    assert b.wait("proxy", device="owner-browser") == 1  # its own failures do count
    b.succeeded("proxy", device="owner-browser")
    assert b.wait("proxy", device="owner-browser") == 0 and b.wait("proxy") > 0


# ---- through the app ----------------------------------------------------------------------------
def behind_nginx(tmp_path: Path) -> FastAPI:
    """X-Real-IP is the address nginx saw (nginx overwrites it on every request)."""
    app, _ = build(tmp_path / "ws", password=PASSWORD, ENABLE_NGINX="true")
    return app


async def login(c: httpx.AsyncClient, password: str, ip: str) -> httpx.Response:
    return await c.post("/login", data={"password": password, "next": "/"}, headers={"x-real-ip": ip})


async def test_the_owner_gets_in_from_a_known_browser_while_the_address_is_locked_out(
    tmp_path: Path,
) -> None:
    """Behind RunPod's proxy every client has the same address: someone guessing from there must
    not lock the owner out. The owner's browser has logged in before (a device cookie)."""
    app = behind_nginx(tmp_path)
    async with client_for(app) as c:
        assert (await login(c, PASSWORD, "10.0.0.1")).status_code == 303
        device = c.cookies["cd_device"]
        c.cookies.clear()  # the sprayer: another browser, same address
        for _ in range(30):
            await login(c, "guess", "10.0.0.1")
        assert (await login(c, PASSWORD, "10.0.0.1")).status_code == 429
        c.cookies.set("cd_device", "forged.value.sig")  # a forged device cookie is no device
        assert (await login(c, PASSWORD, "10.0.0.1")).status_code == 429
        c.cookies.set("cd_device", device)  # the owner's browser
        assert (await login(c, PASSWORD, "10.0.0.1")).status_code == 303


async def test_a_thousand_address_spray_is_capped_and_never_frees_a_locked_client(tmp_path: Path) -> None:
    app = behind_nginx(tmp_path)
    async with client_for(app) as c:
        for _ in range(6):
            await login(c, "wrong", "192.0.2.1")
        assert (await login(c, PASSWORD, "192.0.2.1")).status_code == 429
        codes: dict[int, int] = {}
        for i in range(1000):
            status = (await login(c, f"guess-{i}", f"10.1.{i >> 8}.{i & 255}")).status_code
            codes[status] = codes.get(status, 0) + 1
        assert codes == {401: 15, 429: 985}  # 20 checks a minute from everyone (5 were the victim's)
        assert (await login(c, PASSWORD, "192.0.2.1")).status_code == 429
        assert (await login(c, PASSWORD, "203.0.113.9")).status_code == 429  # everyone waits now


async def test_verify_counts_wrong_bearer_tokens(tmp_path: Path) -> None:
    """nginx asks /auth/verify for every request on ComfyUI's port: wrong tokens there count."""
    app = behind_nginx(tmp_path)
    async with client_for(app, cookies=None) as c:
        bad = {"authorization": "Bearer not-the-token", "x-real-ip": "10.2.0.1"}
        codes = [(await c.get("/auth/verify", headers=bad)).status_code for _ in range(8)]
        assert codes == [401] * 8  # nginx cannot pass a 429 on
        r = await c.get("/api/system", headers=bad)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        r = await c.get("/api/system", headers={**bad, "x-real-ip": "10.2.0.2"})
        assert r.status_code == 401
