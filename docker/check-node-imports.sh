#!/usr/bin/env bash
# Start ComfyUI once on the CPU with every custom node and fail when one does not import.
#
#   check-node-imports.sh COMFYUI_DIR PYTHON
#
# ComfyUI logs "IMPORT FAILED" for each node whose module raised while loading and still starts,
# so a broken node would otherwise only show up in a user's log. The manager is enabled, as the
# image runs it. It runs on a throwaway copy, so whatever a node writes into its own folder at
# first start stays out of the image.
set -euo pipefail

[ "$#" -eq 2 ] || { echo "usage: $0 COMFYUI_DIR PYTHON" >&2; exit 2; }
src="$1" python="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -a "$src" "$work/ComfyUI"
mkdir -p "$work/user" "$work/out" "$work/in"
log="$work/quick-test.log"
status=0
(cd "$work/ComfyUI" && "$python" main.py --cpu --quick-test-for-ci --disable-auto-launch --enable-manager \
    --user-directory "$work/user" --output-directory "$work/out" --input-directory "$work/in" \
    --temp-directory "$work" --database-url "sqlite:///$work/comfyui.db") >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ] || grep -qE "IMPORT FAILED|To use the .--enable-manager. feature" "$log"; then
    cat "$log" >&2
    echo "error: ComfyUI's start with the custom nodes failed (exit $status); see IMPORT FAILED above" >&2
    exit 1
fi
grep -E "seconds: .*/custom_nodes/" "$log" || true
echo "custom nodes and ComfyUI-Manager: every one imported"
