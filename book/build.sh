#!/usr/bin/env bash
# Builds the book into book/book/ and checks it (book/check.py).
#
#   book/build.sh            install the pinned tools if missing, build, check
#   book/build.sh --no-check build only
#
# The tools are pinned: mdbook 0.5.3 with mdbook-katex 0.10.0 (whose lock file pins mdbook's
# preprocessor crate 0.5.x). They are installed with `cargo install --locked` into
# $BOOK_TOOLS_ROOT (default: $CARGO_HOME or ~/.cargo), compiling in a target directory under /tmp
# so they never contend for the workspace's target/ lock. The built book needs no network:
# formulas are pre-rendered by KaTeX and its CSS and fonts ship in src/katex/.
set -euo pipefail

MDBOOK_VERSION=0.5.3
MDBOOK_KATEX_VERSION=0.10.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${BOOK_TOOLS_ROOT:-${CARGO_HOME:-$HOME/.cargo}}"
export PATH="$root/bin:$PATH"
install_target="${BOOK_TOOLS_TARGET:-/tmp/smld-book-tools-target}"

# `ensure <binary> <crate> <version>`: installs <crate>@<version> unless <binary> --version says it.
ensure() {
    local bin="$1" crate="$2" version="$3"
    if "$bin" --version 2>/dev/null | grep -qw "v\?$version"; then
        return
    fi
    echo "build.sh: installing $crate $version into $root (first time only, takes several minutes)" >&2
    CARGO_TARGET_DIR="$install_target" cargo install --locked --root "$root" "$crate@$version"
}

ensure mdbook mdbook "$MDBOOK_VERSION"
ensure mdbook-katex mdbook-katex "$MDBOOK_KATEX_VERSION"

# Every figure the book shows is made by the project's code (the captions name the command).
# They are committed; to remake them: `cargo run --release -p toy2d` (writes book/src/figures/)
# and `cargo run --release -p ncsn --example noise_levels` (mnist_noise.png).

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
(cd "$here" && mdbook build) 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo "build.sh: mdbook build failed" >&2
    exit "$status"
fi
# mdbook reports problems (missing files, preprocessor trouble) as log lines, not exit codes.
# Colour codes are stripped first: mdbook-katex's log lines carry them even into a pipe.
if sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -Eq '(^|[[:space:]])(WARN|ERROR)([[:space:]]|$)'; then
    echo "build.sh: mdbook printed warnings or errors (above); treating them as failures" >&2
    exit 1
fi

if [ "${1:-}" != "--no-check" ]; then
    python3 "$here/check.py" "$here/book"
fi
