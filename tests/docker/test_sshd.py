"""sshd with PUBLIC_KEY only: config, keys, and a real login on loopback where openssh is installed."""

from __future__ import annotations

import getpass
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from image_helpers import free_port, wait_port

from comfyui_docker.children import sshd
from comfyui_docker.settings import Settings
from comfyui_docker.workspace import Workspace


@pytest.fixture(scope="module")
def host_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ssh-keygen -A` once for the module (RSA keys take seconds); tests start from a copy."""
    needs("ssh-keygen")
    folder = tmp_path_factory.mktemp("hostkeys") / "ssh"
    sshd.ensure_host_keys(folder)
    return folder


def make(tmp_path: Path, key: str, keys_from: Path | None = None) -> tuple[Settings, Workspace]:
    settings = Settings.from_env({"WORKSPACE_ROOT": str(tmp_path / "ws"), "PUBLIC_KEY": key}, cwd=tmp_path)
    ws = Workspace(settings.workspace_root)
    ws.config.mkdir(parents=True)
    if keys_from is not None:  # a volume that already has its host keys
        shutil.copytree(keys_from, ws.config / "ssh")
    return settings, ws


def keypair(folder: Path) -> tuple[Path, str]:
    key = folder / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test@cd", "-f", str(key)],
        check=True,
        timeout=30,
    )
    return key, (folder / "id_ed25519.pub").read_text().strip()


@pytest.fixture
def safe_dir() -> Iterator[Path]:
    """sshd's StrictModes refuses keys under a world-writable folder such as /tmp: use $HOME."""
    home = Path.home()
    mode = home.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH) or home.stat().st_uid not in (0, os.getuid()):
        pytest.skip(f"{home} is group/world-writable; sshd's StrictModes would refuse it")
    path = Path(tempfile.mkdtemp(prefix=".cd-sshd-test-", dir=home))
    os.chmod(path, 0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def needs(*tools: str) -> None:
    for tool in tools:
        if not (shutil.which(tool) or os.access(f"/usr/sbin/{tool}", os.X_OK)):
            pytest.skip(f"needs {tool} (openssh-server / openssh-client)")


def test_no_key_no_sshd(tmp_path: Path) -> None:
    settings, ws = make(tmp_path, "")
    assert sshd.prepare(settings, ws, tmp_path / "run") is None
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("raw", ["hunter2", "ssh-ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\nabc"])
def test_a_value_that_is_not_a_public_key_is_refused(raw: str) -> None:
    with pytest.raises(sshd.SshdError, match="PUBLIC_KEY"):
        sshd.parse_keys(raw)


def test_several_keys_one_per_line() -> None:
    raw = "ssh-ed25519 AAAAC3Nza a@b\\nssh-rsa AAAAB3Nza c@d\n\n# comment\n"
    assert sshd.parse_keys(raw) == ["ssh-ed25519 AAAAC3Nza a@b", "ssh-rsa AAAAB3Nza c@d"]


def test_host_keys_are_made_once(tmp_path: Path) -> None:
    needs("ssh-keygen")
    folder = tmp_path / "ssh"
    sshd.ensure_host_keys(folder)
    made = {name: (folder / "etc" / "ssh" / name).read_bytes() for name in sshd.HOST_KEY_NAMES}
    sshd.ensure_host_keys(folder)
    assert {name: (folder / "etc" / "ssh" / name).read_bytes() for name in sshd.HOST_KEY_NAMES} == made


def test_a_key_ssh_keygen_failed_to_make_is_made_by_a_second_run(tmp_path: Path) -> None:
    """`ssh-keygen -A` says on stderr that a key failed and still exits 0: the keys are checked."""
    keygen = tmp_path / "ssh-keygen"
    keygen.write_text(
        "#!/bin/sh\n"
        '# -A -f DIR, as ensure_host_keys calls it; ECDSA fails the first time\ndir="$3/etc/ssh"\n'
        'for t in ed25519 rsa; do echo key > "$dir/ssh_host_${t}_key"; done\n'
        'if [ -e "$3/ran" ]; then echo key > "$dir/ssh_host_ecdsa_key"; '
        'else echo "sshkey_generate failed" >&2; fi\n'
        'touch "$3/ran"\n'
    )
    keygen.chmod(0o755)
    folder = tmp_path / "ssh"
    sshd.ensure_host_keys(folder, keygen=str(keygen))
    assert all((folder / "etc" / "ssh" / name).is_file() for name in sshd.HOST_KEY_NAMES)


def test_plan_writes_keys_and_a_keys_only_config(tmp_path: Path, host_keys: Path) -> None:
    _, pub = keypair(tmp_path)
    settings, ws = make(tmp_path, pub, host_keys)
    plan = sshd.prepare(settings, ws, tmp_path / "run", port=2222, binary="/usr/sbin/sshd")
    assert plan is not None
    assert plan.argv == ["/usr/sbin/sshd", "-D", "-e", "-f", str(plan.config)]
    assert plan.authorized_keys.read_text() == pub + "\n"
    assert stat.S_IMODE(plan.authorized_keys.stat().st_mode) == 0o600
    text = plan.config.read_text().splitlines()
    for line in (
        "Port 2222",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        f"AuthorizedKeysFile {plan.authorized_keys}",
    ):
        assert line in text
    assert plan.host_keys
    for key in plan.host_keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # host keys live on the volume: a second start (a new pod) keeps the same identity
    kept = {k.name: k.read_bytes() for k in plan.host_keys}
    again = sshd.prepare(settings, ws, tmp_path / "run2", binary="/usr/sbin/sshd")
    assert again is not None
    assert {k.name: k.read_bytes() for k in again.host_keys} == kept
    assert (ws.config / "ssh" / "etc" / "ssh" / "ssh_host_ed25519_key").is_file()


def test_sshd_accepts_the_config(tmp_path: Path, host_keys: Path) -> None:
    needs("sshd", "ssh-keygen")
    _, pub = keypair(tmp_path)
    settings, ws = make(tmp_path, pub, host_keys)
    plan = sshd.prepare(settings, ws, tmp_path / "run", port=free_port(), listen="127.0.0.1")
    assert plan is not None
    sshd.check(plan)


def test_login_with_the_key_only(tmp_path: Path, safe_dir: Path, host_keys: Path) -> None:
    needs("sshd", "ssh", "ssh-keygen")
    key, pub = keypair(tmp_path)
    settings, ws = make(tmp_path, pub, host_keys)
    port = free_port()
    plan = sshd.prepare(settings, ws, safe_dir / "run", port=port, listen="127.0.0.1")
    assert plan is not None
    log = (tmp_path / "sshd.log").open("wb")
    proc = subprocess.Popen(plan.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    common = [
        "ssh", "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}", "-o", "ConnectTimeout=10",
        "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
    ]  # fmt: skip
    try:
        wait_port(port, proc=proc)
        ok = subprocess.run(
            [*common, "-i", str(key), f"{getpass.getuser()}@127.0.0.1", "echo", "logged-in"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert ok.returncode == 0, ok.stderr + (tmp_path / "sshd.log").read_text()
        assert ok.stdout.strip() == "logged-in"
        (tmp_path / "other").mkdir()
        other, _ = keypair(tmp_path / "other")
        methods = "PreferredAuthentications=publickey,password,keyboard-interactive"
        refused = subprocess.run(
            [*common, "-i", str(other), "-o", methods, f"{getpass.getuser()}@127.0.0.1", "true"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert refused.returncode != 0
        assert "Permission denied (publickey)" in refused.stderr  # no password method is offered
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_start_supervises_sshd_only_with_a_key(tmp_path: Path, host_keys: Path) -> None:
    """`start` wires sshd through the generic supervisor: a spec when PUBLIC_KEY is set, nothing otherwise."""
    needs("sshd")
    from comfyui_docker.services import Services
    from comfyui_docker.supervisor import Supervisor

    _key, pub = keypair(tmp_path)
    settings, ws = make(tmp_path, pub, keys_from=host_keys)
    supervisor = Supervisor()
    service = sshd.service(Services(settings=settings, workspace=ws), supervisor)
    assert service is not None and supervisor.get("sshd") is service
    argv = service.spec.argv
    assert Path(argv[0]).name == "sshd" and "-D" in argv and "-f" in argv
    config = Path(argv[argv.index("-f") + 1]).read_text()
    assert "PasswordAuthentication no" in config
    none_settings, none_ws = make(tmp_path / "nokey", "")
    assert sshd.service(Services(settings=none_settings, workspace=none_ws), Supervisor()) is None
