#!/usr/bin/env bash
# The custom nodes of one image variant, at their pinned commits.
#
#   install-custom-nodes.sh fetch VARIANT LISTS_DIR SOURCES_DIR
#   install-custom-nodes.sh install VARIANT LISTS_DIR CUSTOM_NODES_DIR SOURCES_DIR PYTHON \
#       LAYER_PINS CONSTRAINTS WHEEL_DIR [EXTRA_REQUIREMENTS...]
#
# VARIANT picks the lists (cumulative): minimal = minimal.txt; standard = + standard.txt;
# full = + full.txt. A list line is `URL COMMIT [REQUIREMENTS_FILE]` (# starts a comment).
#
# fetch: clone each node at its commit into SOURCES_DIR/<name> (the published build).
# install: copy each node from SOURCES_DIR/<name> (fetched above, or a local folder given to
# `make image-check`) after checking that its checkout is at the pinned commit, then resolve every
# requirements file (the nodes' and EXTRA_REQUIREMENTS, e.g. ComfyUI's own) in ONE `uv pip install`
# with LAYER_PINS (nothing of the torch layer is replaced) and CONSTRAINTS (torch, the one
# OpenCV, whose stand-ins are in WHEEL_DIR), then `uv pip check`: a conflict between two nodes,
# or with torch or ComfyUI, fails the build here instead of breaking ComfyUI at run time.
# Nodes' install.py scripts are not run (they download at install time); their requirements are.
# A requirement fetched from a git URL is refused: it is unpinned, resolved anew at every build.
set -euo pipefail

usage() {
    sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[ "$#" -ge 4 ] || usage
mode="$1" variant="$2" lists="$3"
shift 3

case "$variant" in
    minimal) names=(minimal) ;;
    standard) names=(minimal standard) ;;
    full) names=(minimal standard full) ;;
    *)
        echo "error: unknown VARIANT '$variant' (use minimal, standard or full)" >&2
        exit 2
        ;;
esac

# Every node of the variant as "name url commit reqfile" lines.
nodes() {
    local name list url commit reqfile
    for name in "${names[@]}"; do
        list="$lists/$name.txt"
        [ -f "$list" ] || { echo "error: missing node list $list" >&2; exit 1; }
        while read -r url commit reqfile _; do
            case "$url" in "" | "#"*) continue ;; esac
            if ! [[ "$commit" =~ ^[0-9a-f]{40}$ ]]; then
                echo "error: $list: '$url' needs a full 40-character commit, got '$commit'" >&2
                exit 1
            fi
            echo "$(basename "${url%.git}") $url $commit ${reqfile:-requirements.txt}"
        done <"$list"
    done
}

node_lines="$(nodes)"
if [ -n "$node_lines" ] && [ "$(cut -d' ' -f1 <<<"$node_lines" | sort | uniq -d)" != "" ]; then
    echo "error: a node is listed twice: $(cut -d' ' -f1 <<<"$node_lines" | sort | uniq -d | tr '\n' ' ')" >&2
    exit 1
fi

case "$mode" in
    fetch)
        [ "$#" -eq 1 ] || usage
        sources="$1"
        mkdir -p "$sources"
        while read -r node url commit _; do
            [ -n "$node" ] || continue
            target="$sources/$node"
            echo "custom node: $node @ ${commit:0:12}"
            git init --quiet "$target"
            git -C "$target" remote add origin "$url"
            git -C "$target" fetch --quiet --depth 1 origin "$commit"
            git -C "$target" -c advice.detachedHead=false checkout --quiet FETCH_HEAD
            if [ -f "$target/.gitmodules" ]; then
                git -C "$target" submodule update --quiet --init --recursive --depth 1
            fi
        done <<<"$node_lines"
        ;;
    install)
        [ "$#" -ge 6 ] || usage
        dest="$1" sources="$2" python="$3" layer_pins="$4" constraints="$5" wheels="$6"
        shift 6
        mkdir -p "$dest"
        req_args=()
        for extra in "$@"; do
            req_args+=(-r "$extra")
        done
        while read -r node _url commit reqfile; do
            [ -n "$node" ] || continue
            src="$sources/$node"
            if [ ! -d "$src/.git" ]; then
                echo "error: $node: no git checkout at $src (it must be at commit $commit)" >&2
                exit 1
            fi
            head="$(git -c safe.directory='*' -C "$src" rev-parse HEAD)"
            if [ "$head" != "$commit" ]; then
                echo "error: $node: $src is at $head, the list pins $commit" >&2
                exit 1
            fi
            [ ! -e "$dest/$node" ] || { echo "error: $dest/$node already exists" >&2; exit 1; }
            cp -a "$src" "$dest/$node"
            echo "custom node: $node @ ${commit:0:12}"
            if [ -f "$dest/$node/$reqfile" ]; then
                if grep -qiE '^[^#]*git\+' "$dest/$node/$reqfile"; then
                    echo "error: $node/$reqfile installs from a git URL (unpinned):" >&2
                    grep -iE '^[^#]*git\+' "$dest/$node/$reqfile" >&2
                    exit 1
                fi
                req_args+=(-r "$dest/$node/$reqfile")
            elif [ "$reqfile" != requirements.txt ]; then
                echo "error: $node has no $reqfile" >&2
                exit 1
            fi
        done <<<"$node_lines"
        echo "resolving ${#req_args[@]} requirement arguments together"
        uv pip install --python "$python" --constraint "$layer_pins" --constraint "$constraints" \
            --find-links "$wheels" "${req_args[@]}"
        uv pip check --python "$python"
        ;;
    *) usage ;;
esac
