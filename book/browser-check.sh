#!/usr/bin/env bash
# Renders three pages of the built book with headless Chromium and writes PNG screenshots, so a
# person (or CI, if it keeps the artifacts) can look at the typeset formulas, tables and figures.
#
#   book/browser-check.sh [OUT_DIR]     (default OUT_DIR: book/screenshots; the book must be built)
#
# Needs `chromium` (Debian: apt-get install -y chromium). Network access is disabled in the browser,
# so the screenshots also show that the book renders offline. Fails if Chromium fails or a
# screenshot is missing or empty.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/screenshots}"
book="$here/book"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$browser" ]; then
    echo "browser-check.sh: no chromium found (Debian: apt-get update && apt-get install -y chromium)" >&2
    exit 2
fi
if [ ! -f "$book/index.html" ]; then
    echo "browser-check.sh: $book/index.html not found: run book/build.sh first" >&2
    exit 2
fi
mkdir -p "$out"

# page (relative to the built book) -> screenshot name
pages=(
    "ch02-score-matching.html:ch02-score-matching.png"
    "ch05-failures.html:ch05-failures.png"
    "ch08-errata.html:ch08-errata.png"
)
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
for entry in "${pages[@]}"; do
    page="${entry%%:*}"
    png="$out/${entry##*:}"
    rm -f "$png"
    # --virtual-time-budget lets fonts and images load before the screenshot is taken.
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --hide-scrollbars --virtual-time-budget=5000 \
        --window-size=1200,1600 --screenshot="$png" "file://$book/$page" >/dev/null 2>&1 || {
        echo "browser-check.sh: chromium failed on $page" >&2
        exit 1
    }
    if [ ! -s "$png" ]; then
        echo "browser-check.sh: no screenshot for $page" >&2
        exit 1
    fi
    echo "browser-check.sh: $page -> $png"
done
