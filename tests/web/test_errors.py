"""One JSON error shape for every failure under /api: AppError, HTTPException, validation, 500."""

from __future__ import annotations

from pathlib import Path

from comfyui_docker.errors import DiskFull, PresetNotFound

from .conftest import build, client_for


def assert_shape(body: dict, code: str | None = None) -> dict:
    assert set(body) == {"error"}
    err = body["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert set(err) <= {"code", "message", "hint", "details"}
    if code:
        assert err["code"] == code, err
    return err


async def test_unknown_route_and_method(client) -> None:
    r = await client.get("/api/does-not-exist")
    assert r.status_code == 404
    assert_shape(r.json(), "not_found")
    r = await client.patch("/api/system")
    assert r.status_code == 405
    assert_shape(r.json(), "method_not_allowed")


async def test_malformed_json_is_422_with_hint(client) -> None:
    r = await client.post(
        "/api/presets/install", content=b'{"preset_id": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    err = assert_shape(r.json(), "malformed_json")
    assert "JSON" in err["message"] and err["hint"]


async def test_validation_error_lists_fields_without_echoing_values(client) -> None:
    r = await client.post("/api/presets/install", json={"preset_id": "lower-case-secret-value"})
    assert r.status_code == 422
    err = assert_shape(r.json(), "validation_error")
    assert err["details"]["errors"][0]["loc"] == ["body", "preset_id"]
    assert "lower-case-secret-value" not in r.text


async def test_app_errors_keep_status_code_hint(tmp_path: Path) -> None:
    app, _ = build(tmp_path / "ws")

    @app.get("/api/test-disk-full")
    async def disk_full() -> None:
        raise DiskFull("not enough space: 3.0 GB needed, 1.0 GB free", hint="free some space")

    @app.get("/api/test-preset")
    async def preset() -> None:
        raise PresetNotFound("no preset X", hint="see the list", preset_id="X")

    async with client_for(app) as c:
        r = await c.get("/api/test-disk-full")
        assert r.status_code == 507
        assert assert_shape(r.json(), "disk_full")["hint"] == "free some space"
        r = await c.get("/api/test-preset")
        assert r.status_code == 404
        assert assert_shape(r.json(), "preset_not_found")["details"] == {"preset_id": "X"}


async def test_unexpected_exception_is_500_without_internals(tmp_path: Path, caplog) -> None:
    app, _ = build(tmp_path / "ws")

    @app.get("/api/test-boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail /etc/shadow")

    async with client_for(app) as c:
        r = await c.get("/api/test-boom")
    assert r.status_code == 500
    assert_shape(r.json(), "internal_error")
    assert "secret" not in r.text and "Traceback" not in r.text
    assert "secret internal detail" in caplog.text  # the log keeps it


async def test_pages_get_html_errors(client) -> None:
    r = await client.get("/no-such-page", headers={"accept": "text/html"})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "<h1>404</h1>" in r.text


async def test_openapi_documents_error_statuses(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "ErrorResponse" in spec["components"]["schemas"]
    ops = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if path.startswith("/api/")
    ]
    assert len(ops) > 25
    for path, method, op in ops:
        wanted = ("401", "500", "403") if method in ("post", "put", "delete") else ("401", "500")
        for status in wanted:
            assert status in op["responses"], f"{method} {path} does not document {status}"
    install = spec["paths"]["/api/presets/install"]["post"]["responses"]
    assert {"400", "404", "409", "503", "507"} <= set(install)
    login = spec["paths"]["/login"]["post"]["responses"]
    assert {"303", "401", "429"} <= set(login)


async def test_a_method_a_fixed_path_does_not_take_is_405_not_422(client) -> None:
    """DELETE /api/presets/tasks matched the template /api/presets/{preset_id} and failed its
    pattern (422); /api/presets/tasks is its own resource, which takes GET only."""
    for method, path, allowed in [
        ("DELETE", "/api/presets/tasks", "GET"),
        ("GET", "/api/presets/install", "POST"),
        ("DELETE", "/api/queue/interrupt", "POST"),
    ]:
        r = await client.request(method, path)
        assert r.status_code == 405, (method, path, r.text)
        assert r.headers["allow"] == allowed
    assert (await client.delete("/api/presets/lowercase")).status_code == 422  # a real bad id


async def test_the_schema_lists_the_methods_the_proxy_takes_and_workflow_name_patterns(client) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert set(schema["paths"]["/api/comfyui/{path}"]) == {"get", "post", "put", "patch", "delete"}
    for path, ops in schema["paths"].items():
        if path.startswith("/api/workflows/{name}"):
            for op in ops.values():
                name = next(p for p in op["parameters"] if p["name"] == "name")
                assert name["schema"]["pattern"].startswith("^"), (path, op)


async def test_the_schema_documents_what_the_middleware_answers(client) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            responses = op["responses"]
            if "requestBody" in op:
                assert "413" in responses, (method, path)  # the body limit
            if "401" in responses and path != "/auth/verify":
                assert "429" in responses, (method, path)  # wrong tokens: the backoff
            if path != "/health":
                assert "403" in responses, (method, path)  # an unknown host without a password
