// MQTT over WebSocket with mqtt.js (ws underneath, subprotocol "mqtt").
// usage: node mqtt_client.mjs SCENARIO WS_URL USER PASS
//   ok_v311, ok_v5         CONNECT, SUBSCRIBE, PUBLISH (QoS 1), receive, PINGREQ/PINGRESP
//                          (keepalive 1 s), DISCONNECT
//   bad_password_v311      wrong password: CONNACK return code
//   bad_password_v5        wrong password: CONNACK reason code
//   takeover_v311, takeover_v5
//                          a second client with the same clientId; what the first one gets
// Prints one final JSON line of what it saw on the socket (every MQTT packet,
// with the hex of its first bytes) and exits (0 if the scenario went as
// expected, 1 otherwise).
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import WebSocket from 'ws';

const versionOf = (name) =>
  JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url))).version;

const [scenario, url, user, pass] = process.argv.slice(2);
const SCENARIOS = ['ok_v311', 'ok_v5', 'bad_password_v311', 'bad_password_v5', 'takeover_v311', 'takeover_v5'];
if (!SCENARIOS.includes(scenario) || !url) {
  console.error(`usage: mqtt_client.mjs {${SCENARIOS.join('|')}} WS_URL USER PASS`);
  process.exit(2);
}
const protocolVersion = scenario.endsWith('_v5') ? 5 : 4;
const t0 = Date.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const TYPES = [null, 'CONNECT', 'CONNACK', 'PUBLISH', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP', 'SUBSCRIBE',
  'SUBACK', 'UNSUBSCRIBE', 'UNSUBACK', 'PINGREQ', 'PINGRESP', 'DISCONNECT', 'AUTH'];

// Everything one client connection saw, from its own WebSocket.
function makeRecorder(name) {
  const rec = {
    name,
    offered_subprotocols: null,
    subprotocol: null,
    ws_messages: { sent: 0, received: 0 },
    packets: [], // {dir, t_ms, type, length, hex (first 24 bytes), ws_messages it spanned, code?}
    connack: null, // {code, session_present} ; code is the v3.1.1 return code or the v5 reason code
    disconnect: null, // a DISCONNECT from the server (MQTT 5): {reason_code}
    pings: { pingreq: 0, pingresp: 0 },
    received: null, // first PUBLISH payload received
    error: null, // what mqtt.js reported: {message, code}
    close: null, // {code, reason, was_clean, initiated_by}
  };
  const pending = { in: Buffer.alloc(0), out: Buffer.alloc(0) };
  // mqtt.js writes a packet in several pieces, one WebSocket message each:
  // count the messages each packet spans.
  const chunk = { in: 0, out: 0 };
  const start = { in: 1, out: 1 };
  let clientClosed = false;
  let closedResolve;
  rec.closed = new Promise((r) => (closedResolve = r));

  function feed(dir, data) {
    chunk[dir] += 1;
    let buf = Buffer.concat([pending[dir], data]);
    for (;;) {
      if (buf.length < 2) break;
      let len = 0, mul = 1, i = 1, done = false;
      for (; i < Math.min(buf.length, 5); i++) {
        len += (buf[i] & 0x7f) * mul;
        mul *= 128;
        if ((buf[i] & 0x80) === 0) { done = true; i++; break; }
      }
      if (!done || buf.length < i + len) break;
      const pkt = buf.subarray(0, i + len);
      buf = buf.subarray(i + len);
      const type = TYPES[pkt[0] >> 4];
      const entry = { dir, t_ms: Date.now() - t0, type, length: pkt.length, hex: pkt.subarray(0, 24).toString('hex'),
        ws_messages: chunk[dir] - start[dir] + 1 };
      start[dir] = buf.length ? chunk[dir] : chunk[dir] + 1;
      const body = pkt.subarray(i);
      if (type === 'CONNACK') {
        entry.code = body[1];
        rec.connack = { code: body[1], session_present: Boolean(body[0] & 1) };
      }
      if (type === 'DISCONNECT' && dir === 'in') {
        entry.code = body.length ? body[0] : 0;
        rec.disconnect = { reason_code: entry.code };
      }
      if (type === 'DISCONNECT' && dir === 'out') entry.code = body.length ? body[0] : 0;
      if (type === 'SUBACK') entry.code = body[body.length - 1];
      if (type === 'PINGREQ') rec.pings.pingreq += 1;
      if (type === 'PINGRESP') rec.pings.pingresp += 1;
      rec.packets.push(entry);
    }
    pending[dir] = Buffer.from(buf);
  }

  class RecordingWebSocket extends WebSocket {
    constructor(address, protocols, options) {
      super(address, protocols, options);
      rec.offered_subprotocols = protocols ?? null;
      this.on('open', () => (rec.subprotocol = this.protocol || null));
      this.on('message', (data) => {
        rec.ws_messages.received += 1;
        feed('in', Buffer.from(data));
      });
      this.on('close', (code, reason) => {
        rec.close = {
          code,
          reason: reason.toString(),
          was_clean: code !== 1006,
          initiated_by: clientClosed ? 'client' : 'server',
          t_ms: Date.now() - t0,
        };
        closedResolve();
      });
    }
    send(data, ...rest) {
      rec.ws_messages.sent += 1;
      feed('out', Buffer.from(data));
      return super.send(data, ...rest);
    }
    close(code, reason) {
      // ws calls close() itself to answer the peer's close frame: that one is the server's.
      if (!this._closeFrameReceived && !this._closeFrameSent && this.readyState !== WebSocket.CLOSED) clientClosed = true;
      return super.close(code, reason);
    }
    terminate() {
      if (this.readyState !== WebSocket.CLOSED && !this._closeFrameReceived) clientClosed = true;
      return super.terminate();
    }
  }
  rec.createWebsocket = (u, protocols, opts) => new RecordingWebSocket(u, protocols, opts.wsOptions);
  return rec;
}

function connect(rec, overrides = {}) {
  const client = mqtt.connect(url, {
    protocolVersion,
    username: user,
    password: pass,
    clientId: `sentinel-${process.pid}-${rec.name}`,
    clean: true,
    keepalive: 1,
    reconnectPeriod: 0, // one session per run
    connectTimeout: 5000,
    createWebsocket: rec.createWebsocket,
    ...overrides,
  });
  client.on('error', (err) => (rec.error = { message: String(err.message), code: err.code ?? null }));
  client.on('message', (topic, payload) => {
    if (rec.received === null) rec.received = { topic, payload: payload.toString() };
  });
  rec.connected = new Promise((resolve) => {
    client.once('connect', () => resolve(true));
    client.once('close', () => resolve(false));
    client.once('error', () => resolve(false));
  });
  return client;
}

const result = {
  library: `mqtt.js ${versionOf('mqtt')}, ws ${versionOf('ws')}`,
  scenario,
  url,
  protocol_version: protocolVersion,
  ok: false, // the scenario's expected outcome was observed (see README.md)
};

function strip(rec) {
  const { closed, connected, createWebsocket, name, ...rest } = rec;
  return rest;
}

function finish(ok, recs) {
  result.ok = ok;
  for (const rec of recs) result[rec.name] = strip(rec);
  console.log(JSON.stringify(result));
  process.exit(ok ? 0 : 1);
}

const main = makeRecorder(scenario.startsWith('takeover_') ? 'first' : 'client');
setTimeout(() => {
  result.timeout = true;
  finish(false, [main, ...(globalThis.second ? [globalThis.second] : [])]);
}, 15000).unref();

const ended = (client) => new Promise((r) => client.end(false, {}, r));

if (scenario.startsWith('ok_')) {
  const client = connect(main);
  if (!(await main.connected)) {
    await Promise.race([main.closed, sleep(3000)]);
    finish(false, [main]);
  }
  // Its own topic: RabbitMQ maps MQTT's / to the routing key's . on amq.topic, where
  // STOMP's /topic/ destinations live too; runs at the same time must not cross.
  const topic = `sentinel/mqtt/${process.pid}`;
  await client.subscribeAsync(topic, { qos: 1 });
  await client.publishAsync(topic, 'hello from mqtt.js', { qos: 1 });
  for (let i = 0; i < 50 && main.received === null; i++) await sleep(100);
  await sleep(2500); // keepalive 1 s: PINGREQ/PINGRESP while idle
  await ended(client); // DISCONNECT, then the socket closes
  await Promise.race([main.closed, sleep(3000)]);
  finish(main.received?.payload === 'hello from mqtt.js' && main.pings.pingresp > 0, [main]);
} else if (scenario.startsWith('bad_password_')) {
  const client = connect(main, { password: `${pass}-wrong` });
  await main.connected;
  await Promise.race([main.closed, sleep(3000)]);
  if (!main.close) {
    main.server_kept_open_ms = 3000;
    await ended(client);
    await Promise.race([main.closed, sleep(3000)]);
  }
  // How the broker said no: a CONNACK with a non-zero code, or a close before any CONNACK.
  if (main.connack && main.connack.code !== 0) result.refused = { by: 'connack', code: main.connack.code };
  else if (!main.connack && main.close?.initiated_by === 'server')
    result.refused = { by: 'close', code: main.close.code, reason: main.close.reason };
  else result.refused = null;
  // MQTT 3.1.1 return codes 4 (bad user name or password) / 5 (not authorized);
  // MQTT 5 reason codes 0x86 / 0x87. A v5 refusal must come as a CONNACK.
  finish(protocolVersion === 5 ? (main.connack?.code ?? 0) >= 0x80 : result.refused !== null, [main]);
} else if (scenario.startsWith('takeover_')) {
  const clientId = `sentinel-${process.pid}-same`;
  const first = connect(main, { clientId });
  const firstUp = await main.connected;
  const second = makeRecorder('second');
  globalThis.second = second;
  result.client_id = clientId;
  let secondClient = null;
  if (firstUp) {
    secondClient = connect(second, { clientId });
    await second.connected;
    await Promise.race([main.closed, sleep(5000)]); // the broker drops the first
    await sleep(300); // keep the second one open a moment, as a real client would
  } else {
    await Promise.race([main.closed, sleep(3000)]);
  }
  for (const [c, rec] of [[first, main], [secondClient, second]]) {
    if (c && !rec.close) {
      await ended(c);
      await Promise.race([rec.closed, sleep(3000)]);
    }
  }
  finish(firstUp && main.close?.initiated_by === 'server' && second.connack?.code === 0, [main, second]);
}
