#!/usr/bin/env bash
# Installs the system packages the tests use for real: nginx, Debian's chromium, aria2 and curl
# (download benchmarks), openssh (the SSH tests).
# Idempotent; skips what is there. Needs root (CI runs as root) or passwordless sudo.
set -euo pipefail

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v aria2c >/dev/null 2>&1 || need+=(aria2)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)

if [ "${#need[@]}" -eq 0 ]; then
    exit 0
fi
echo "installing system packages: ${need[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
        echo "error: need root to install ${need[*]}; install them and run again" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
# Debian starts nginx and sshd on install; the tests run their own instances on loopback only,
# so forbid service starts during the install (policy-rc.d exit 101 = "action not allowed").
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    own_policy=1
fi
cleanup() { if [ "$own_policy" -eq 1 ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
