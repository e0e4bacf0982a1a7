// Injected by browser-check.sh into a copy of every page of the built book. After the page, its
// fonts and its images have loaded, it measures the page and posts a JSON report to the harness
// page that holds it in an <iframe> of the width being checked (Chromium's headless window is at
// least 500 px wide; the iframe's is exactly the width asked for).
(function () {
  "use strict";
  function scrolls(el) {
    const o = getComputedStyle(el).overflowX;
    return o === "auto" || o === "scroll";
  }
  function label(el) {
    const t = (el.textContent || "").replace(/\s+/g, " ").trim();
    return el.tagName.toLowerCase() + (el.classList.length ? "." + Array.from(el.classList).join(".") : "") +
      ' "' + t.slice(0, 70) + '"';
  }
  function report() {
    const problems = [];
    const main = document.querySelector("main");
    const col = main.getBoundingClientRect();
    const inside = (r) => r.left >= col.left - 1 && r.right <= col.right + 1;
    const items = Array.from(main.querySelectorAll(".katex-display, table"));
    let widest = 0;
    for (const el of items) {
      widest = Math.max(widest, el.scrollWidth);
      // 1. Content wider than the element itself must be scrollable, not clipped or spilling.
      if (el.scrollWidth > el.clientWidth + 1 && !scrolls(el)) {
        problems.push("content " + el.scrollWidth + " px wide in a " + el.clientWidth +
          " px box without a scrollbar (overflow-x: " + getComputedStyle(el).overflowX + "): " + label(el));
        continue;
      }
      // 2. The element's box must lie within the text column, or inside a scrolling ancestor
      //    (a .table-wrapper) whose own box does.
      let box = el;
      for (let n = el.parentElement; n && n !== main; n = n.parentElement) {
        if (scrolls(n)) { box = n; break; }
      }
      if (!inside(box.getBoundingClientRect())) {
        const r = box.getBoundingClientRect();
        problems.push("box " + Math.round(r.left) + ".." + Math.round(r.right) + " px outside the column " +
          Math.round(col.left) + ".." + Math.round(col.right) + " px: " + label(el));
      }
    }
    for (const el of document.querySelectorAll(".katex-error")) problems.push("KaTeX error: " + label(el));
    for (const img of document.images) {
      if (!(img.complete && img.naturalWidth > 0)) problems.push("image did not load: " + img.getAttribute("src"));
    }
    parent.postMessage(JSON.stringify({
      width: window.innerWidth, displays: main.querySelectorAll(".katex-display").length,
      tables: main.querySelectorAll("table").length, images: document.images.length,
      widest: widest, column: Math.round(col.width), problems: problems,
    }), "*");
  }
  window.addEventListener("load", function () { document.fonts.ready.then(report); });
})();
