// STOMP over WebSocket with @stomp/stompjs (ws as the WebSocket).
// usage: node stomp_client.mjs SCENARIO WS_URL USER PASS
//   ok              CONNECT (login/passcode), SUBSCRIBE, SEND, MESSAGE, heart-beats, DISCONNECT+RECEIPT
//   bad_login       wrong passcode: the broker's ERROR frame, then the close
//   bad_destination SEND to an invalid destination: ERROR, then the close
// Prints one final JSON line of what it saw on the socket and exits (0 if the
// scenario went as expected, 1 otherwise).
import { readFileSync } from 'node:fs';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

const versionOf = (name) =>
  JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url))).version;
const [scenario, url, user, pass] = process.argv.slice(2);
const SCENARIOS = ['ok', 'bad_login', 'bad_destination'];
if (!SCENARIOS.includes(scenario) || !url) {
  console.error(`usage: stomp_client.mjs {${SCENARIOS.join('|')}} WS_URL USER PASS`);
  process.exit(2);
}

const t0 = Date.now();
const result = {
  client: `@stomp/stompjs ${versionOf('@stomp/stompjs')}, ws ${versionOf('ws')}`,
  scenario,
  url,
  offered_subprotocols: null,
  subprotocol: null,
  frames: [], // {dir: "out"|"in", t_ms, command, headers, body}; heart-beats are counted, not listed
  heartbeats: { sent: 0, received: 0, first_received_ms: null, first_sent_ms: null },
  connected_headers: null,
  error: null, // the ERROR frame: {message, headers, body}
  message: null, // the MESSAGE frame body received
  receipt: null,
  close: null, // {code, reason, was_clean, initiated_by}
  ws_error: null,
  server_kept_open_ms: null, // set when the server did not close within that time after an ERROR
  ok: false,
};

function parseFrames(text, dir) {
  // A WebSocket message of EOLs only is a heart-beat. Otherwise it holds one or
  // more frames, each ended by NUL and possibly followed by EOLs (RabbitMQ
  // ends its frames with "\0\n").
  const key = dir === 'in' ? 'received' : 'sent';
  if (/^(\r?\n)+$/.test(text)) {
    result.heartbeats[key] += 1;
    const firstKey = dir === 'in' ? 'first_received_ms' : 'first_sent_ms';
    if (result.heartbeats[firstKey] === null) result.heartbeats[firstKey] = Date.now() - t0;
    return;
  }
  let rest = text.replace(/^(\r?\n)+/, '');
  while (rest.length) {
    const end = rest.indexOf('\0');
    const raw = end >= 0 ? rest.slice(0, end) : rest;
    rest = end >= 0 ? rest.slice(end + 1) : '';
    const trailing = /^(\r?\n)*/.exec(rest)[0];
    rest = rest.slice(trailing.length);
    const sep = raw.search(/\r?\n\r?\n/);
    const head = sep >= 0 ? raw.slice(0, sep) : raw;
    const body = sep >= 0 ? raw.slice(sep).replace(/^\r?\n\r?\n/, '') : '';
    const [command, ...lines] = head.split(/\r?\n/);
    const headers = {};
    for (const line of lines) {
      const i = line.indexOf(':');
      if (i > 0 && !(line.slice(0, i) in headers)) headers[line.slice(0, i)] = line.slice(i + 1);
    }
    const frame = { dir, t_ms: Date.now() - t0, command, headers, body, after_nul: JSON.stringify(trailing) };
    result.frames.push(frame);
    if (dir === 'in') {
      if (command === 'CONNECTED') result.connected_headers = headers;
      if (command === 'ERROR') result.error = { message: headers.message ?? null, headers, body };
      if (command === 'MESSAGE') result.message = body;
      if (command === 'RECEIPT') result.receipt = headers['receipt-id'] ?? null;
    }
  }
}

const decode = (data) => (typeof data === 'string' ? data : Buffer.from(data).toString('utf8'));

let clientClosed = false;
let closedResolve;
const closed = new Promise((r) => (closedResolve = r));

class RecordingWebSocket extends WebSocket {
  constructor(address, protocols, options) {
    super(address, protocols, options);
    result.offered_subprotocols = protocols ?? null;
    this.on('open', () => (result.subprotocol = this.protocol || null));
    this.on('message', (data) => parseFrames(decode(data), 'in'));
    this.on('error', (err) => (result.ws_error = String(err && err.message)));
    this.on('close', (code, reason) => {
      result.close = {
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
    parseFrames(decode(data), 'out');
    return super.send(data, ...rest);
  }
  close(code, reason) {
    // ws calls close() itself to answer the peer's close frame: that one is the server's.
    if (!this._closeFrameReceived && this.readyState !== WebSocket.CLOSED && !this._closeFrameSent) clientClosed = true;
    return super.close(code, reason);
  }
}
globalThis.WebSocket = RecordingWebSocket;

function finish(ok) {
  result.ok = ok;
  console.log(JSON.stringify(result));
  process.exit(ok ? 0 : 1);
}
setTimeout(() => {
  result.timeout = true;
  finish(false);
}, 15000).unref();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Its own destination (amq.topic is shared with MQTT's topics and other runs).
const destination = `/topic/sentinel.stomp.${process.pid}`;

const client = new Client({
  brokerURL: url,
  connectHeaders: { login: user, passcode: scenario === 'bad_login' ? `${pass}-wrong` : pass, host: '/' },
  heartbeatIncoming: 1000,
  heartbeatOutgoing: 1000,
  reconnectDelay: 0, // never reconnect: one session per run
  debug: () => {},
});

client.onStompError = () => {}; // recorded from the socket
client.onWebSocketError = () => {};

const connected = new Promise((resolve) => (client.onConnect = resolve));

client.activate();

// The broker may keep the socket open after an ERROR (RabbitMQ 3.10 does):
// give it `ms` to close, then close from the client side.
async function serverCloseOrOurs(ms) {
  await Promise.race([closed, sleep(ms)]);
  if (!result.close) {
    result.server_kept_open_ms = ms;
    await client.deactivate(); // DISCONNECT+receipt if CONNECTED, else just a close
    await Promise.race([closed, sleep(3000)]);
  }
}

if (scenario === 'ok') {
  await Promise.race([connected, closed]);
  if (!result.connected_headers) finish(false);
  const got = new Promise((resolve) => {
    client.subscribe(destination, (msg) => resolve(msg.body), { id: 'sub-0' });
  });
  client.publish({ destination, body: 'hello from stompjs', headers: { 'content-type': 'text/plain' } });
  await Promise.race([got, sleep(5000)]);
  await sleep(2500); // let heart-beats flow both ways
  await client.deactivate(); // DISCONNECT with receipt; stompjs closes on RECEIPT
  await Promise.race([closed, sleep(3000)]);
  finish(result.message === 'hello from stompjs' && result.heartbeats.received > 0 &&
    result.heartbeats.sent > 0 && result.close !== null);
} else if (scenario === 'bad_login') {
  await serverCloseOrOurs(3000);
  finish(result.error !== null && result.close !== null && !result.connected_headers);
} else if (scenario === 'bad_destination') {
  await Promise.race([connected, closed]);
  if (!result.connected_headers) finish(false);
  client.publish({ destination: '/no-such-kind/sentinel', body: 'where does this go' });
  await serverCloseOrOurs(3000);
  finish(result.error !== null && result.close !== null);
}
