// acp dashboard: live updates without a framework. The pages work without it.
// - [data-watch] on <body>: an EventSource on the API's watch; on a change the
//   page is fetched again and its [data-live] regions are swapped in place.
// - #log[data-stream]: the runner's output, appended line by line.
"use strict";
(function () {
  if (!window.EventSource) return;
  var watch = document.body.dataset.watch;
  if (watch) {
    var pending = null;
    var refresh = function () {
      if (pending) return;
      pending = setTimeout(function () {
        pending = null;
        fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
          .then(function (html) {
            var doc = new DOMParser().parseFromString(html, "text/html");
            document.querySelectorAll("[data-live]").forEach(function (el) {
              var fresh = doc.getElementById(el.id);
              if (fresh) el.replaceWith(fresh);
            });
            document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
          })
          .catch(function () {});
      }, 100);
    };
    var events = new EventSource(watch);
    ["upsert", "delete", "reset"].forEach(function (t) { events.addEventListener(t, refresh); });
    events.addEventListener("open", function () { document.body.dataset.live = "connected"; });
  }
  var log = document.getElementById("log");
  if (log && log.dataset.stream) {
    var lines = new EventSource(log.dataset.stream);
    lines.addEventListener("line", function (e) {
      var stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.append(e.data + "\n");
      if (stick) log.scrollTop = log.scrollHeight;
    });
    lines.addEventListener("end", function () { lines.close(); log.dataset.ended = "true"; });
    lines.addEventListener("failure", function (e) { lines.close(); log.append("(" + e.data + ")\n"); });
  }
})();
