// Live mode of /events: new events arrive as server-rendered (escaped)
// table rows over server-sent events; this only puts them at the top.
(function () {
  var table = document.getElementById("events");
  var status = document.getElementById("live-status");
  if (!table || !table.dataset.stream) { return; }
  var body = table.tBodies[0];
  var source = new EventSource(table.dataset.stream);
  source.addEventListener("open", function () { status.textContent = "live: following the log"; });
  source.addEventListener("error", function () { status.textContent = "live: reconnecting…"; });
  source.addEventListener("row", function (e) {
    var empty = document.getElementById("no-events");
    if (empty) { empty.remove(); }
    body.insertAdjacentHTML("afterbegin", e.data);
    // The browser resumes after the last delivered event on reconnect.
  });
})();
