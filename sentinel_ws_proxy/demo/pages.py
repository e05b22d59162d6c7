"""The demo frontend: two pages whose script keeps a WebSocket and reconnects with backoff."""

from __future__ import annotations

import html

SCRIPT = """
const eventsList = document.getElementById("events");
const statusBox = document.getElementById("socket-status");
let socket = null;
let attempt = 0;

function setStatus(state, text) {
  document.body.dataset.socket = state;
  statusBox.textContent = text;
}

function show(event) {
  const item = document.createElement("li");
  const when = new Date().toLocaleTimeString();
  item.textContent = `${when} ${event.event_type}` +
    (event.mission_id ? ` mission ${event.mission_id}` : "") +
    (event.message ? `: ${event.message}` : "");
  eventsList.prepend(item);
  while (eventsList.children.length > 50) eventsList.lastChild.remove();
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // Same origin: through the proxy, this is the proxy's host.
  socket = new WebSocket(`${scheme}://${location.host}/ws/mission-updates`);
  setStatus("connecting", "connecting…");
  socket.onopen = () => {
    attempt = 0;
    setStatus("open", "connected");
  };
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.connection_id) document.body.dataset.connectionId = event.connection_id;
    show(event);
  };
  socket.onclose = (close) => {
    // Reconnect with exponential backoff, capped at 30 s.
    const delay = Math.min(30000, 500 * 2 ** attempt++);
    setStatus("closed", `closed (${close.code}); reconnecting in ${delay / 1000} s`);
    setTimeout(connect, delay);
  };
}

setInterval(() => {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({type: "health_check", sent_at: Date.now()}));
  }
}, 10000);

connect();
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; max-width: 48rem; }
#socket-status { font-weight: bold; }
body[data-socket="open"] #socket-status { color: green; }
body[data-socket="closed"] #socket-status { color: #b00; }
li { font-family: ui-monospace, monospace; font-size: 0.9rem; }
"""


def page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)} · Sentinel demo</title>
<style>{STYLE}</style>
</head>
<body data-socket="connecting">
<h1>{html.escape(title)}</h1>
<p>WebSocket: <span id="socket-status">connecting…</span></p>
{body}
<h2>Events</h2>
<ul id="events"></ul>
<script>{SCRIPT}</script>
</body>
</html>
"""


def dashboard(missions: list[dict]) -> str:
    items = "".join(
        f'<li><a href="/missions/{m["id"]}">{html.escape(m["name"])}</a> ({m["status"]})</li>'
        for m in missions
    )
    return page("Sentinel Dashboard", f"<h2>Missions</h2><ul id='missions'>{items}</ul>")


def mission(m: dict) -> str:
    return page(
        f"Mission {m['id']}: {m['name']}",
        f"<p>Status: {html.escape(m['status'])}</p>"
        '<p><a id="back" href="/">Back to the dashboard</a></p>',
    )
