// Action Cable client scenarios: the real @rails/actioncable consumer, with `ws` as its
// WebSocket adapter and no-op global addEventListener/removeEventListener (its
// ConnectionMonitor listens for "visibilitychange"); nothing else of the DOM is needed for a
// ws:// URL.
//
//   node client.mjs SCENARIO WS_URL      (WS_URL e.g. ws://127.0.0.1:PORT/cable)
//
//   ok                       token=secret: welcome, subscribe ChatChannel (confirmed), perform
//                            "speak" (broadcast back), wait for a ping, unsubscribe, disconnect
//   unauthorized_disconnect  token=bad: the server sends {"type":"disconnect","reason":
//                            "unauthorized","reconnect":false} and closes; the client stops
//   subscription_rejected    token=secret: subscribe SecretChannel -> reject_subscription, disconnect
import { createRequire } from "node:module";
import WebSocket from "ws";
import { clientArgs, deferred, ev, fail, finish, trackedClass, within } from "../lib/wire.mjs";

globalThis.addEventListener ??= () => {};
globalThis.removeEventListener ??= () => {};
const ActionCable = createRequire(import.meta.url)("@rails/actioncable");
ActionCable.adapters.WebSocket = trackedClass(WebSocket);

const SCENARIOS = ["ok", "unauthorized_disconnect", "subscription_rejected"];
const { scenario, url } = clientArgs(SCENARIOS);
const result = { protocol: "actioncable", scenario };
const T = 4000;

const withToken = (token) => url + (url.includes("?") ? "&" : "?") + "token=" + token;

function subscribe(consumer, params) {
  const connected = deferred();
  const rejected = deferred();
  const disconnected = deferred();
  const received = [];
  const waiters = [];
  const subscription = consumer.subscriptions.create(params, {
    connected: (info) => { ev("connected", { channel: params.channel, ...info }); connected.resolve(); },
    disconnected: (info) => { ev("disconnected", { channel: params.channel, ...info }); disconnected.resolve(info); },
    rejected: () => { ev("rejected", { channel: params.channel }); rejected.resolve(); },
    received: (data) => {
      ev("received", { channel: params.channel, data });
      received.push(data);
      for (const w of waiters.splice(0)) w();
    },
  });
  const nextReceived = () => new Promise((resolve) => waiters.push(resolve));
  return { subscription, connected: connected.promise, rejected: rejected.promise, disconnected: disconnected.promise, nextReceived };
}

function pingSeen(consumer) {
  return new Promise((resolve) => {
    const poll = setInterval(() => {
      const ws = consumer.connection.webSocket;
      const wire = ws && ws.__tracked ? ws.__tracked.wire : [];
      if (wire.some((w) => w.dir === "in" && w.op === "text" && w.data.startsWith('{"type":"ping"'))) {
        clearInterval(poll);
        resolve();
      }
    }, 20);
  });
}

async function main() {
  switch (scenario) {
    case "ok": {
      const consumer = ActionCable.createConsumer(withToken("secret"));
      const chat = subscribe(consumer, { channel: "ChatChannel", room: "lobby" });
      await within(chat.connected, T, "confirm_subscription");
      const got = chat.nextReceived();
      chat.subscription.perform("speak", { message: "hi" });
      await within(got, T, "the broadcast");
      await within(pingSeen(consumer), T, "a ping");
      chat.subscription.unsubscribe();
      consumer.disconnect();
      break;
    }
    case "unauthorized_disconnect": {
      const consumer = ActionCable.createConsumer(withToken("bad"));
      const chat = subscribe(consumer, { channel: "ChatChannel", room: "lobby" });
      await within(chat.disconnected, T, "disconnected");
      ev("monitor", { running: consumer.connection.monitor.isRunning() });
      break;
    }
    case "subscription_rejected": {
      const consumer = ActionCable.createConsumer(withToken("secret"));
      const secret = subscribe(consumer, { channel: "SecretChannel" });
      await within(secret.rejected, T, "reject_subscription");
      consumer.disconnect();
      break;
    }
  }
  await finish(result);
}

main().catch((err) => fail(err));
