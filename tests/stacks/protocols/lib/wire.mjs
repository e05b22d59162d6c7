// Shared harness for the protocol clients and servers.
//
// Clients: `track(ws)` wraps a `ws` WebSocket instance (ws 7 or 8, whichever the
// library uses) so that every frame it sends or receives is noted as the client saw
// it on the wire; `trackedClass(Base)` gives a subclass whose instances are tracked
// (for libraries that take a WebSocket constructor); `finish(result)` waits until
// every tracked socket is fully closed (close handshake done, TCP gone) or 1.5 s,
// prints ONE line of JSON and exits 0.  `fail(err)` prints {"error": ...} and exits 2.
//
// Servers: `listening(server)` prints the first stdout line {"port": N}; `log(obj)`
// prints further JSON lines (events the server observed) to stdout; SIGTERM/SIGINT
// exit the process at once.

const started = Date.now();
export const since = () => Date.now() - started;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const MAX_TEXT = 400;

function describe(data, isBinary) {
  if (typeof data === "string") {
    return { op: "text", len: Buffer.byteLength(data), data: data.slice(0, MAX_TEXT) };
  }
  let buf;
  if (Buffer.isBuffer(data)) buf = data;
  else if (data instanceof ArrayBuffer) buf = Buffer.from(data);
  else if (ArrayBuffer.isView(data)) buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  else if (Array.isArray(data)) buf = Buffer.concat(data);
  else return { op: "text", data: String(data).slice(0, MAX_TEXT) };
  if (isBinary === false) {
    const text = buf.toString("utf8");
    return { op: "text", len: buf.length, data: text.slice(0, MAX_TEXT) };
  }
  return { op: "binary", len: buf.length, hex: buf.subarray(0, 200).toString("hex") };
}

export const connections = [];

/** Track one ws WebSocket instance (client side). Returns the same instance. */
export function track(ws, label = "") {
  const conn = {
    label,
    url: ws.url,
    protocol: null,
    wire: [],
    sent_close: null,
    received_close: null,
    initiator: null,
    terminated: false,
    http_status: null,
    ended: null,
  };
  connections.push(conn);
  const note = (entry) => conn.wire.push({ t: since(), ...entry });
  ws.on("upgrade", (res) => { conn.http_status = res.statusCode; });
  // (no "unexpected-response" listener: ws would then leave a refused upgrade to us)
  ws.on("open", () => {
    conn.protocol = ws.protocol || "";
    note({ dir: "in", op: "open", protocol: conn.protocol });
  });
  ws.on("message", (data, isBinary) => note({ dir: "in", ...describe(data, isBinary) }));
  ws.on("ping", (data) => {
    note({ dir: "in", op: "ping", data: data.toString("utf8") });
    note({ dir: "out", op: "pong", data: data.toString("utf8"), auto: true });
  });
  ws.on("pong", (data) => note({ dir: "in", op: "pong", data: data.toString("utf8") }));
  ws.on("error", (err) => {
    const message = String(err && err.message || err);
    const refused = /Unexpected server response: (\d+)/.exec(message);
    if (refused) {
      conn.http_status = Number(refused[1]);
      note({ dir: "in", op: "http", status: conn.http_status });
    }
    note({ dir: "-", op: "error", message });
  });
  const noteReceivedClose = () => {
    if (conn.received_close || !ws._closeFrameReceived) return;
    const code = ws._closeCode;
    const reason = ws._closeMessage ? ws._closeMessage.toString() : "";
    conn.received_close = { code, reason };
    if (!conn.initiator) conn.initiator = "server";
    note({ dir: "in", op: "close", code, reason });
  };
  ws.on("close", (code, reason) => {
    noteReceivedClose();
    conn.ended = { code, reason: reason ? reason.toString() : "", clean: !!ws._closeFrameReceived && !!ws._closeFrameSent };
    note({ dir: "-", op: "closed", code, reason: conn.ended.reason });
  });

  const origSend = ws.send;
  ws.send = function (data, opts, cb) {
    if (ws.readyState === 1) {
      const binary = typeof opts === "object" && opts && "binary" in opts ? opts.binary : typeof data !== "string";
      note({ dir: "out", ...describe(data, binary) });
    }
    return origSend.call(this, data, opts, cb);
  };
  const origClose = ws.close;
  ws.close = function (code, reason) {
    noteReceivedClose(); // an echo: the peer's close frame came first
    if (ws.readyState === 1) { // ws sends a close frame only from OPEN
      const r = reason === undefined ? "" : String(reason);
      conn.sent_close = { code: code === undefined ? null : code, reason: r };
      if (!conn.initiator) conn.initiator = "client";
      note({ dir: "out", op: "close", code: code === undefined ? null : code, reason: r, echo: !!ws._closeFrameReceived });
    } else if (ws.readyState === 0) {
      note({ dir: "out", op: "abort" });
    }
    return origClose.call(this, code, reason);
  };
  const origTerminate = ws.terminate;
  ws.terminate = function () {
    if (ws.readyState < 3) {
      conn.terminated = true;
      if (!conn.initiator) conn.initiator = "client";
      note({ dir: "out", op: "terminate" });
    }
    return origTerminate.call(this);
  };
  ws.__tracked = conn;
  return ws;
}

/** A subclass of a ws WebSocket class whose instances are tracked. */
export function trackedClass(Base, label = "") {
  return class TrackedWebSocket extends Base {
    constructor(...args) {
      super(...args);
      track(this, label);
    }
  };
}

/** Library-level observations of a client, in order. */
export const events = [];
export function ev(name, data = {}) {
  events.push({ t: since(), event: name, ...data });
}

function summary(conn) {
  if (!conn) return null;
  const code = conn.received_close ? conn.received_close.code : conn.ended ? conn.ended.code : null;
  const reason = conn.received_close ? conn.received_close.reason : conn.ended ? conn.ended.reason : null;
  return {
    code,
    reason,
    initiator: conn.initiator,
    clean: conn.ended ? conn.ended.clean : false,
    sent: conn.sent_close,
    received: conn.received_close,
    terminated: conn.terminated,
  };
}

async function allClosed(ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (connections.every((c) => c.ended)) return true;
    await sleep(20);
  }
  return false;
}

let finished = false;
export async function finish(result, { wait = 1500 } = {}) {
  if (finished) return;
  finished = true;
  const settled = await allClosed(wait);
  const out = {
    ...result,
    events,
    closed: summary(connections[connections.length - 1]),
    settled,
    connections,
  };
  process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0));
}

export function fail(err, extra = {}) {
  if (finished) return;
  finished = true;
  const out = { error: String(err && err.stack || err), ...extra, events, connections };
  process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(2));
}

/** Parse `node client.mjs SCENARIO WS_URL [--flag value ...]`; sets a watchdog. */
export function clientArgs(scenarios, { watchdogMs = 10000 } = {}) {
  const [scenario, url, ...rest] = process.argv.slice(2);
  if (!scenario || !url || !scenarios.includes(scenario)) {
    process.stderr.write(`usage: node ${process.argv[1]} {${scenarios.join("|")}} WS_URL [options]\n`);
    process.exit(64);
  }
  const opts = parseFlags(rest);
  const timer = setTimeout(() => fail(`scenario ${scenario} did not finish within ${watchdogMs} ms`, { partial: true }), watchdogMs);
  timer.unref();
  process.on("unhandledRejection", (err) => fail(err));
  process.on("uncaughtException", (err) => fail(err));
  return { scenario, url, opts };
}

export function parseFlags(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) continue;
    const eq = a.indexOf("=");
    if (eq > 0) opts[a.slice(2, eq)] = a.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith("--")) opts[a.slice(2)] = argv[++i];
    else opts[a.slice(2)] = true;
  }
  return opts;
}

/** A promise with its resolve function, plus a timeout that rejects with a label. */
export function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

export function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

// -- servers --------------------------------------------------------------------------

export function log(obj) {
  process.stdout.write(JSON.stringify({ t: since(), ...obj }) + "\n");
}

export function listening(server) {
  const { port } = server.address();
  process.stdout.write(JSON.stringify({ port }) + "\n");
}

export function serverArgs() {
  const opts = parseFlags(process.argv.slice(2));
  for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
  return opts;
}

export function num(value, fallback) {
  if (value === undefined || value === true) return fallback;
  const n = Number(value);
  return Number.isFinite(n) ? n : fallback;
}
