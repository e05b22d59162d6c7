// The app's own sockets, through Vite's proxy to the backend: ?n=0 (HMR only), ?n=1
// (/ws/app, the default) or ?n=2 (/ws/app and /ws/events). Links keep the query.
const params = new URLSearchParams(location.search);
const n = Number(params.get("n") ?? "1");
const paths = ["/ws/app", "/ws/events"].slice(0, n);
document.body.dataset.paths = paths.join(" ");
for (const a of document.querySelectorAll("a[href]")) a.search = location.search;
for (const path of paths) window.__probe.keep(path);

fetch("/api/hello")
  .then((r) => r.json())
  .then((body) => { document.body.dataset.api = body.hello; })
  .catch(() => { document.body.dataset.api = "failed"; });

const status = document.getElementById("status");
setInterval(() => { status.textContent = JSON.stringify(window.__probe.state(), null, 1); }, 250);
