"""The dashboard's only stylesheet and script, served as ``/static/app.css`` and ``/static/app.js``.

No build step and no inline code: the Content-Security-Policy allows scripts and styles from the
dashboard itself only, so even a value that escaped escaping could not run. The script listens to the
server-sent events of ``/stream`` and, on each change, fetches the page's fragment (server-rendered,
escaped HTML) and swaps it in. The stylesheet turns tables into labelled cards on narrow screens.
"""

CSS = """
:root { --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --wait: #0969da; --fg: #1f2328; --muted: #656d76;
  --line: #d0d7de; --bg: #fff; --head: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; padding: .6rem 1rem;
  background: #24292f; color: #fff; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
header .who { margin-left: auto; color: #d0d7de; font-size: .9em; }
header form { display: inline; }
header button { background: none; border: 1px solid #8c959f; color: #fff; border-radius: 4px; padding: .1rem .5rem; }
#conn { font-size: .8em; padding: .1rem .45rem; border-radius: 1rem; background: #57606a; }
#conn.on { background: var(--ok); }
main { padding: .5rem 1rem 2rem; max-width: 1400px; }
h2 { font-size: 1.15rem; margin: 1.4rem 0 .5rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.count { color: var(--muted); font-weight: normal; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--head); font-weight: 600; white-space: nowrap; }
td .msg { white-space: pre-wrap; word-break: break-word; }
.spark { color: #2563eb; vertical-align: middle; max-width: 100%; height: auto; }
.stale { color: #b45309; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: 1rem; font-size: .85em; font-weight: 600;
  border: 1px solid currentColor; white-space: nowrap; }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); } .wait { color: var(--wait); }
.leader { color: var(--muted); } .leader.bad, .problem { color: var(--bad); font-weight: 600; }
.leader.warn { color: var(--warn); font-weight: 600; }
.empty, .time { color: var(--muted); }
a.act, button.act { display: inline-block; margin: 0 .3rem .2rem 0; padding: .15rem .6rem;
  border: 1px solid var(--line); border-radius: 4px; text-decoration: none; color: var(--fg);
  background: var(--head); font-size: .9em; }
button.danger { background: var(--bad); color: #fff; border-color: var(--bad); }
pre.doc { background: var(--head); padding: .8rem; overflow-x: auto; border-radius: 4px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
form.login { max-width: 26rem; display: grid; gap: .5rem; margin: 1rem 0; }
input[type=password], input[type=text] { padding: .45rem; font-size: 1rem; border: 1px solid var(--line);
  border-radius: 4px; }
.error { color: var(--bad); font-weight: 600; }
@media (max-width: 720px) {
  main { padding: .3rem .6rem 2rem; }
  table, thead, tbody, tr, td { display: block; width: 100%; }
  thead { display: none; }
  tr { border: 1px solid var(--line); border-radius: 6px; margin: 0 0 .6rem; padding: .3rem .5rem; }
  td { border: none; padding: .15rem 0; display: grid; grid-template-columns: 6.5rem 1fr; gap: .5rem; }
  td::before { content: attr(data-label); color: var(--muted); font-size: .85em; }
  td .badge { justify-self: start; }
}
"""

JS = """
(function () {
  "use strict";
  var live = document.getElementById("live");
  var conn = document.getElementById("conn");
  if (!live || !window.EventSource) { return; }
  var fragment = live.getAttribute("data-fragment");
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(fragment, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status === 401 || r.status === 403) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (text) {
        if (text !== null) {
          live.innerHTML = text;  // server-rendered, every value escaped
          live.setAttribute("data-updates", String(Number(live.getAttribute("data-updates") || "0") + 1));
        }
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var stream = new EventSource(live.getAttribute("data-stream"));
  stream.addEventListener("open", function () { if (conn) { conn.textContent = "live"; conn.className = "on"; } });
  stream.addEventListener("error", function () {
    if (conn) { conn.textContent = "reconnecting"; conn.className = ""; }
  });
  stream.addEventListener("changed", refresh);
})();
"""
