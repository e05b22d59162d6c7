// Socket.IO v4 server (the `socket.io` package), WebSocket transport only.
//
//   node server.mjs [--parser json|msgpack] [--ping-interval MS] [--ping-timeout MS]
//
// Listens on 127.0.0.1:0, path /socket.io/, prints {"port": N}, then one JSON line per event
// (engine connection/close with Engine.IO's reason, namespace refusal, connection, events,
// disconnect with Socket.IO's reason).
//
// Defaults: --parser json, --ping-interval 500, --ping-timeout 1000 (Engine.IO v4: the server
// sends "2" every ping-interval and closes when no "3" came within ping-timeout).
//
// Namespace "/": a middleware admits auth {token: "secret"}; anything else gets
// next(Error("not authorized")) with data {reason: "bad token"} -> a CONNECT_ERROR packet.
// Events: "echo" (acked with {echo: data}), "upload" (binary, acked with {bytes: n}),
// "chat" (broadcast back as "chat"), "kick" (server calls socket.disconnect(true)).
// On connection the server emits "welcome" {id}.
import http from "node:http";
import { Server } from "socket.io";
import msgpackParser from "socket.io-msgpack-parser";
import { listening, log, num, serverArgs } from "../lib/wire.mjs";

const opts = serverArgs();
const parserName = opts.parser === "msgpack" ? "msgpack" : "json";
const pingInterval = num(opts["ping-interval"], 500);
const pingTimeout = num(opts["ping-timeout"], 1000);

const httpServer = http.createServer((req, res) => { res.writeHead(404); res.end(); });
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  pingInterval,
  pingTimeout,
  ...(parserName === "msgpack" ? { parser: msgpackParser } : {}),
});

io.engine.on("connection", (rawSocket) => {
  log({ event: "engine_open", sid: rawSocket.id, transport: rawSocket.transport.name });
  rawSocket.on("close", (reason, description) =>
    log({ event: "engine_close", sid: rawSocket.id, reason, description: description ? String(description.message || description) : null }));
});
io.engine.on("connection_error", (err) => log({ event: "engine_connection_error", code: err.code, message: err.message }));

io.use((socket, next) => {
  const token = socket.handshake.auth && socket.handshake.auth.token;
  if (token === "secret") return next();
  log({ event: "refused", sid: socket.conn.id, token: token ?? null });
  const err = new Error("not authorized");
  err.data = { reason: "bad token" };
  next(err);
});

io.on("connection", (socket) => {
  log({ event: "connection", id: socket.id, sid: socket.conn.id, auth: socket.handshake.auth });
  socket.emit("welcome", { id: socket.id });
  socket.on("echo", (data, ack) => { log({ event: "echo", id: socket.id, data }); if (typeof ack === "function") ack({ echo: data }); });
  socket.on("upload", (buf, ack) => { log({ event: "upload", id: socket.id, bytes: buf.length }); if (typeof ack === "function") ack({ bytes: buf.length }); });
  socket.on("chat", (msg) => { log({ event: "chat", id: socket.id, msg }); socket.emit("chat", msg); });
  socket.on("kick", () => { log({ event: "kick", id: socket.id }); socket.disconnect(true); });
  socket.on("disconnect", (reason, description) =>
    log({ event: "disconnect", id: socket.id, reason, description: description ? String(description.message || description) : null }));
});

httpServer.listen(0, "127.0.0.1", () => listening(httpServer));
