// Phoenix channels client scenarios: the real `phoenix` JS Socket (transport: ws, vsn 2.0.0),
// heartbeat every 500 ms (--heartbeat MS; the client closes the socket with 1000 "heartbeat
// timeout" when a heartbeat gets no reply before the next one is due), rejoin after 100 ms.
//
//   node client.mjs SCENARIO WS_URL [--heartbeat MS]
//
// WS_URL: the socket endpoint, e.g. ws://127.0.0.1:PORT/socket (a trailing /websocket is
// removed: the client appends /websocket?token=...&vsn=2.0.0 itself).
//   ok               join room:lobby {user: "alice"}, push new_msg (reply + broadcast), wait
//                    for a heartbeat reply, leave (reply + phx_close), socket.disconnect()
//   join_refused     join private:secret -> phx_reply error {"reason":"unauthorized"}, disconnect
//   channel_crash    join, push "crash" -> phx_error; the client rejoins (new join_ref), disconnect
//   server_close     join, push "kick" -> phx_close; the channel is closed, disconnect
//   connect_refused  token "bad": the upgrade gets HTTP 403 (no WebSocket at all)
import WebSocket from "ws";
import { Socket } from "phoenix";
import { clientArgs, deferred, ev, fail, finish, trackedClass, within } from "../lib/wire.mjs";

const SCENARIOS = ["ok", "join_refused", "channel_crash", "server_close", "connect_refused"];
const { scenario, url, opts } = clientArgs(SCENARIOS);
const heartbeatMs = Number(opts.heartbeat) > 0 ? Number(opts.heartbeat) : 500;
const endpoint = url.replace(/\/websocket\/?(\?.*)?$/, "");
const result = { protocol: "phoenix", scenario };
const T = 4000;

function open(token = "secret") {
  const socket = new Socket(endpoint, {
    transport: trackedClass(WebSocket),
    params: { token },
    heartbeatIntervalMs: heartbeatMs,
    rejoinAfterMs: () => 100,
    reconnectAfterMs: () => 60000, // a refused or dropped socket does not come back within a scenario
  });
  const opened = deferred();
  const errored = deferred();
  socket.onOpen(() => { ev("socket_open"); opened.resolve(); });
  socket.onError((err) => { ev("socket_error", { message: String(err && (err.message || err.type) || err) }); errored.resolve(); });
  socket.onClose((e) => ev("socket_close", { code: e && e.code, reason: e && e.reason }));
  socket.onMessage((msg) => ev("message", { topic: msg.topic, msg_event: msg.event, payload: msg.payload, ref: msg.ref, join_ref: msg.join_ref }));
  socket.connect();
  return { socket, opened: opened.promise, errored: errored.promise };
}

function joinChannel(socket, topic, params = {}) {
  const channel = socket.channel(topic, params);
  const joined = deferred();
  const refused = deferred();
  let joins = 0;
  channel.join()
    .receive("ok", (resp) => { joins++; ev("join_ok", { topic, response: resp, join_ref: channel.joinRef(), joins }); joined.resolve(joins); })
    .receive("error", (resp) => { ev("join_error", { topic, response: resp }); refused.resolve(resp); })
    .receive("timeout", () => ev("join_timeout", { topic }));
  return { channel, joined: joined.promise, refused: refused.promise, joinCount: () => joins };
}

const disconnect = (socket) => new Promise((resolve) => socket.disconnect(resolve));

async function main() {
  switch (scenario) {
    case "ok": {
      const { socket, opened } = open();
      await within(opened, T, "socket open");
      const { channel, joined } = joinChannel(socket, "room:lobby", { user: "alice" });
      await within(joined, T, "join");
      const broadcast = deferred();
      channel.on("new_msg", (payload) => { ev("broadcast", { event: "new_msg", payload }); broadcast.resolve(); });
      const replied = deferred();
      channel.push("new_msg", { body: "hi" }).receive("ok", (resp) => { ev("push_ok", { response: resp }); replied.resolve(); });
      await within(Promise.all([replied.promise, broadcast.promise]), T, "reply and broadcast");
      const heartbeat = deferred();
      const hbRef = socket.onMessage((msg) => { if (msg.topic === "phoenix" && msg.event === "phx_reply") heartbeat.resolve(); });
      await within(heartbeat.promise, T, "a heartbeat reply");
      socket.off([hbRef]);
      // The client closes the channel locally at once; wait for the server's phx_close.
      const serverClose = deferred();
      socket.onMessage((msg) => { if (msg.topic === "room:lobby" && msg.event === "phx_close") serverClose.resolve(); });
      channel.onClose(() => ev("channel_close", { topic: channel.topic }));
      channel.leave().receive("ok", () => ev("leave_ok"));
      await within(serverClose.promise, T, "the server's phx_close");
      await within(disconnect(socket), T, "disconnect");
      break;
    }
    case "join_refused": {
      const { socket, opened } = open();
      await within(opened, T, "socket open");
      const { refused } = joinChannel(socket, "private:secret");
      await within(refused, T, "join error");
      await within(disconnect(socket), T, "disconnect");
      break;
    }
    case "channel_crash": {
      const { socket, opened } = open();
      await within(opened, T, "socket open");
      const { channel, joined } = joinChannel(socket, "room:lobby", { user: "alice" });
      await within(joined, T, "join");
      const rejoined = deferred();
      channel.onError((reason) => ev("channel_error", { topic: channel.topic, reason: reason ?? null }));
      const firstRef = channel.joinRef();
      channel.joinPush.receive("ok", () => { if (channel.joinRef() !== firstRef) rejoined.resolve(); });
      channel.push("crash", {});
      await within(rejoined.promise, T, "rejoin after phx_error");
      ev("rejoined", { first_join_ref: firstRef, join_ref: channel.joinRef() });
      await within(disconnect(socket), T, "disconnect");
      break;
    }
    case "server_close": {
      const { socket, opened } = open();
      await within(opened, T, "socket open");
      const { channel, joined } = joinChannel(socket, "room:lobby", { user: "alice" });
      await within(joined, T, "join");
      const closed = deferred();
      channel.onClose(() => { ev("channel_close", { topic: channel.topic, state: channel.state }); closed.resolve(); });
      channel.push("kick", {});
      await within(closed.promise, T, "phx_close");
      await within(disconnect(socket), T, "disconnect");
      break;
    }
    case "connect_refused": {
      const { socket, errored } = open("bad");
      await within(errored, T, "socket error");
      await within(disconnect(socket), T, "disconnect");
      break;
    }
  }
  await finish(result);
}

main().catch((err) => fail(err));
