// A SignalR hub endpoint (JSON hub protocol v1 over a raw WebSocket), written from the
// ASP.NET Core SignalR hub protocol spec, for the real @microsoft/signalr client with
// skipNegotiation: true (so there is no /negotiate request: the client opens the WebSocket
// straight away at the hub URL, any path; tests use /hub).
//
//   node server.mjs [--ping-interval MS]
//
// Prints {"port": N}, then one JSON line per event.
//
// Wire protocol (every message is JSON followed by the record separator \x1e):
//   client -> {"protocol":"json","version":1}   server -> {}            (handshake; an unknown
//             protocol gets {"error":"..."} and a close 1000)
//   1 Invocation {type:1, invocationId?, target, arguments}, 3 Completion {type:3, invocationId,
//   result | error}, 6 Ping {type:6}, 7 Close {type:7, error?, allowReconnect?}.
// Hub methods:
//   Echo(x)            -> completion result x
//   Broadcast(msg)     -> invocation ReceiveMessage(msg) to the caller, then a completion (if asked)
//   CloseWithError()   -> {"type":7,"error":"Connection closed with an error. Boom","allowReconnect":true};
//                         the server then waits for the client to close the WebSocket (it does at
//                         once) and closes it itself with 1000 only if the client has not after 1 s
//   GoSilent()         -> completion, then the server sends nothing more on this connection (no
//                         pings either), so the client's serverTimeout fires
//   anything else      -> completion with error "Failed to invoke 'X' due to an error on the
//                         server. HubException: Method does not exist."
// Server pings {"type":6}: every --ping-interval ms (default 15000, ASP.NET Core's
// KeepAliveInterval), or every N ms on a connection opened with ?serverPingMs=N in its URL.
import { WebSocketServer } from "ws";
import { listening, log, num, serverArgs } from "../lib/wire.mjs";

const RS = "\x1e";
const opts = serverArgs();
const defaultPing = num(opts["ping-interval"], 15000);

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
let nextId = 0;

wss.on("connection", (ws, request) => {
  const id = ++nextId;
  const query = new URL(request.url, "http://x").searchParams;
  const pingMs = num(query.get("serverPingMs") ?? undefined, defaultPing);
  log({ event: "connection", id, path: request.url, protocol: ws.protocol });
  let handshaken = false;
  let silent = false;
  let pingTimer = null;
  let buffer = "";
  const send = (obj) => {
    if (silent || ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify(obj) + RS);
  };
  const startPings = () => {
    pingTimer = setInterval(() => send({ type: 6 }), pingMs);
  };

  ws.on("message", (data, isBinary) => {
    if (isBinary) { log({ event: "binary_ignored", id }); return; }
    buffer += String(data);
    let at;
    while ((at = buffer.indexOf(RS)) >= 0) {
      const record = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      let msg;
      try { msg = JSON.parse(record); } catch { log({ event: "bad_json", id, record }); ws.close(1003, "bad json"); return; }
      if (!handshaken) {
        log({ event: "handshake", id, request: msg });
        if (msg.protocol !== "json" || msg.version !== 1) {
          ws.send(JSON.stringify({ error: `The protocol '${msg.protocol}' is not supported.` }) + RS);
          ws.close(1000);
          return;
        }
        handshaken = true;
        ws.send("{}" + RS);
        startPings();
        continue;
      }
      handle(msg);
    }
  });

  function handle(msg) {
    log({ event: "message", id, message: msg });
    if (msg.type === 6) return; // client ping
    if (msg.type === 7) return; // client says goodbye; its WebSocket close follows
    if (msg.type !== 1) return;
    const { invocationId, target, arguments: args = [] } = msg;
    const complete = (body) => { if (invocationId !== undefined) send({ type: 3, invocationId, ...body }); };
    switch (target) {
      case "Echo":
        complete({ result: args[0] });
        break;
      case "Broadcast":
        send({ type: 1, target: "ReceiveMessage", arguments: [args[0]] });
        complete({});
        break;
      case "CloseWithError": {
        send({ type: 7, error: "Connection closed with an error. Boom", allowReconnect: true });
        const fallback = setTimeout(() => { if (ws.readyState === ws.OPEN) ws.close(1000); }, 1000);
        ws.once("close", () => clearTimeout(fallback));
        break;
      }
      case "GoSilent":
        complete({});
        silent = true;
        clearInterval(pingTimer);
        break;
      default:
        complete({ error: `Failed to invoke '${target}' due to an error on the server. HubException: Method does not exist.` });
    }
  }

  ws.on("close", (code, reason) => {
    clearInterval(pingTimer);
    log({ event: "ws_close", id, code, reason: String(reason) });
  });
});

wss.on("listening", () => listening(wss));
