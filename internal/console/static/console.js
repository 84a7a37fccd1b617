// Live updates for the ops console: every few seconds, fetch this page
// again and swap in its live part, keeping open <details> open. Without
// JavaScript the page still works and refreshes itself (noscript meta).
(function () {
  "use strict";
  var every = 3000;
  function swap(doc) {
    var cur = document.getElementById("live"), next = doc.getElementById("live");
    if (!cur || !next) return;
    var open = {};
    cur.querySelectorAll("details[open]").forEach(function (d) { if (d.id) open[d.id] = true; });
    next.querySelectorAll("details").forEach(function (d) { if (open[d.id]) d.open = true; });
    cur.replaceWith(next);
    var top = document.getElementById("top"), nextTop = doc.getElementById("top");
    if (top && nextTop) top.replaceWith(nextTop);
    document.title = doc.title;
  }
  function mark(text, stale) {
    var c = document.getElementById("conn");
    if (c) { c.textContent = text; c.className = stale ? "conn stale" : "conn"; }
  }
  function tick() {
    fetch(location.href, { headers: { "X-Console": "live" }, cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) { mark("reconnecting (HTTP " + r.status + ")", true); return; }
        return r.text().then(function (html) {
          swap(new DOMParser().parseFromString(html, "text/html"));
          mark("live · updated " + new Date().toLocaleTimeString(), false);
        });
      })
      .catch(function () { mark("offline, retrying", true); })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
