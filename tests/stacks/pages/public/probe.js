// Ground truth for the page-model tests, loaded as a classic script before any module, so it
// wraps window.WebSocket before Vite's client (/@vite/client) opens its HMR socket.
//
// window.__sockets: every WebSocket this page load created, in order:
//   {id, url, path, protocol, kind ("hmr" | "ping" | "app"), created, opened, closed,
//    code, reason, wasClean, readyState}  (times: Date.now() / 1000, the driver's time.time())
// window.__probe.state(): per kept path, {readyState, opens, failures, closeCodes} over this load.
// sessionStorage["__probe_log"]: the tab's history across page loads (load, pagehide, socket
//   created/open/close/error); the sockets a navigation tears down get no close event in JS.
(function () {
  "use strict";
  const now = () => Date.now() / 1000;
  const LOG = "__probe_log";
  const loadNo = Number(sessionStorage.getItem("__probe_loads") || "0") + 1;
  sessionStorage.setItem("__probe_loads", String(loadNo));

  function log(event) {
    event.t = event.t || now();
    event.load = loadNo;
    event.page = location.pathname + location.search;
    let all = [];
    try { all = JSON.parse(sessionStorage.getItem(LOG) || "[]"); } catch (e) { all = []; }
    all.push(event);
    if (all.length > 2000) all = all.slice(-2000);
    sessionStorage.setItem(LOG, JSON.stringify(all));
  }

  const sockets = [];
  const kept = {};
  window.__sockets = sockets;
  const Native = window.WebSocket;

  function kindOf(protocols) {
    const list = Array.isArray(protocols) ? protocols : protocols ? [protocols] : [];
    if (list.includes("vite-hmr")) return "hmr";
    if (list.includes("vite-ping")) return "ping";
    return "app";
  }

  class ProbedWebSocket extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const parsed = new URL(this.url);
      const rec = {
        id: sockets.length + 1, url: this.url, path: parsed.pathname,
        protocol: Array.isArray(protocols) ? protocols.join(",") : protocols || "",
        kind: kindOf(protocols), created: now(), opened: null, closed: null,
        code: null, reason: null, wasClean: null, readyState: 0,
      };
      sockets.push(rec);
      log({ type: "ws-created", id: rec.id, path: rec.path, kind: rec.kind, t: rec.created });
      this.addEventListener("open", () => {
        rec.opened = now(); rec.readyState = 1;
        log({ type: "ws-open", id: rec.id, path: rec.path, kind: rec.kind, t: rec.opened });
      });
      this.addEventListener("error", () => {
        log({ type: "ws-error", id: rec.id, path: rec.path, kind: rec.kind });
      });
      this.addEventListener("close", (e) => {
        rec.closed = now(); rec.readyState = 3;
        rec.code = e.code; rec.reason = e.reason; rec.wasClean = e.wasClean;
        log({ type: "ws-close", id: rec.id, path: rec.path, kind: rec.kind, t: rec.closed,
              code: e.code, reason: e.reason, wasClean: e.wasClean, opened: rec.opened !== null });
      });
    }
  }
  window.WebSocket = ProbedWebSocket;

  // An app socket that reconnects: 200 ms, doubling, capped at 2 s; reset once open.
  function keep(path) {
    const state = { path, readyState: 0, opens: 0, failures: 0, closeCodes: [], messages: 0 };
    kept[path] = state;
    let delay = 0.2;
    function connect() {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      const ws = new WebSocket(`${scheme}://${location.host}${path}`);
      let opened = false;
      state.readyState = 0;
      ws.onopen = () => {
        opened = true; delay = 0.2; state.opens += 1; state.readyState = 1;
        ws.send(JSON.stringify({ type: "hi", page: location.pathname, load: loadNo }));
      };
      ws.onmessage = () => { state.messages += 1; };
      ws.onclose = (e) => {
        state.readyState = 3;
        state.closeCodes.push(e.code);
        if (!opened) state.failures += 1;
        const wait = delay;
        delay = Math.min(delay * 2, 2);
        setTimeout(connect, wait * 1000);
      };
      state.socket = ws;
    }
    connect();
  }

  function state() {
    const out = {};
    for (const [path, s] of Object.entries(kept)) {
      out[path] = { readyState: s.readyState, opens: s.opens, failures: s.failures,
                    closeCodes: s.closeCodes.slice(), messages: s.messages };
    }
    const hmr = sockets.filter((r) => r.kind === "hmr");
    if (hmr.length) {
      const last = hmr[hmr.length - 1];
      out.hmr = { readyState: last.readyState, opens: hmr.filter((r) => r.opened).length,
                  failures: hmr.filter((r) => r.closed && !r.opened).length,
                  closeCodes: hmr.filter((r) => r.closed).map((r) => r.code) };
    }
    return out;
  }

  window.__probe = {
    load: loadNo, keep, state, log,
    history: () => JSON.parse(sessionStorage.getItem(LOG) || "[]"),
    sockets: () => sockets.map((r) => Object.assign({}, r)),
  };
  log({ type: "load-start", t: performance.timeOrigin / 1000 });
  addEventListener("load", () => log({ type: "load" }));
  addEventListener("pagehide", (e) => log({ type: "pagehide", persisted: e.persisted }));
})();
