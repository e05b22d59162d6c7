// Socket.IO v4 client scenarios (the `socket.io-client` package, transports: ["websocket"]).
//
//   node client.mjs SCENARIO WS_URL [--parser json|msgpack]
//
// WS_URL: the server's origin, e.g. ws://127.0.0.1:PORT (any path is ignored; Socket.IO's
// path /socket.io/ is used). --parser must match the server's.
//   ok                 connect with auth {token: "secret"}, get "welcome", emit "echo" (acked),
//                      emit "upload" with a 4-byte Buffer (acked), wait for one Engine.IO ping,
//                      then socket.disconnect()
//   server_disconnect  connect, emit "kick": the server calls socket.disconnect(true)
//   namespace_refused  connect with auth {token: "wrong"}: the middleware refuses (CONNECT_ERROR);
//                      then the client gives up (socket.disconnect() closes the WebSocket)
//   ping_timeout       a raw ws peer does the Engine.IO open and the Socket.IO CONNECT, then
//                      never answers the server's "2" pings: the server closes ("ping timeout")
import WebSocket from "ws";
import { io } from "socket.io-client";
import { NodeWebSocket } from "engine.io-client";
import msgpackParser from "socket.io-msgpack-parser";
import { clientArgs, deferred, ev, fail, finish, track, within } from "../lib/wire.mjs";

const SCENARIOS = ["ok", "server_disconnect", "namespace_refused", "ping_timeout"];
const { scenario, url, opts } = clientArgs(SCENARIOS);
const parserName = opts.parser === "msgpack" ? "msgpack" : "json";
const origin = new URL(url).origin.replace(/^http/, "ws");
const result = { protocol: "socket.io", parser: parserName, scenario };
const T = 4000;

// Track the ws socket that engine.io-client's Node WebSocket transport creates.
const createSocket = NodeWebSocket.prototype.createSocket;
NodeWebSocket.prototype.createSocket = function (...args) {
  return track(createSocket.apply(this, args), "engine.io");
};

function connect(auth) {
  const socket = io(origin, {
    transports: ["websocket"],
    reconnection: false,
    auth,
    ...(parserName === "msgpack" ? { parser: msgpackParser } : {}),
  });
  const connected = deferred();
  const refused = deferred();
  const disconnected = deferred();
  socket.on("connect", () => { ev("connect", { id: socket.id }); connected.resolve(); });
  socket.on("connect_error", (err) => { ev("connect_error", { message: err.message, data: err.data ?? null }); refused.resolve(err); });
  socket.on("disconnect", (reason, details) => {
    ev("disconnect", { reason, details: details ? String(details.description?.message || details.description || details.message || "") : null });
    disconnected.resolve(reason);
  });
  socket.onAny((name, ...args) => ev("event", { name, args }));
  const pinged = deferred();
  socket.io.on("ping", () => { ev("engine_ping"); pinged.resolve(); });
  socket.io.engine?.on?.("close", (reason) => ev("engine_close", { reason }));
  return { socket, connected: connected.promise, refused: refused.promise, disconnected: disconnected.promise, pinged: pinged.promise };
}

async function main() {
  switch (scenario) {
    case "ok": {
      const { socket, connected, pinged, disconnected } = connect({ token: "secret" });
      await within(connected, T, "connect");
      const echo = await within(socket.timeout(T).emitWithAck("echo", { hello: "world" }), T, "echo ack");
      ev("ack", { name: "echo", value: echo });
      const up = await within(socket.timeout(T).emitWithAck("upload", Buffer.from([1, 2, 3, 4])), T, "upload ack");
      ev("ack", { name: "upload", value: up });
      await within(pinged, T, "an Engine.IO ping");
      socket.disconnect();
      await within(disconnected, T, "disconnect");
      break;
    }
    case "server_disconnect": {
      const { socket, connected, disconnected } = connect({ token: "secret" });
      await within(connected, T, "connect");
      socket.emit("kick");
      await within(disconnected, T, "disconnect");
      break;
    }
    case "namespace_refused": {
      const { socket, refused } = connect({ token: "wrong" });
      await within(refused, T, "connect_error");
      socket.disconnect(); // no namespace to leave: closes the engine's WebSocket
      break;
    }
    case "ping_timeout": {
      await frozenPeer();
      break;
    }
  }
  await finish(result);
}

// A peer that speaks Engine.IO/Socket.IO by hand and then freezes (answers no "2").
async function frozenPeer() {
  const ws = track(new WebSocket(`${origin}/socket.io/?EIO=4&transport=websocket`), "raw");
  const connectAck = deferred();
  const closed = new Promise((resolve) => ws.on("close", (code, reason) => { ev("closed", { code, reason: String(reason) }); resolve(); }));
  ws.on("message", (data, isBinary) => {
    if (!isBinary) {
      const text = String(data);
      if (text.startsWith("0")) {
        ev("engine_open", { handshake: JSON.parse(text.slice(1)) });
        if (parserName === "msgpack") {
          const [buf] = new msgpackParser.Encoder().encode({ type: 0, nsp: "/", data: { token: "secret" } });
          ws.send(buf);
        } else {
          ws.send('40{"token":"secret"}');
        }
      } else if (text === "2") {
        ev("engine_ping_ignored");
      } else if (text.startsWith("40")) {
        ev("connect", { packet: text });
        connectAck.resolve();
      } else {
        ev("packet", { text });
      }
    } else {
      const decoder = new msgpackParser.Decoder();
      decoder.on("decoded", (packet) => { ev("packet", { packet }); if (packet.type === 0) connectAck.resolve(); });
      decoder.add(data);
    }
  });
  await within(connectAck.promise, T, "CONNECT ack");
  await within(closed, T, "the server to drop the frozen peer");
}

main().catch((err) => fail(err));
