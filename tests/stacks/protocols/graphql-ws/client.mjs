// graphql-ws client scenarios.
//
//   node client.mjs SCENARIO WS_URL       (WS_URL e.g. ws://127.0.0.1:PORT/graphql)
//
// Scenarios driven by graphql-ws's own createClient (webSocketImpl = ws):
//   ok, forbidden, duplicate, terminate, internal_error, ack_timeout, operation_error, ping
// Scenarios that createClient cannot produce, spoken with a raw ws socket:
//   unauthorized, bad_request, too_many_inits, init_timeout, subprotocol
// Prints one JSON line: {protocol, scenario, events, closed, connections}.
import WebSocket from "ws";
import { createClient } from "graphql-ws";
import { clientArgs, deferred, ev, fail, finish, track, trackedClass, within } from "../lib/wire.mjs";

const SCENARIOS = [
  "ok", "forbidden", "unauthorized", "bad_request", "duplicate", "too_many_inits",
  "init_timeout", "terminate", "internal_error", "ack_timeout", "operation_error", "ping", "subprotocol",
];
const { scenario, url } = clientArgs(SCENARIOS);
const TrackedWebSocket = trackedClass(WebSocket);
const result = { protocol: "graphql-ws", scenario };

function client(token, { on: hooks = {}, ...extra } = {}) {
  const closed = deferred();
  const connected = deferred();
  const c = createClient({
    url,
    webSocketImpl: TrackedWebSocket,
    connectionParams: { token },
    lazy: false,
    retryAttempts: 0,
    onNonLazyError: (err) => ev("non_lazy_error", errorInfo(err)),
    on: {
      connected: (_socket, payload) => { ev("connected", { ack_payload: payload ?? null }); connected.resolve(); },
      closed: (event) => { ev("closed", errorInfo(event)); closed.resolve(event); },
      error: (err) => ev("error", errorInfo(err)),
      ping: (received, payload) => { ev("ping", { received, payload: payload ?? null }); hooks.ping?.(received, payload); },
      pong: (received, payload) => { ev("pong", { received, payload: payload ?? null }); hooks.pong?.(received, payload); },
    },
    ...extra,
  });
  return { c, closed: closed.promise, connected: connected.promise };
}

function errorInfo(e) {
  if (e && typeof e === "object" && "code" in e) return { code: e.code, reason: e.reason, was_clean: e.wasClean ?? null };
  if (Array.isArray(e)) return { errors: e.map((x) => x.message) };
  return { message: String(e && e.message || e) };
}

function subscribe(c, query, label, onNext = () => {}) {
  const done = deferred();
  c.subscribe({ query }, {
    next: (value) => { ev("next", { sub: label, value }); onNext(value); },
    error: (err) => { ev("sub_error", { sub: label, ...errorInfo(err) }); done.resolve("error"); },
    complete: () => { ev("complete", { sub: label }); done.resolve("complete"); },
  });
  return done.promise;
}

// A raw graphql-transport-ws peer, for what createClient never sends.
function raw({ protocol = "graphql-transport-ws" } = {}) {
  const ws = track(protocol ? new WebSocket(url, protocol) : new WebSocket(url));
  const messages = [];
  const waiters = [];
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data));
    messages.push(msg);
    ev("message", { message: msg });
    for (const w of [...waiters]) if (w.pred(msg)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(msg); }
  });
  const closed = new Promise((resolve) => ws.on("close", (code, reason) => {
    ev("closed", { code, reason: String(reason) });
    resolve({ code, reason: String(reason) });
  }));
  const opened = new Promise((resolve, reject) => { ws.on("open", resolve); ws.on("error", reject); });
  const waitFor = (pred) => {
    const hit = messages.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve) => waiters.push({ pred, resolve }));
  };
  const send = (obj) => ws.send(typeof obj === "string" ? obj : JSON.stringify(obj));
  return { ws, opened, closed, waitFor, send };
}

const INIT = { type: "connection_init", payload: { token: "secret" } };
const T = 4000;

async function main() {
  switch (scenario) {
    case "ok": {
      const { c, closed, connected } = client("secret");
      await within(connected, T, "connection_ack");
      await within(subscribe(c, "subscription { countdown(from: 3) }", "countdown"), T, "subscription to complete");
      await c.dispose(); // client closes 1000 "Normal Closure"
      await within(closed, T, "close");
      break;
    }
    case "forbidden": {
      const { closed } = client("bad");
      await within(closed, T, "close 4403");
      break;
    }
    case "internal_error": {
      const { closed } = client("crash");
      await within(closed, T, "close 4500");
      break;
    }
    case "ack_timeout": {
      // The server acks only after 3 s; createClient gives up after 300 ms and closes 4504.
      const { closed } = client("slow", { connectionAckWaitTimeout: 300 });
      await within(closed, T, "close 4504");
      break;
    }
    case "duplicate": {
      // createClient with a constant generateID: the second subscribe reuses id "dup".
      const { c, closed, connected } = client("secret", { generateID: () => "dup" });
      await within(connected, T, "connection_ack");
      subscribe(c, "subscription { ticks }", "first");
      subscribe(c, "subscription { ticks }", "second");
      await within(closed, T, "close 4409");
      break;
    }
    case "terminate": {
      const { c, closed, connected } = client("secret");
      await within(connected, T, "connection_ack");
      const firstTick = deferred();
      subscribe(c, "subscription { ticks }", "ticks", firstTick.resolve);
      await within(firstTick.promise, T, "the first tick");
      c.terminate(); // graphql-ws: emits a synthetic 4499 close AND ws.close(4499, "Terminated")
      await within(closed, T, "closed event");
      break;
    }
    case "operation_error": {
      const { c, closed, connected } = client("secret");
      await within(connected, T, "connection_ack");
      await within(subscribe(c, "{ nosuchfield }", "invalid"), T, "validation error");
      await within(subscribe(c, "subscription { boom }", "boom"), T, "execution error");
      await within(subscribe(c, "query { add(a: 2, b: 3) }", "query"), T, "query");
      await c.dispose();
      await within(closed, T, "close");
      break;
    }
    case "ping": {
      const serverPing = deferred();
      const pongs = deferred();
      let pongCount = 0;
      const { c, closed, connected } = client("ping", {
        keepAlive: 150,
        on: {
          ping: (received) => { if (received) serverPing.resolve(); },
          pong: (received) => { if (received && ++pongCount >= 2) pongs.resolve(); },
        },
      });
      await within(connected, T, "connection_ack");
      await within(Promise.all([serverPing.promise, pongs.promise]), T, "server ping and two pongs");
      await c.dispose();
      await within(closed, T, "close");
      break;
    }
    case "unauthorized": {
      const r = raw();
      await within(r.opened, T, "open");
      r.send({ id: "1", type: "subscribe", payload: { query: "{ hello }" } });
      await within(r.closed, T, "close 4401");
      break;
    }
    case "bad_request": {
      const r = raw();
      await within(r.opened, T, "open");
      r.send(INIT);
      await within(r.waitFor((m) => m.type === "connection_ack"), T, "connection_ack");
      r.send("this is not json");
      await within(r.closed, T, "close 4400");
      break;
    }
    case "too_many_inits": {
      const r = raw();
      await within(r.opened, T, "open");
      r.send(INIT);
      await within(r.waitFor((m) => m.type === "connection_ack"), T, "connection_ack");
      r.send(INIT);
      await within(r.closed, T, "close 4429");
      break;
    }
    case "init_timeout": {
      const r = raw();
      await within(r.opened, T, "open");
      await within(r.closed, T, "close 4408");
      break;
    }
    case "subprotocol": {
      const r = raw({ protocol: null });
      await within(r.opened, T, "open");
      await within(r.closed, T, "close 4406");
      break;
    }
  }
  await finish(result);
}

main().catch((err) => fail(err));
