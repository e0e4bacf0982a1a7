#!/usr/bin/env bash
# Renders the built book in headless Chromium at two window widths, 1280 px (a laptop) and 420 px
# (a phone), checks every page, and writes PNG screenshots of a few pages at both widths so a person
# (or CI, if it keeps the artifacts) can look at the typeset formulas, tables and figures.
#
#   book/browser-check.sh [OUT_DIR]     (default OUT_DIR: book/screenshots; the book must be built)
#
# Fails if Chromium fails, a screenshot is missing or empty, or, on any page at either width:
#   - a display formula (.katex-display) or a table is wider than its box or than the text column
#     without a horizontal scrollbar to reach the rest (measured in the page: scrollWidth against
#     clientWidth, the computed overflow-x, the box against the column <main>);
#   - KaTeX reported an error (.katex-error);
#   - an image did not load (img.complete && img.naturalWidth > 0 must hold).
# The measuring script, browser-check.js, is injected into a copy of the book; each page is loaded in
# an <iframe> of the exact width, because headless Chromium's window is at least 500 px wide.
#
# Needs `chromium` (Debian: apt-get install -y chromium) and python3. Network access is disabled in
# the browser, so the check also shows that the book renders offline.
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

widths=(1280 420)
# Screenshots: page (relative to the built book, with an anchor to scroll to) -> name. Each is
# taken at both widths, as NAME-1280.png and NAME-420.png.
shots=(
    "ch02-score-matching.html#step-6-the-implicit-objective:ch02-step6"
    "ch03-scalable.html#denoising-score-matching:ch03-denoising"
    "ch05-failures.html:ch05-failures"
    "ch08-errata.html#errata:ch08-errata"
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
profile="$work/profile"
# Two copies of the built book: plain/ for the screenshots, measured/ with browser-check.js
# injected into every page. The harness pages sit next to them in $work, never in the book.
cp -r "$book" "$work/plain"
cp -r "$book" "$work/measured"

# chromium <window width> <extra args...>: headless, offline, no first-run noise.
chromium_run() {
    local w="$1"
    shift
    # --virtual-time-budget lets fonts, images and the measuring script run before the dump or
    # the screenshot is taken. Scrollbars are left visible, so a screenshot shows which wide
    # formulas and tables scroll.
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --virtual-time-budget=10000 \
        --window-size="$w",1600 "$@" 2>/dev/null
}

# A harness page per (page, width): an iframe of exactly that width holding the page, and a
# listener that stores the page's report in <html data-report>, which --dump-dom prints.
harness() { # harness <page, relative to $work, with #anchor> <width> <file> <measure: 1|0>
    local script=""
    if [ "$4" = 1 ]; then
        script='<script>addEventListener("message", e => document.documentElement.setAttribute("data-report", e.data));</script>'
    fi
    cat >"$3" <<HTML
<!DOCTYPE html><html><head><meta charset="utf-8">$script
<style>html,body{margin:0;background:#fff}iframe{border:0;display:block}</style></head>
<body><iframe src="$1" style="width:${2}px;height:1600px"></iframe></body></html>
HTML
}

status=0
# 1. Screenshots of the unmodified book.
for entry in "${shots[@]}"; do
    page="${entry%%:*}"
    for w in "${widths[@]}"; do
        png="$out/${entry##*:}-$w.png"
        rm -f "$png"
        h="$work/shot.html"
        harness "plain/$page" "$w" "$h" 0
        win=$((w < 500 ? 500 : w))
        if ! chromium_run "$win" --screenshot="$png" "file://$h" >/dev/null; then
            echo "browser-check.sh: chromium failed on $page at $w px" >&2
            status=1
        fi
        if [ ! -s "$png" ]; then
            echo "browser-check.sh: no screenshot for $page at $w px" >&2
            status=1
        else
            echo "browser-check.sh: $page at $w px -> $png"
        fi
    done
done

# 2. Measurements, in the copy with browser-check.js injected into every page.
python3 - "$work/measured" "$here/browser-check.js" <<'PY'
import sys
from pathlib import Path
root, js = Path(sys.argv[1]), Path(sys.argv[2]).read_text()
for page in root.glob("*.html"):
    text = page.read_text()
    if "</body>" not in text:
        sys.exit(f"browser-check.sh: {page.name} has no </body>")
    page.write_text(text.replace("</body>", f"<script>{js}</script></body>", 1))
PY
# report.py <page> <width>: reads the harness's DOM on stdin, prints the report, exits 1 on problems.
cat >"$work/report.py" <<'PY'
import html, json, re, sys
page, width = sys.argv[1], int(sys.argv[2])
m = re.search(r'<html[^>]*data-report="([^"]*)"', sys.stdin.read())
if not m:
    print(f"browser-check.sh: {page} at {width} px: no report (Chromium failed or the page did not load)")
    sys.exit(1)
r = json.loads(html.unescape(m.group(1)))
if r["width"] != width:
    r["problems"].append(f"the page was laid out {r['width']} px wide, not {width} px")
verdict = f"{len(r['problems'])} problem(s)" if r["problems"] else "ok"
print(f"browser-check.sh: {page} at {width} px: {r['displays']} displays, {r['tables']} tables, "
      f"{r['images']} images, widest {r['widest']} px in a {r['column']} px column: {verdict}")
for p in r["problems"]:
    print("    " + p)
sys.exit(1 if r["problems"] else 0)
PY
for html in "$book"/*.html; do
    page="$(basename "$html")"
    # 404.html is served from the site root (its links do not resolve from a file); print.html
    # repeats every chapter; toc.html is the sidebar's fallback.
    case "$page" in 404.html | print.html | toc.html) continue ;; esac
    for w in "${widths[@]}"; do
        h="$work/measure.html"
        harness "measured/$page" "$w" "$h" 1
        win=$((w < 500 ? 500 : w))
        dom="$(chromium_run "$win" --dump-dom "file://$h" || true)"
        if ! printf '%s' "$dom" | python3 "$work/report.py" "$page" "$w"; then
            status=1
        fi
    done
done

if [ "$status" -ne 0 ]; then
    echo "browser-check.sh: FAILED (see above)" >&2
fi
exit "$status"
