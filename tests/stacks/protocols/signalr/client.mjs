// SignalR client scenarios: the real @microsoft/signalr HubConnection (JSON hub protocol,
// WebSockets transport, skipNegotiation: true), over the `ws` 7 it bundles for Node.
//
//   node client.mjs SCENARIO WS_URL      (WS_URL e.g. ws://127.0.0.1:PORT/hub; ws:// is given to
//                                          the client as http://, as Node's client requires)
//
//   ok                  start, invoke Echo("hello"), send Broadcast -> ReceiveMessage, stop()
//   server_close_error  start, send CloseWithError: the server's close message
//                       {"type":7,"error":"...Boom","allowReconnect":true} stops the client
//   ping                keepAliveInterval 200 ms and ?serverPingMs=200: pings {"type":6} both
//                       ways until the client has sent 2 and received 2, then stop()
//   server_timeout      serverTimeout 600 ms, invoke GoSilent: the server says nothing more and
//                       the client gives up ("Server timeout elapsed ...")
//   invoke_error        invoke an unknown method: a completion with "error", then stop()
import { createRequire } from "node:module";
import * as signalR from "@microsoft/signalr";
import { clientArgs, deferred, ev, fail, finish, since, sleep, trackedClass, within } from "../lib/wire.mjs";

const SCENARIOS = ["ok", "server_close_error", "ping", "server_timeout", "invoke_error"];
const { scenario, url: wsUrl } = clientArgs(SCENARIOS);
// In Node the client only resolves http(s) URLs; its WebSocket transport turns them back into ws(s).
const url = wsUrl.replace(/^ws/i, "http");
const result = { protocol: "signalr", scenario };
const T = 4000;

// The ws module @microsoft/signalr itself requires in Node (its own ws@7 dependency).
const requireFromSignalR = createRequire(createRequire(import.meta.url).resolve("@microsoft/signalr"));
const TrackedWebSocket = trackedClass(requireFromSignalR("ws"));

const logger = {
  log(level, message) {
    if (level >= signalR.LogLevel.Information) ev("log", { level: signalR.LogLevel[level], message: String(message) });
  },
};

function build(hubUrl, { keepAlive, serverTimeout } = {}) {
  let builder = new signalR.HubConnectionBuilder()
    .withUrl(hubUrl, {
      skipNegotiation: true,
      transport: signalR.HttpTransportType.WebSockets,
      WebSocket: TrackedWebSocket,
    })
    .withHubProtocol(new signalR.JsonHubProtocol())
    .configureLogging(logger);
  if (serverTimeout) builder = builder.withServerTimeout(serverTimeout);
  if (keepAlive) builder = builder.withKeepAliveInterval(keepAlive);
  const connection = builder.build();
  const closed = deferred();
  connection.onclose((error) => { ev("onclose", { error: error ? error.message : null }); closed.resolve(error); });
  connection.on("ReceiveMessage", (msg) => ev("ReceiveMessage", { msg }));
  return { connection, closed: closed.promise };
}

async function main() {
  switch (scenario) {
    case "ok": {
      const { connection, closed } = build(url);
      const received = deferred();
      connection.on("ReceiveMessage", () => received.resolve());
      await within(connection.start(), T, "start");
      ev("started", { state: connection.state });
      const echoed = await within(connection.invoke("Echo", "hello"), T, "Echo");
      ev("invoke_result", { method: "Echo", result: echoed });
      await connection.send("Broadcast", "hi all");
      await within(received.promise, T, "ReceiveMessage");
      await connection.stop();
      await within(closed, T, "onclose");
      break;
    }
    case "server_close_error": {
      const { connection, closed } = build(url);
      await within(connection.start(), T, "start");
      ev("started", { state: connection.state });
      await connection.send("CloseWithError");
      await within(closed, T, "onclose");
      break;
    }
    case "ping": {
      const pingUrl = url + (url.includes("?") ? "&" : "?") + "serverPingMs=200";
      const { connection, closed } = build(pingUrl, { keepAlive: 200, serverTimeout: 3000 });
      await within(connection.start(), T, "start");
      ev("started", { state: connection.state });
      // Count pings on the wire as the client saw them.
      const conn = () => connection.connection.transport?._webSocket?.__tracked;
      const countPings = (dir) => (conn()?.wire ?? []).filter((w) => w.dir === dir && w.op === "text" && w.data === '{"type":6}\x1e').length;
      const deadline = since() + T;
      while (since() < deadline && (countPings("in") < 2 || countPings("out") < 2)) await sleep(25);
      ev("pings", { sent: countPings("out"), received: countPings("in") });
      await connection.stop();
      await within(closed, T, "onclose");
      break;
    }
    case "server_timeout": {
      const { connection, closed } = build(url, { keepAlive: 200, serverTimeout: 600 });
      await within(connection.start(), T, "start");
      ev("started", { state: connection.state });
      await within(connection.invoke("GoSilent"), T, "GoSilent");
      await within(closed, T, "onclose after the server timeout");
      break;
    }
    case "invoke_error": {
      const { connection, closed } = build(url);
      await within(connection.start(), T, "start");
      try {
        await within(connection.invoke("NoSuchMethod", 1), T, "NoSuchMethod");
      } catch (err) {
        ev("invoke_error", { method: "NoSuchMethod", message: err.message });
      }
      await connection.stop();
      await within(closed, T, "onclose");
      break;
    }
  }
  await finish(result);
}

main().catch((err) => fail(err));
