#!/usr/bin/env bash
# Build the dashboard's front-end assets (called by `make install`).
#   - npm ci in frontend/ (npm install when there is no lock file) when node_modules is stale
#   - copy the pinned htmx / Alpine.js builds into web/static/vendor/
#   - build web/static/app.css with Tailwind: minified, only the classes the templates use
# Idempotent and quick when everything is up to date (nothing is rebuilt). FORCE=1 rebuilds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FRONT="$ROOT/frontend"
WEB="$ROOT/src/comfyui_docker/web"
STATIC="$WEB/static"
VENDOR="$STATIC/vendor"
CSS_IN="$FRONT/src/app.css"
CSS_OUT="$STATIC/app.css"
FORCE="${FORCE:-0}"

if ! command -v npm >/dev/null 2>&1; then
    echo "build-frontend: npm is not installed; install Node.js 20+ (apt-get install nodejs npm)" >&2
    exit 1
fi

cd "$FRONT"
stamp="node_modules/.package-lock.json"
if [ "$FORCE" = 1 ] || [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ] \
    || { [ -f package-lock.json ] && [ package-lock.json -nt "$stamp" ]; }; then
    if [ -f package-lock.json ]; then
        echo "build-frontend: npm ci"
        npm ci --no-audit --no-fund --loglevel=error
    else
        echo "build-frontend: npm install (no lock file yet)"
        npm install --no-audit --no-fund --loglevel=error
    fi
    touch "$stamp"
fi

mkdir -p "$VENDOR"
copy_if_changed() {
    if ! cmp -s "$1" "$2"; then
        cp "$1" "$2"
        echo "build-frontend: $(basename "$2") <- ${1#"$FRONT"/}"
    fi
}
copy_if_changed node_modules/htmx.org/dist/htmx.min.js "$VENDOR/htmx.min.js"
copy_if_changed node_modules/alpinejs/dist/cdn.min.js "$VENDOR/alpine.min.js"

# Rebuild the CSS only when an input is newer than the output.
need_css="$FORCE"
if [ ! -f "$CSS_OUT" ] || [ "$CSS_IN" -nt "$CSS_OUT" ] || [ "$stamp" -nt "$CSS_OUT" ]; then
    need_css=1
elif [ -n "$(find "$WEB/templates" "$STATIC" -path "$VENDOR" -prune -o -newer "$CSS_OUT" \
        \( -name '*.html' -o -name '*.js' \) -print -quit 2>/dev/null)" ]; then
    need_css=1
fi
if [ "$need_css" = 1 ]; then
    tmp="$CSS_OUT.tmp"
    node_modules/.bin/tailwindcss -i "$CSS_IN" -o "$tmp" --minify 2>/dev/null \
        || { node_modules/.bin/tailwindcss -i "$CSS_IN" -o "$tmp" --minify; exit 1; }
    mv "$tmp" "$CSS_OUT"
    echo "build-frontend: app.css $(wc -c <"$CSS_OUT") bytes ($(gzip -9c "$CSS_OUT" | wc -c) gzip)"
fi
