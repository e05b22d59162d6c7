// graphql-ws (subprotocol graphql-transport-ws) server: graphql-ws's own useServer over ws.
//
//   node server.mjs [--init-timeout MS] [--keepalive MS] [--slow MS]
//
// Listens on 127.0.0.1:0 at any path (tests use /graphql), prints {"port": N}, then one JSON
// line per event it observes (connect, subscribe, close with code/reason).
//
// connection_init payload {"token": T} decides onConnect:
//   "secret" -> ack with payload {"user": "alice"}
//   "ping"   -> like "secret", and 50 ms after the ack the server sends a WebSocket ping frame
//               (what useServer's keepAlive does) and a graphql-ws {"type":"ping"} message
//   "bad" or missing -> onConnect returns false -> graphql-ws closes 4403 "Forbidden"
//   "crash"  -> onConnect throws Error("auth backend down") -> graphql-ws closes 4500 with that message
//   "slow"   -> onConnect waits --slow ms (default 3000) before acking (client ack timeouts)
//
// Schema: Query { hello, add(a, b) }, Subscription { countdown(from): Int (one value per 20 ms),
// ticks: Int (every 100 ms, endless), boom: Int (yields 1 then throws "boom") }.
import { WebSocketServer } from "ws";
import { useServer } from "graphql-ws/use/ws";
import { buildSchema } from "graphql";
import { listening, log, num, serverArgs, sleep } from "../lib/wire.mjs";

const opts = serverArgs();
const initTimeout = num(opts["init-timeout"], 1000);
const keepAlive = num(opts.keepalive, 12000);
const slowMs = num(opts.slow, 3000);

const schema = buildSchema(`
  type Query { hello: String, add(a: Int!, b: Int!): Int }
  type Subscription { countdown(from: Int!): Int, ticks: Int, boom: Int }
`);

const roots = {
  query: {
    hello: () => "world",
    add: ({ a, b }) => a + b,
  },
  subscription: {
    countdown: async function* ({ from }) {
      for (let i = from; i > 0; i--) {
        await sleep(20);
        yield { countdown: i };
      }
    },
    ticks: async function* () {
      for (let i = 1; ; i++) {
        await sleep(100);
        yield { ticks: i };
      }
    },
    boom: async function* () {
      yield { boom: 1 };
      await sleep(20);
      throw new Error("boom");
    },
  },
};

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
let nextId = 0;
wss.on("connection", (socket, request) => {
  socket.__id = ++nextId;
  log({ event: "connection", id: socket.__id, path: request.url, protocol: socket.protocol });
  socket.on("close", (code, reason) => log({ event: "ws_close", id: socket.__id, code, reason: String(reason) }));
  socket.on("pong", (data) => log({ event: "ws_pong", id: socket.__id, data: String(data) }));
});

useServer(
  {
    schema,
    roots,
    isProd: false, // close reasons carry the error message (graphql-ws's development default)
    connectionInitWaitTimeout: initTimeout,
    onConnect: async (ctx) => {
      const token = ctx.connectionParams && ctx.connectionParams.token;
      const id = ctx.extra.socket.__id;
      log({ event: "onConnect", id, token });
      if (token === "crash") throw new Error("auth backend down");
      if (token === "slow") await sleep(slowMs);
      if (token === "ping") {
        setTimeout(() => {
          const socket = ctx.extra.socket;
          if (socket.readyState !== socket.OPEN) return;
          socket.ping("keepalive");
          socket.send(JSON.stringify({ type: "ping", payload: { from: "server" } }));
        }, 50);
        return { user: "alice" };
      }
      if (token === "secret") return { user: "alice" };
      return false;
    },
    onPing: (ctx, payload) => log({ event: "onPing", id: ctx.extra.socket.__id, payload }),
    onPong: (ctx, payload) => log({ event: "onPong", id: ctx.extra.socket.__id, payload }),
    onSubscribe: (ctx, id, payload) => log({ event: "onSubscribe", id: ctx.extra.socket.__id, sub: id, query: payload.query }),
    onComplete: (ctx, id) => log({ event: "onComplete", id: ctx.extra.socket.__id, sub: id }),
    onClose: (ctx, code, reason) => log({ event: "onClose", id: ctx.extra.socket.__id, code, reason }),
  },
  wss,
  keepAlive,
);

wss.on("listening", () => listening(wss));
