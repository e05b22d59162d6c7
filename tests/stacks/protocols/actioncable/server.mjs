// An Action Cable endpoint (subprotocol actioncable-v1-json), written from Rails' Action Cable
// server (ActionCable::Connection::Base, 7.x/8.x) for the real @rails/actioncable client.
//
//   node server.mjs [--ping-interval MS]
//
// Prints {"port": N}, then one JSON line per event.
//
// Upgrade: GET /cable?token=T (other paths -> HTTP 404). The server selects the subprotocol
// "actioncable-v1-json" from the client's list.
//   token != "secret": like a Rails connection whose connect raises UnauthorizedError, the server
//     sends {"type":"disconnect","reason":"unauthorized","reconnect":false} and at once closes the
//     WebSocket with 1000 (Rails' websocket.close); no welcome.
//   token == "secret": {"type":"welcome"}, then {"type":"ping","message":<unix seconds>} every
//     --ping-interval ms (default 300; Rails' beat is 3 s).
// Commands (JSON text frames from the client):
//   {"command":"subscribe","identifier":"{\"channel\":\"ChatChannel\",...}"}   -> {"identifier":...,"type":"confirm_subscription"}
//   {"command":"subscribe","identifier":"{\"channel\":\"SecretChannel\"}"}     -> {"identifier":...,"type":"reject_subscription"}
//   subscribe to any other channel -> nothing (Rails logs "Subscription class not found")
//   {"command":"message","identifier":...,"data":"{\"action\":\"speak\",\"message\":M}"} on
//     ChatChannel -> broadcast {"identifier":...,"message":{"message":M,"from":"alice"}}
//   {"command":"unsubscribe","identifier":...} -> nothing (the subscription is removed)
import http from "node:http";
import { WebSocketServer } from "ws";
import { listening, log, num, serverArgs } from "../lib/wire.mjs";

const opts = serverArgs();
const pingInterval = num(opts["ping-interval"], 300);

const httpServer = http.createServer((req, res) => { res.writeHead(404); res.end("not found"); });
const wss = new WebSocketServer({
  noServer: true,
  handleProtocols: (protocols) => (protocols.has("actioncable-v1-json") ? "actioncable-v1-json" : false),
});
let nextId = 0;

httpServer.on("upgrade", (req, socket, head) => {
  const u = new URL(req.url, "http://x");
  if (u.pathname !== "/cable") {
    log({ event: "upgrade_refused", path: u.pathname, status: 404 });
    socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
});

wss.on("connection", (ws, req) => {
  const id = ++nextId;
  const token = new URL(req.url, "http://x").searchParams.get("token");
  log({ event: "connection", id, path: req.url, protocol: ws.protocol });
  const send = (obj) => { if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(obj)); };
  ws.on("close", (code, reason) => { clearInterval(beat); log({ event: "ws_close", id, code, reason: String(reason) }); });
  let beat = null;
  if (token !== "secret") {
    log({ event: "unauthorized", id, token });
    send({ type: "disconnect", reason: "unauthorized", reconnect: false });
    ws.close(1000);
    return;
  }
  send({ type: "welcome" });
  beat = setInterval(() => send({ type: "ping", message: Math.floor(Date.now() / 1000) }), pingInterval);
  const subscriptions = new Set();

  ws.on("message", (data) => {
    let msg;
    try { msg = JSON.parse(String(data)); } catch { log({ event: "bad_json", id }); return; }
    log({ event: "command", id, message: msg });
    const { command, identifier } = msg;
    let channel = null;
    try { channel = JSON.parse(identifier).channel; } catch { /* Rails would log and ignore */ }
    switch (command) {
      case "subscribe":
        if (channel === "ChatChannel") {
          subscriptions.add(identifier);
          send({ identifier, type: "confirm_subscription" });
        } else if (channel === "SecretChannel") {
          send({ identifier, type: "reject_subscription" });
        } else {
          log({ event: "subscription_class_not_found", id, identifier });
        }
        break;
      case "message": {
        if (!subscriptions.has(identifier)) { log({ event: "unsubscribed_message", id, identifier }); break; }
        const body = JSON.parse(msg.data);
        if (body.action === "speak") send({ identifier, message: { message: body.message, from: "alice" } });
        break;
      }
      case "unsubscribe":
        subscriptions.delete(identifier);
        break;
      default:
        log({ event: "unknown_command", id, command });
    }
  });
});

httpServer.listen(0, "127.0.0.1", () => listening(httpServer));
