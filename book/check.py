#!/usr/bin/env python3
"""Checks a built book (the HTML under book/book/) and exits non-zero on any problem.

Usage: python3 book/check.py [BUILD_DIR]   (default: the book/ directory next to this script)

What it checks, in every HTML page (404.html, which mdbook serves from the site root, excepted):

1. Every local link and image resolves: `href`/`src` relative paths name a file that exists, and a
   `#fragment` names an `id` in the target page.
2. Nothing is loaded from outside the book: no `src` (images, scripts) and no stylesheet `<link>`
   points to another host, and every `url(...)` in the shipped CSS names a file that exists.
   Ordinary `<a href="https://...">` citations are allowed.
3. No math is left unrendered: no `$` in the text of a page outside code (`<code>`, `<pre>`,
   `<script>`, `<style>`), no KaTeX error spans (`katex-error`), and no `<del>` (markdown
   strikethrough, which is what a stray `~` from KaTeX output turns into).
4. Every number the book quotes from an experiment is the one the experiment wrote. In the
   markdown sources (src/*.md) a quoted number is written as
   `<!-- n: langevin_weights.exact[1].mode_weights[0] -->0.461`: the file `src/figures/<name>.json`
   and the path inside it, then the number as printed. The JSON value, rounded to the printed
   number of decimals, must equal it. Placeholders `<!-- TODO number: ... -->` are listed (they do
   not fail the check).

Only the Python standard library is used.
"""
from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

SKIP_TEXT_TAGS = {"code", "pre", "script", "style", "kbd", "samp"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """Collects ids, references and suspicious text of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.skip_depth = 0
        self.stack: list[str] = []
        self.dollars: list[str] = []
        self.katex_errors = 0
        self.dels = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a and a["id"]:
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        for attr in ("href", "src"):
            if a.get(attr):
                kind = tag
                if tag == "link":
                    kind = "link:" + (a.get("rel") or "")
                self.refs.append((kind, attr, a[attr]))
        if "katex-error" in (a.get("class") or ""):
            self.katex_errors += 1
        if tag in ("del", "s", "strike"):
            self.dels += 1
        if tag in VOID_TAGS:
            return
        self.stack.append(tag)
        if tag in SKIP_TEXT_TAGS:
            self.skip_depth += 1

    def handle_startendtag(self, tag, attrs):
        # <img ... /> and friends: same as a start tag, without pushing.
        a = dict(attrs)
        if "id" in a and a["id"]:
            self.ids.add(a["id"])
        for attr in ("href", "src"):
            if a.get(attr):
                self.refs.append((tag, attr, a[attr]))

    def handle_endtag(self, tag):
        if tag in VOID_TAGS:
            return
        # Pop up to the matching tag (tolerates the odd unclosed <p>).
        if tag in self.stack:
            while self.stack:
                t = self.stack.pop()
                if t in SKIP_TEXT_TAGS:
                    self.skip_depth -= 1
                if t == tag:
                    break

    def handle_data(self, data):
        if self.skip_depth == 0 and "$" in data:
            self.dollars.append(data.strip()[:120])


def is_external(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme) or url.startswith("//")


NUMBER_RE = re.compile(r"<!-- n: ([A-Za-z0-9_]+)\.([^ ]+) -->\s*(-?[0-9][0-9,]*(?:\.[0-9]+)?)")
TODO_RE = re.compile(r"<!-- TODO number: ([^>]*?) -->")


def json_path(value, path: str):
    """Follows `a.b[2].c` into parsed JSON; raises KeyError/IndexError/TypeError if absent."""
    for part in path.split("."):
        name, *indices = re.split(r"\[", part)
        if name:
            value = value[name]
        for index in indices:
            value = value[int(index.rstrip("]"))]
    return value


def check_numbers(src: Path) -> tuple[list[str], list[str]]:
    """Problems and placeholders of the quoted numbers in the markdown sources."""
    import json

    problems, todos = [], []
    cache: dict[str, object] = {}
    for md in sorted(src.glob("*.md")):
        text = md.read_text(encoding="utf-8")
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("<!-- n:"):
                # CommonMark reads a line that starts with `<!--` (indented up to three spaces, or
                # inside a list item) as a raw HTML block, which would swallow the rest of the line
                # and split the paragraph.
                problems.append(f"{md.name}:{lineno}: a number marker must not start a line")
        for m in NUMBER_RE.finditer(text):
            name, path, shown = m.group(1), m.group(2), m.group(3)
            where = f"{md.name}: number {name}.{path} = {shown}"
            json_file = src / "figures" / f"{name}.json"
            if name not in cache:
                try:
                    cache[name] = json.loads(json_file.read_text(encoding="utf-8"))
                except (OSError, ValueError) as e:
                    cache[name] = e
            data = cache[name]
            if isinstance(data, Exception):
                problems.append(f"{where}: cannot read {json_file}: {data}")
                continue
            try:
                value = float(json_path(data, path))
            except (KeyError, IndexError, TypeError, ValueError) as e:
                problems.append(f"{where}: no such field in {json_file.name} ({e!r})")
                continue
            plain = shown.replace(",", "")
            decimals = len(plain.split(".")[1]) if "." in plain else 0
            if f"{value:.{decimals}f}" != f"{float(plain):.{decimals}f}":
                problems.append(f"{where}: {json_file.name} says {value} (printed with {decimals} decimals: {value:.{decimals}f})")
        for m in TODO_RE.finditer(text):
            todos.append(f"{md.name}: {m.group(1)}")
    return problems, todos


def main() -> int:
    build = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "book"
    if not (build / "index.html").is_file():
        print(f"check.py: {build}/index.html not found: build the book first (book/build.sh)", file=sys.stderr)
        return 2

    pages: dict[Path, Page] = {}
    for html in sorted(build.rglob("*.html")):
        if html.name == "404.html":
            continue
        page = Page()
        page.feed(html.read_text(encoding="utf-8"))
        pages[html.resolve()] = page

    problems: list[str] = []
    for html, page in pages.items():
        rel = html.relative_to(build.resolve())
        for tag, attr, value in page.refs:
            if value.startswith(("mailto:", "javascript:", "data:")):
                continue
            if is_external(value):
                # A citation the reader may follow is fine; a resource the page loads is not.
                if tag != "a":
                    problems.append(f"{rel}: <{tag} {attr}> loads an external resource: {value}")
                continue
            parts = urlsplit(value)
            path, fragment = unquote(parts.path), unquote(parts.fragment)
            target = html if path == "" else (html.parent / path).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{rel}: <{tag} {attr}=\"{value}\"> does not resolve ({target} is missing)")
                continue
            if fragment and target.suffix == ".html":
                other = pages.get(target)
                if other is not None and fragment not in other.ids:
                    problems.append(f"{rel}: <{tag} {attr}=\"{value}\">: no id \"{fragment}\" in {target.name}")
        for text in page.dollars:
            problems.append(f"{rel}: unrendered math (a `$` outside code): \"{text}\"")
        if page.katex_errors:
            problems.append(f"{rel}: {page.katex_errors} KaTeX error span(s)")
        if page.dels:
            problems.append(f"{rel}: {page.dels} strikethrough element(s) (a stray `~`?)")

    url_re = re.compile(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)")
    for css in sorted(build.rglob("*.css")):
        text = css.read_text(encoding="utf-8", errors="replace")
        rel = css.relative_to(build)
        if re.search(r"@import\s+(url\()?['\"]?(https?:)?//", text):
            problems.append(f"{rel}: @import of an external stylesheet")
        for url in url_re.findall(text):
            if url.startswith("data:") or url.startswith("#"):
                continue
            if is_external(url):
                problems.append(f"{rel}: url({url}) is external")
                continue
            target = (css.parent / unquote(urlsplit(url).path)).resolve()
            if not target.exists():
                problems.append(f"{rel}: url({url}) does not resolve")

    src = Path(__file__).resolve().parent / "src"
    number_problems, todos = check_numbers(src)
    problems += number_problems
    for t in todos:
        print(f"check.py: placeholder (not yet filled): {t}")

    problems = list(dict.fromkeys(problems))  # mdbook writes each image twice (zoomable copy)
    for p in problems:
        print(f"check.py: {p}", file=sys.stderr)
    print(f"check.py: {len(pages)} pages checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
