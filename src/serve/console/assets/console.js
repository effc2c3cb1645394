// weir console: refreshes <main> in place on pages that ask for it (body[data-refresh]),
// keeping the URL (and so the filters in its query string), the focus and the scroll position.
// Without this script the pages work the same; a <noscript> meta refresh reloads them.
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "", 10);
  if (!seconds) return;
  var live = document.getElementById("live");
  var busy = false;
  function editing() {
    var a = document.activeElement;
    return a && (a.tagName === "INPUT" || a.tagName === "SELECT" || a.tagName === "TEXTAREA");
  }
  function openDetails(root) {
    var open = {};
    root.querySelectorAll("details").forEach(function (d, i) { open[i] = d.open; });
    return open;
  }
  function refresh() {
    if (busy || document.hidden || editing()) return;
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      // A 404 is a page too (an apply approved a moment ago is not recorded yet).
      .then(function (r) { return r.ok || r.status === 404 ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("main");
        var main = document.getElementById("main");
        if (!fresh || !main) return;
        var open = openDetails(main);
        main.innerHTML = fresh.innerHTML;
        main.querySelectorAll("details").forEach(function (d, i) { if (i in open) d.open = open[i]; });
        var next = parseInt(doc.body.getAttribute("data-refresh") || "", 10);
        if (!next) { stop(); if (live) live.textContent = "Up to date"; return; }
        if (live) live.textContent = "Updated " + new Date().toLocaleTimeString();
      })
      .catch(function () { if (live) live.textContent = "Refresh failed; retrying"; })
      .then(function () { busy = false; });
  }
  var timer = window.setInterval(refresh, seconds * 1000);
  function stop() { window.clearInterval(timer); }
  // Filters apply as soon as one is chosen; the form still works with its button.
  document.querySelectorAll("form.filters select").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });
})();
