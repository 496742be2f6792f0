"""The labelling page's static parts: CSS, the one inline script, and the HTML skeleton.

Kept apart from ``labels.py`` so the Python logic and the browser code each stay readable. The
page is one file: the data (image ids, PNGs as data URIs, captions when asked for) travels in a
``<script type="application/json">`` block, which browsers never execute; the only executed script
is ``JS`` below, allowed by its SHA-256 hash in the Content-Security-Policy, as is the ``<style>``
block. Nothing is fetched: ``default-src 'none'``, images only from ``data:``.
"""

from __future__ import annotations

import base64
import hashlib

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:16px auto;max-width:1000px;color:#222;
padding:0 16px;line-height:1.4}
header h1{font-size:1.4em;margin:0}.meta{color:#555;margin:4px 0 12px}
#progress{font-weight:700;font-variant-numeric:tabular-nums}
.layout{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
figure{margin:0}#img{width:384px;height:384px;image-rendering:crisp-edges;image-rendering:pixelated;
border:1px solid #bbb;background:#eee;display:block}
figcaption{max-width:384px;margin-top:6px;color:#333}#question{font-size:1.3em;font-weight:600;margin:0 0 8px}#current{margin:6px 0;color:#555}
#legend{list-style:none;padding:0;margin:0 0 12px}#legend li{margin:4px 0}
#legend button{min-width:220px;text-align:left;font-size:1em;padding:4px 8px;cursor:pointer}
kbd{display:inline-block;min-width:1.4em;text-align:center;border:1px solid #999;border-radius:3px;
padding:0 4px;margin-right:8px;background:#f6f6f6;font-family:ui-monospace,monospace}
#export{font-size:1em;padding:6px 12px;cursor:pointer}#status{color:#555;min-height:1.4em}
#done{font-weight:600;color:#18794e}.hint{color:#666;font-size:.85em}[hidden]{display:none!important}
"""

JS = r"""
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("t2i-data").textContent);
  var items = D.items, n = items.length, STORE = "t2i-audit-labels/" + D.run_id + "/" + D.attribute;
  var has = function (o, k) { return Object.prototype.hasOwnProperty.call(o, k); };
  var $ = function (id) { return document.getElementById(id); };
  var keymap = D.keys || {u: "unsure", n: "no person"}, labels = {}, order = [], saved = true;
  D.classes.forEach(function (c, i) { keymap[String(i + 1)] = c; });
  try {
    var stored = JSON.parse(window.localStorage.getItem(STORE) || "{}");
    if (stored && typeof stored === "object") { labels = stored; }
    var kept = JSON.parse(window.localStorage.getItem(STORE + "/order") || "[]");
    if (Array.isArray(kept)) { order = kept.filter(function (id) { return has(labels, id); }); }
  } catch (e) { saved = false; }
  // labels kept before the order was (an older page): oldest first, in page order
  order = Object.keys(labels).filter(function (id) { return order.indexOf(id) < 0; }).sort(function (a, b) {
    return index(a) - index(b); }).concat(order);
  function index(id) { for (var i = 0; i < n; i++) { if (items[i].id === id) { return i; } } return -1; }
  function save() {  // the order first: a reader that sees a label also sees its place in the order
    try {
      window.localStorage.setItem(STORE + "/order", JSON.stringify(order));
      window.localStorage.setItem(STORE, JSON.stringify(labels));
    } catch (e) { saved = false; }
  }
  function nextUnlabelled(from) {
    for (var k = 0; k < n; k++) { var i = (from + k) % n; if (!has(labels, items[i].id)) { return i; } }
    return n;
  }
  var pos = nextUnlabelled(0);
  function nDone() { return items.filter(function (it) { return has(labels, it.id); }).length; }
  function say(text) { $("status").textContent = text + (saved ? "" : " (this browser does not keep"
    + " labels across reloads: export before closing)"); }
  function render() {
    var done = nDone();
    $("progress").textContent = done + " / " + n;
    $("done").hidden = done < n;
    $("img").hidden = pos >= n;
    $("question").textContent = pos < n && items[pos].question ? items[pos].question : "";
    if (pos >= n) { $("caption").textContent = ""; $("current").textContent = ""; return; }
    var it = items[pos];
    $("img").src = it.src;
    $("img").alt = "image " + (pos + 1) + " of " + n;
    $("caption").textContent = (D.show_prompt && it.caption !== null) ? it.caption : "";
    $("current").textContent = "image " + (pos + 1) + " of " + n
      + (has(labels, it.id) ? " (labelled: " + labels[it.id] + ")" : "");
  }
  function label(value) {
    if (pos >= n) { say("all images are labelled: press Backspace to undo the last one"); return; }
    var id = items[pos].id;
    labels[id] = value;
    order = order.filter(function (o) { return o !== id; }).concat([id]);
    save();
    say("image " + (pos + 1) + ": " + value);
    pos = nextUnlabelled(pos + 1);
    render();
  }
  function undo() {  // the last label given on this page's images, in this sitting or an earlier one
    for (var k = order.length - 1; k >= 0; k--) {
      var i = index(order[k]);
      if (i < 0) { continue; }
      order.splice(k, 1);
      delete labels[items[i].id];
      save();
      pos = i;
      say("image " + (pos + 1) + ": label cleared");
      render();
      return;
    }
    say("nothing to undo");
  }
  function field(s) { return /[",\r\n]/.test(s) ? "\"" + s.replace(/"/g, "\"\"") + "\"" : s; }
  function csv() {
    var lines = [D.keys ? "image,question_id,label" : "image_id,attribute,label"];  // D.keys: question pairs
    items.forEach(function (it) {
      if (has(labels, it.id)) { lines.push((D.keys ? [it.image, it.qid, labels[it.id]] : [it.id, D.attribute,
        labels[it.id]]).map(field).join(",")); }
    });
    return lines.join("\n") + "\n";
  }
  function exportCsv() {
    var blob = new Blob([csv()], {type: "text/csv;charset=utf-8"});
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "labels.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 5000);
    var done = nDone();
    say("exported labels.csv: " + done + " of " + n + " labelled" + (done < n ? ", " + (n - done)
      + " still to do" : ""));
  }
  document.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && (e.key === "s" || e.key === "S")) { e.preventDefault(); exportCsv(); return; }
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    if (e.key === "Backspace") { e.preventDefault(); undo(); return; }
    var k = e.key.length === 1 ? e.key.toLowerCase() : "";
    if (k && has(keymap, k)) { e.preventDefault(); label(keymap[k]); }
  });
  Array.prototype.forEach.call(document.querySelectorAll("#legend button"), function (b) {
    b.addEventListener("click", function () { b.blur(); label(keymap[b.getAttribute("data-key")]); });
  });
  $("export").addEventListener("click", function () { $("export").blur(); exportCsv(); });
  render();
  say(nDone() ? "resumed: " + nDone() + " labels kept from an earlier session" : "ready");
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Label {attribute}: {run_id}</title>
<style>{css}</style></head>
<body>
<header><h1>Label: {attribute}</h1>
<p class="meta">run {run_id} &middot; {n} images &middot; labelled <span id="progress">0 / {n}</span></p></header>
<div class="layout">
<main><p id="question"></p><figure><img id="img" alt="" width="384" height="384"><figcaption id="caption"></figcaption></figure>
<p id="current"></p><p id="done" hidden>All {n} images labelled: export labels.csv.</p></main>
<aside><ul id="legend">{legend}</ul>
<p class="hint"><kbd>Backspace</kbd>undo: clear the last label given (earlier sessions too) and show its image</p>
<p><button id="export" type="button">Export labels.csv</button> <span class="hint">or Ctrl/Cmd+S</span></p>
<p id="status" role="status"></p>
<p class="hint">Labels are kept in this browser (per run and attribute) until exported.</p>
<noscript><p>This page needs JavaScript to label images.</p></noscript></aside>
</div>
<script type="application/json" id="t2i-data">{data}</script>
<script>{js}</script>
</body></html>
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


CSP = (f"default-src 'none'; script-src {_sha256(JS)}; style-src {_sha256(CSS)}; img-src data:; "
       "base-uri 'none'; form-action 'none'")
