// A Phoenix channels endpoint (socket "/socket", WebSocket transport, serializer vsn 2.0.0),
// written from Phoenix.Socket / Phoenix.Channel (phoenix 1.7/1.8) for the real `phoenix` JS client.
//
//   node server.mjs
//
// Prints {"port": N}, then one JSON line per event.
//
// Upgrade: GET /socket/websocket?vsn=2.0.0&token=T. Other paths -> HTTP 404; token != "secret"
// -> HTTP 403 (what Phoenix answers when UserSocket.connect/3 returns :error); vsn other than
// 2.x -> HTTP 403 as well.
// Messages (JSON text frames): [join_ref, ref, topic, event, payload].
//   [null, ref, "phoenix", "heartbeat", {}]    -> [null, ref, "phoenix", "phx_reply", {"status":"ok","response":{}}]
//   [jr, ref, "room:*", "phx_join", params]   -> [jr, ref, topic, "phx_reply", {"status":"ok","response":{"welcome": params.user}}]
//   [jr, ref, "private:*", "phx_join", _]     -> [jr, ref, topic, "phx_reply", {"status":"error","response":{"reason":"unauthorized"}}]
//   join of any other topic                   -> [null, ref, topic, "phx_reply", {"status":"error","response":{"reason":"unmatched topic"}}]
//   "new_msg" {body}  -> reply ok {} and a broadcast [jr, null, topic, "new_msg", {body}]
//   "crash"           -> the channel "crashes": no reply, [jr, jr, topic, "phx_error", {}]
//   "kick"            -> the channel stops normally: no reply, [jr, jr, topic, "phx_close", {}]
//   "phx_leave"       -> reply ok {}, then [jr, jr, topic, "phx_close", {}]
//   a push to a topic that is not joined -> [null, ref, topic, "phx_reply", {"status":"error","response":{"reason":"unmatched topic"}}]
// The server never closes the WebSocket itself in these scenarios; the client does.
import http from "node:http";
import { WebSocketServer } from "ws";
import { listening, log, serverArgs } from "../lib/wire.mjs";

serverArgs();

const httpServer = http.createServer((req, res) => { res.writeHead(404); res.end("not found"); });
const wss = new WebSocketServer({ noServer: true });
let nextId = 0;

httpServer.on("upgrade", (req, socket, head) => {
  const u = new URL(req.url, "http://x");
  const refuse = (status, text) => {
    log({ event: "upgrade_refused", path: u.pathname, status });
    socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  };
  if (u.pathname !== "/socket/websocket") return refuse(404, "Not Found");
  const vsn = u.searchParams.get("vsn") || "1.0.0";
  if (!vsn.startsWith("2.")) return refuse(403, "Forbidden");
  if (u.searchParams.get("token") !== "secret") return refuse(403, "Forbidden");
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
});

wss.on("connection", (ws, req) => {
  const id = ++nextId;
  log({ event: "connection", id, path: req.url });
  const channels = new Map(); // topic -> join_ref
  const push = (msg) => { if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg)); };
  const reply = (joinRef, ref, topic, status, response = {}) => push([joinRef, ref, topic, "phx_reply", { status, response }]);

  ws.on("message", (data) => {
    let msg;
    try { msg = JSON.parse(String(data)); } catch { log({ event: "bad_json", id }); return; }
    const [joinRef, ref, topic, event, payload] = msg;
    log({ event: "message", id, message: msg });
    if (topic === "phoenix" && event === "heartbeat") return reply(null, ref, "phoenix", "ok");
    if (event === "phx_join") {
      if (channels.has(topic)) { // duplicate join: Phoenix closes the old channel first
        const old = channels.get(topic);
        channels.delete(topic);
        push([old, old, topic, "phx_close", {}]);
      }
      if (topic.startsWith("private:")) return reply(joinRef, ref, topic, "error", { reason: "unauthorized" });
      if (!topic.startsWith("room:")) return reply(null, ref, topic, "error", { reason: "unmatched topic" });
      channels.set(topic, joinRef);
      return reply(joinRef, ref, topic, "ok", { welcome: payload && payload.user ? payload.user : null });
    }
    if (!channels.has(topic)) {
      if (event === "phx_leave") return reply(joinRef, ref, topic, "ok");
      return reply(null, ref, topic, "error", { reason: "unmatched topic" });
    }
    const jr = channels.get(topic);
    switch (event) {
      case "phx_leave":
        channels.delete(topic);
        reply(joinRef, ref, topic, "ok");
        push([jr, jr, topic, "phx_close", {}]);
        break;
      case "new_msg":
        reply(joinRef, ref, topic, "ok");
        push([jr, null, topic, "new_msg", payload]);
        break;
      case "crash":
        channels.delete(topic);
        push([jr, jr, topic, "phx_error", {}]);
        break;
      case "kick":
        channels.delete(topic);
        push([jr, jr, topic, "phx_close", {}]);
        break;
      default:
        reply(joinRef, ref, topic, "ok", { ignored: event });
    }
  });
  ws.on("close", (code, reason) => log({ event: "ws_close", id, code, reason: String(reason) }));
});

httpServer.listen(0, "127.0.0.1", () => listening(httpServer));
