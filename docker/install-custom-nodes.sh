#!/usr/bin/env bash
# Install the custom nodes of one image variant at their pinned commits, then their requirements.
#
#   install-custom-nodes.sh VARIANT LISTS_DIR CUSTOM_NODES_DIR PYTHON CONSTRAINTS [EXTRA_REQUIREMENTS...]
#
# VARIANT picks the lists (cumulative): minimal = minimal.txt; standard = + standard.txt;
# full and dev = + full.txt. A list line is `URL COMMIT [REQUIREMENTS_FILE]` (# starts a comment).
# Every requirements file (the nodes' and EXTRA_REQUIREMENTS, e.g. ComfyUI's own) is resolved in ONE
# `uv pip install` under CONSTRAINTS (the torch pins), then `uv pip check`: a conflict between two
# nodes, or with torch or ComfyUI, fails the build here instead of breaking ComfyUI at run time.
# Nodes' install.py scripts are not run (they download at install time); their requirements are.
set -euo pipefail

if [ "$#" -lt 5 ]; then
    echo "usage: $0 VARIANT LISTS_DIR CUSTOM_NODES_DIR PYTHON CONSTRAINTS [EXTRA_REQUIREMENTS...]" >&2
    exit 2
fi
variant="$1" lists="$2" dest="$3" python="$4" constraints="$5"
shift 5

case "$variant" in
    minimal) names=(minimal) ;;
    standard) names=(minimal standard) ;;
    full | dev) names=(minimal standard full) ;;
    *)
        echo "error: unknown VARIANT '$variant' (use minimal, standard, full or dev)" >&2
        exit 2
        ;;
esac

mkdir -p "$dest"
req_args=()
for extra in "$@"; do
    req_args+=(-r "$extra")
done

for name in "${names[@]}"; do
    list="$lists/$name.txt"
    [ -f "$list" ] || { echo "error: missing node list $list" >&2; exit 1; }
    while read -r url commit reqfile _; do
        case "$url" in "" | "#"*) continue ;; esac
        if ! [[ "$commit" =~ ^[0-9a-f]{40}$ ]]; then
            echo "error: $list: '$url' needs a full 40-character commit, got '$commit'" >&2
            exit 1
        fi
        node="$(basename "${url%.git}")"
        target="$dest/$node"
        if [ -e "$target" ]; then
            echo "error: $node is listed twice (or already installed)" >&2
            exit 1
        fi
        echo "custom node: $node @ ${commit:0:12}"
        git init --quiet "$target"
        git -C "$target" remote add origin "$url"
        git -C "$target" fetch --quiet --depth 1 origin "$commit"
        git -C "$target" -c advice.detachedHead=false checkout --quiet FETCH_HEAD
        if [ "$(git -C "$target" rev-parse HEAD)" != "$commit" ]; then
            echo "error: $node: fetched $(git -C "$target" rev-parse HEAD), expected $commit" >&2
            exit 1
        fi
        if [ -f "$target/.gitmodules" ]; then
            git -C "$target" submodule update --quiet --init --recursive --depth 1
        fi
        reqfile="${reqfile:-requirements.txt}"
        if [ -f "$target/$reqfile" ]; then
            req_args+=(-r "$target/$reqfile")
        elif [ "$reqfile" != requirements.txt ]; then
            echo "error: $node has no $reqfile" >&2
            exit 1
        fi
    done <"$list"
done

if [ "${#req_args[@]}" -gt 0 ]; then
    echo "resolving ${#req_args[@]} requirement arguments together"
    uv pip install --python "$python" --constraint "$constraints" "${req_args[@]}"
fi
uv pip check --python "$python"
