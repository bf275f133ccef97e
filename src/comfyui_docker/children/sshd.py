"""SSH the RunPod way: when `PUBLIC_KEY` is set, an sshd that accepts that key and nothing else.

`prepare(settings, workspace)` returns None without a key (no SSH server runs at all). With one it
writes, into a run folder on the container's own disk (never the shared volume, whose permission
bits sshd's StrictModes would not trust):

    authorized_keys     the key(s) from PUBLIC_KEY, one per line, 0600
    ssh_host_*_key      host keys, kept on the volume (config/ssh/) so that a new pod on the same
                        volume keeps its identity (no "host key changed" warning); generated with
                        `ssh-keygen -A` the first time, copied here with 0600 at each start
    sshd_config         public keys only: PasswordAuthentication no, KbdInteractiveAuthentication
                        no, PermitRootLogin prohibit-password, no PAM

and returns the argv the supervisor runs: `sshd -D -e -f sshd_config` (foreground, log on stderr).
`service(services, supervisor)` does all of it and adds sshd to the supervisor (None without a key).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import AppError
from ..services import Services
from ..settings import Settings
from ..supervisor import ProcessSpec, Service, Supervisor, Timings
from ..supervisor.probes import tcp_probe
from ..workspace import Workspace

log = logging.getLogger(__name__)
DEFAULT_PORT = 22
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-")
HOST_KEY_NAMES = ("ssh_host_ed25519_key", "ssh_host_ecdsa_key", "ssh_host_rsa_key")
PRIVSEP_DIR = Path("/run/sshd")  # Debian/Ubuntu's compiled-in privilege separation folder


class SshdError(AppError):
    code = "sshd_error"


@dataclass(frozen=True)
class SshdPlan:
    """Everything the supervisor needs to run sshd, and what the tests look at."""

    argv: list[str]
    config: Path
    authorized_keys: Path
    host_keys: tuple[Path, ...]
    port: int


def parse_keys(raw: str) -> list[str]:
    """The public keys in PUBLIC_KEY: one per line (a literal `\\n` separates too); junk refused."""
    lines = [line.strip() for line in raw.replace("\\n", "\n").splitlines()]
    keys = [line for line in lines if line and not line.startswith("#")]
    bad = [k for k in keys if not k.startswith(KEY_TYPES) or len(k.split()) < 2]
    if bad or not keys:
        shown = bad[0][:40] if bad else raw[:40]
        raise SshdError(
            f"PUBLIC_KEY does not hold an SSH public key (starts with {shown!r})",
            hint="paste the one line of your ~/.ssh/id_ed25519.pub (ssh-ed25519 AAAA... you@host)",
        )
    return keys


def default_run_dir() -> Path:
    """Root in the image: /run/comfyui-docker/sshd. A normal user: a private temp folder."""
    if os.geteuid() == 0:
        return Path("/run/comfyui-docker/sshd")
    return Path(tempfile.gettempdir()) / f"comfyui-docker-sshd-{os.getuid()}"


def find_binary(name: str = "sshd") -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if not found:
        raise SshdError(
            f"{name} is not installed", hint="install openssh-server, or unset PUBLIC_KEY to run without SSH"
        )
    return os.path.abspath(found)  # sshd re-executes itself and insists on an absolute path


def ensure_host_keys(key_dir: Path, keygen: str | None = None) -> None:
    """`ssh-keygen -A` under `key_dir` (it writes PREFIX/etc/ssh/ssh_host_*); only what is missing."""
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    etc = key_dir / "etc" / "ssh"
    if all((etc / name).is_file() for name in HOST_KEY_NAMES):
        return
    etc.mkdir(parents=True, exist_ok=True, mode=0o700)
    cmd = [keygen or find_binary("ssh-keygen"), "-A", "-f", str(key_dir)]
    # `ssh-keygen -A` reports a key it failed to make on stderr and still exits 0: what it made is
    # checked, and a second run makes only what is still missing.
    for _attempt in range(2):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise SshdError(
                f"ssh-keygen could not create host keys in {etc}: {proc.stderr.strip() or proc.returncode}",
                hint="check that the volume is writable",
            )
        missing = [name for name in HOST_KEY_NAMES if not (etc / name).is_file()]
        if not missing:
            return
    why = proc.stderr.strip() or "no reason given"
    log.warning("ssh-keygen made no %s in %s: %s", ", ".join(missing), etc, why)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def render_config(
    *, port: int, listen: str, run_dir: Path, host_keys: tuple[Path, ...], authorized_keys: Path
) -> str:
    lines = [
        "# Written by comfyui-docker at every start; edits are overwritten.",
        f"Port {port}",
        f"ListenAddress {listen}",
        *(f"HostKey {key}" for key in host_keys),
        f"PidFile {run_dir / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitEmptyPasswords no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "StrictModes yes",
        "X11Forwarding no",
        "AllowTcpForwarding yes",
        "PrintMotd no",
        "Subsystem sftp internal-sftp",
        "AcceptEnv LANG LC_*",
        "",
    ]
    return "\n".join(lines)


def prepare(
    settings: Settings,
    workspace: Workspace,
    run_dir: Path | None = None,
    *,
    port: int = DEFAULT_PORT,
    listen: str = "0.0.0.0",
    host_key_dir: Path | None = None,
    binary: str | None = None,
) -> SshdPlan | None:
    """Write what sshd needs and return how to run it; None when PUBLIC_KEY is not set."""
    if not settings.public_key:
        return None
    keys = parse_keys(settings.public_key)
    sshd = binary or find_binary()
    run_dir = default_run_dir() if run_dir is None else run_dir
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(run_dir, 0o700)
    if os.geteuid() == 0:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)

    key_dir = workspace.config / "ssh" if host_key_dir is None else host_key_dir
    ensure_host_keys(key_dir)
    host_keys: list[Path] = []
    for name in HOST_KEY_NAMES:
        source = key_dir / "etc" / "ssh" / name
        if source.is_file():
            target = run_dir / name
            _write_private(target, source.read_bytes())
            host_keys.append(target)
    if not host_keys:
        raise SshdError(
            f"no host key in {key_dir / 'etc' / 'ssh'}", hint="delete that folder and start again"
        )

    authorized = run_dir / "authorized_keys"
    _write_private(authorized, ("\n".join(keys) + "\n").encode())
    config = run_dir / "sshd_config"
    config.write_text(
        render_config(
            port=port, listen=listen, run_dir=run_dir, host_keys=tuple(host_keys), authorized_keys=authorized
        ),
        encoding="utf-8",
    )
    return SshdPlan(
        argv=[sshd, "-D", "-e", "-f", str(config)],
        config=config,
        authorized_keys=authorized,
        host_keys=tuple(host_keys),
        port=port,
    )


def check(plan: SshdPlan) -> None:
    """`sshd -t`: the config and host keys are accepted (raise with sshd's words otherwise)."""
    proc = subprocess.run(
        [plan.argv[0], "-t", "-f", str(plan.config)], capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        raise SshdError(f"sshd refused its config: {proc.stderr.strip()}", hint=f"see {plan.config}")


TIMINGS = Timings(start_grace=5, ready_timeout=10, retries=5, stop_sigint=1.0, stop_sigterm=2.0)


def service(services: Services, supervisor: Supervisor) -> Service | None:
    """An SSH server with the PUBLIC_KEY only (RunPod injects it), added to `supervisor` (not
    started); None without a key. The first start generates host keys: call it off the loop."""
    plan = prepare(services.settings, services.workspace)
    if plan is None:
        return None
    check(plan)
    spec = ProcessSpec(
        name="sshd",
        argv=plan.argv,
        identity="sshd",
        probe=tcp_probe("127.0.0.1", plan.port),
        timings=TIMINGS,
    )
    return supervisor.add(Service(spec, bus=services.bus, log_dir=services.workspace.logs))
