// sentinel-ws web: the recording in the browser. Plain DOM, no framework.
// Every recorded value reaches the page through textContent (el() below), never as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const main = () => document.getElementById("main");
let summary = null;
let refresh = null; // what the live stream calls when the recording changed

// -- small helpers -------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "style") Object.assign(node.style, value); // CSSOM: allowed by the page's CSP
    else if (key === "class") node.setAttribute("class", value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function get(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function clock(ts, withDate) {
  if (ts === null || ts === undefined) return "-";
  const d = new Date(ts * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  return withDate ? `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}` : time;
}

function seconds(s) {
  if (s === null || s === undefined) return "-";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function size(n) {
  if (n === null || n === undefined) return "-";
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

function badge(category) {
  const name = category ?? "pending"; // a session's category is null until it is classified
  return el("span", { class: `badge cat-${name}`, title: (summary && summary.kinds[name]) || "" }, name);
}

function duration(s) {
  return s.ended_at === null || s.ended_at === undefined ? null : s.ended_at - s.started_at;
}

// A page load: what the page is, in words (its document, or its sockets opened together).
function pageWords(p) {
  const doc = p.document
    ? [el("span", { class: "mono" }, p.document), p.loaded_through_proxy ? " (loaded through the proxy)" : ""]
    : el("span", { class: "dim" }, "no document load seen: sockets opened together");
  return [el("a", { href: `#/chains?page_id=${p.id}`, title: "This page's reconnect chain" }, `Page ${p.id}`), " · ", doc];
}

function categoryCounts(counts) {
  return Object.entries(counts || {}).map(([c, n]) => [badge(c), n > 1 ? ` ×${n} ` : " "]);
}

function params(hash) {
  const [path, query] = hash.replace(/^#/, "").split("?");
  return { path: path || "/", query: new URLSearchParams(query || "") };
}

function go(path, query) {
  const text = query && [...query].length ? `?${query}` : "";
  location.hash = `#${path}${text}`;
}

function arrow(direction) {
  return direction === "c2s" ? "→" : direction === "s2c" ? "←" : direction;
}

// -- the sessions list ---------------------------------------------------------------

async function sessionsPage(query) {
  const page = await get(`api/sessions?${query}`);
  const root = el("div");
  // While the recording is being classified the summary's failure count is 0 by default,
  // not a finding: say so instead of a false "0 failures".
  const failures = summary && (summary.classifying ? "classifying…" : `${summary.failures.toLocaleString()} failures`);
  const pages = summary && summary.pages !== null && summary.pages !== undefined ? ` on ${summary.pages.toLocaleString()} page${summary.pages === 1 ? "" : "s"}` : "";
  root.append(el("h1", {}, `${page.total.toLocaleString()} ${page.total === 1 ? "entry" : "entries"}`,
    summary ? el("span", { class: "dim", id: "summary-counts" }, `  (${summary.sessions.toLocaleString()} sessions${pages}, ${failures})`) : null));
  root.append(filtersForm(query));
  if (page.classifying) {
    root.append(el("p", { class: "dim", id: "classifying" }, `Classifying ${page.total.toLocaleString()} sessions: verdicts appear here when that is done.`));
  }
  if (page.classifying || (summary && summary.classifying)) {  // the summary may lag the page
    const shown = location.hash;
    setTimeout(async () => {
      if (location.hash !== shown) return;
      try {
        await loadSummary();
        await rerender();
      } catch (error) {
        stale(error); // the proxy stopping, say: keep what is shown, say why it is not fresh
      }
    }, 500);
  }
  const table = el("table", { id: "sessions" },
    el("thead", {}, el("tr", {},
      ["time", "client", "path", "status", "verdict", "closed by", "code", "duration"].map((h) => el("th", {}, h)),
      el("th", { class: "num" }, "frames →/←"), el("th", { class: "num" }, "bytes →/←"), el("th", {}, "recovery"))));
  const body = el("tbody");
  // Each page load's sessions under a row that says what the page is.
  const loads = page.page_loads || {};
  let current = null;
  page.rows.forEach((row, i) => {
    const pid = row.kind === "session" ? row.page : null;
    if (pid !== null && pid !== current && loads[pid]) {
      let here = 0;
      while (i + here < page.rows.length && page.rows[i + here].kind === "session" && page.rows[i + here].page === pid) here += 1;
      body.append(pageRow(loads[pid], row, here));
    }
    current = pid;
    body.append(row.kind === "http" ? httpRow(row) : sessionRow(row, pid !== null && loads[pid]));
  });
  table.append(body);
  root.append(table);
  if (!page.rows.length) root.append(el("p", { class: "dim" }, "Nothing matches these filters."));
  root.append(pager(page, query, "/"));
  return root;
}

// The row above a page's sessions: the page, its client, when it began, its sockets' verdicts.
function pageRow(p, first, here) {
  const continued = p.sessions[0] !== first.id;
  const of = here < p.sessions.length ? `${here} of ${p.sessions.length} sockets here` : `${p.sessions.length} socket${p.sessions.length === 1 ? "" : "s"}`;
  return el("tr", { class: "page-load", "data-page": p.id },
    el("td", { colspan: 11 },
      pageWords(p), continued ? el("span", { class: "dim" }, " (continued)") : null,
      " · ", p.client_addr || "?", el("span", { class: "dim" }, ` ${p.user_agent || ""}`),
      " · ", clock(p.began, true), " · ", of, ": ", categoryCounts(p.categories)));
}

function sessionRow(row, inPage) {
  const recovery = row.recovery ? (row.recovery.after === null ? "never" : seconds(row.recovery.after))
    : row.reconnect_gap !== null && row.reconnect_gap !== undefined ? `back ${seconds(row.reconnect_gap)}` : "";
  return el("tr", { class: `row${inPage ? " in-page" : ""}`, "data-id": row.id, "data-page": row.page, title: row.explanation || "", onclick: () => go(`/session/${row.id}`) },
    el("td", {}, el("a", { href: `#/session/${row.id}` }, clock(row.started_at, true))),
    el("td", {}, row.client_addr || ""),
    el("td", { class: "mono" }, row.path || ""),
    el("td", {}, row.handshake_status ?? ""),
    el("td", {}, badge(row.category)),
    el("td", {}, row.open ? "open" : row.closed_by || ""),
    el("td", {}, row.close_code ?? ""),
    el("td", { class: "num" }, row.open ? "open" : seconds(duration(row))),
    el("td", { class: "num" }, row.open ? "open" : `${row.frames_c2s ?? 0}/${row.frames_s2c ?? 0}`),
    el("td", { class: "num" }, row.open ? "" : `${size(row.bytes_c2s)}/${size(row.bytes_s2c)}`),
    el("td", {}, recovery));
}

function httpRow(row) {
  const target = `${row.method} ${row.path}${row.query ? `?${row.query}` : ""}`;
  return el("tr", { class: "http", "data-http": row.id },
    el("td", {}, clock(row.ts, true)),
    el("td", {}, row.client_addr || ""),
    el("td", { class: "mono" }, target),
    el("td", {}, row.status ?? ""),
    el("td", {}, badge("http")),
    el("td", { colspan: 6, class: "mono" }, (row.body || row.error || "").slice(0, 200)));
}

function filtersForm(query) {
  const counts = (summary && summary.categories) || {};
  const category = el("select", { name: "category" },
    el("option", { value: "" }, "every category"),
    el("option", { value: "failures" }, "failures only"),
    Object.entries(counts).map(([name, n]) => el("option", { value: name }, `${name} (${n})`)),
    summary && summary.http_failures ? el("option", { value: "http" }, `HTTP failures (${summary.http_failures})`) : null);
  category.value = query.get("category") || "";
  const field = (name, label, attrs) => el("label", {}, label,
    el("input", { name, value: query.get(name) || "", ...(attrs || {}) }));
  const local = (name) => {
    const ts = query.get(name);
    if (!ts) return "";
    const d = new Date(ts * 1000 - new Date().getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 19);
  };
  const since = el("input", { name: "since", type: "datetime-local", step: 1, value: local("since") });
  const until = el("input", { name: "until", type: "datetime-local", step: 1, value: local("until") });
  return el("form", {
    class: "filters",
    onsubmit: (event) => {
      event.preventDefault();
      const data = new FormData(event.target);
      const next = new URLSearchParams();
      for (const [key, value] of data) {
        if (!value) continue;
        next.set(key, key === "since" || key === "until" ? String(new Date(value).getTime() / 1000) : value);
      }
      go("/", next);
    },
  },
    el("label", {}, "verdict", category), field("path", "path"), field("client", "client"),
    field("page_id", "page", { size: 6, inputmode: "numeric" }),
    field("text", "text"), el("label", {}, "since", since), el("label", {}, "until", until),
    el("button", { type: "submit" }, "Filter"),
    el("a", { class: "button", href: "#/" }, "Clear"));
}

function pager(page, query, path) {
  const to = (n) => {
    const next = new URLSearchParams(query);
    next.set("page", n);
    return `#${path}?${next}`;
  };
  return el("div", { class: "pager" },
    page.page > 1 ? el("a", { class: "button", href: to(page.page - 1) }, "← newer") : null,
    el("span", { class: "dim" }, `page ${page.page} of ${page.pages}`),
    page.page < page.pages ? el("a", { class: "button", href: to(page.page + 1) }, "older →") : null);
}

// -- one session ---------------------------------------------------------------------

async function sessionPage(id, query) {
  const [info, found] = await Promise.all([get(`api/sessions/${id}`), get(`api/sessions/${id}/messages`)]);
  const s = info.session;
  const root = el("div", { id: "session" });
  const command = (text) => el("button", { type: "button", title: "Copy", onclick: () => copy(text) }, text);
  root.append(el("h1", {}, `Session ${s.id} `, el("span", { class: "mono" }, s.path || ""),
    el("span", { class: "dim" }, `  from ${s.client_addr || "?"}`)));
  root.append(el("p", {},
    info.previous ? el("a", { class: "button", href: `#/session/${info.previous}` }, `← this client's previous (${info.previous})`) : null, " ",
    info.next ? el("a", { class: "button", href: `#/session/${info.next}` }, `this client's next (${info.next}) →`) : null, " ",
    el("a", { class: "button", href: `api/sessions/${s.id}/export?format=har`, download: `session-${s.id}.har` }, "HAR"), " ",
    el("a", { class: "button", href: `api/sessions/${s.id}/export?format=jsonl`, download: `session-${s.id}.jsonl` }, "JSONL"), " ",
    command(`sentinel-ws show ${s.id}`), " ", command(`sentinel-ws replay --session ${s.id}`)));
  if (info.page) root.append(pageLine(info.page, s.id));
  root.append(verdictBox(info));
  const messages = found.messages;
  const detail = el("div", { class: "detail", id: "detail" }, el("span", { class: "dim" }, "Click a message for its payload."));
  const view = { s, info, messages, decoder: found.decoder, detail, selected: null };
  root.append(el("h2", {}, `Timeline (${messages.length} message${messages.length === 1 ? "" : "s"})`, found.decoder ? el("span", { class: "dim" }, `, ${found.decoder} decoded`) : null));
  root.append(closeStory(s, messages));
  const timelineBox = el("div");
  const listBox = el("div");
  root.append(timelineBox, detail, handshake(s), el("h2", {}, "Messages"), listBox);
  const draw = () => {
    timelineBox.replaceChildren(timeline(view));
    listBox.replaceChildren(messageTable(view));
  };
  const wanted = Number(query.get("frame"));
  view.selected = (wanted && messages.find((m) => m.id === wanted)) || null;
  draw();
  if (view.selected) showDetail(view, view.selected);
  if (found.open) {
    refresh = async () => {
      const last = view.messages.length ? view.messages[view.messages.length - 1].id : 0;
      const more = await get(`api/sessions/${id}/messages?after=${last}`);
      view.messages.push(...more.messages);
      if (!more.open) return render(); // it closed: show its ending and verdict
      if (more.messages.length) draw();
    };
  }
  return root;
}

// The session's page: its document, and each of its sockets with its verdict.
function pageLine(p, here) {
  return el("p", { id: "page" }, pageWords(p), " · sockets: ",
    p.sessions.map((id) => [id === here ? el("strong", {}, String(id)) : el("a", { href: `#/session/${id}` }, String(id)),
      " ", badge(p.verdicts[id]), " "]),
    " · ", el("a", { href: `#/?page_id=${p.id}` }, "in the list"));
}

function copy(text) {
  if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
}

function verdictBox(info) {
  const v = info.verdict;
  if (!v) return el("div", { class: "verdict" }, "Verdict pending: the session is newer than the last classification.");
  const d = info.disruption;
  return el("div", { class: `verdict ${v.failure ? "failure" : ""}`, id: "verdict" },
    el("div", {}, badge(v.category), " ", v.explanation),
    v.reconnect_gap !== null && v.reconnect_gap !== undefined ? el("div", {}, `The same client was back ${seconds(v.reconnect_gap)} later.`) : null,
    d && d.kind !== "navigation" ? el("div", {}, d.recovered ? `Recovered after ${seconds(d.recovered_after)} (${d.retries.length} refused retries, backoff: ${d.pattern}).` : "The client did not come back before the recording ended.") : null,
    v.evidence.length ? el("ul", {}, v.evidence.map((e) => el("li", {}, e))) : null,
    info.advice ? el("details", {}, el("summary", {}, info.advice.title),
      el("div", { class: "dim" }, "Likely causes"), el("ul", {}, info.advice.causes.map((c) => el("li", {}, c))),
      el("div", { class: "dim" }, "What to try"), el("ul", {}, info.advice.fixes.map((c) => el("li", {}, c)))) : null);
}

function headersTable(headers) {
  const rows = Array.isArray(headers) ? headers : Object.entries(headers || {});
  return el("table", { class: "headers" }, el("tbody", {}, rows.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", { class: "mono" }, v)))));
}

function handshake(s) {
  // Open for a refused handshake: then the headers are the story.
  return el("details", { id: "handshake", open: s.handshake_status !== 101 },
    el("summary", {}, el("h2", { class: "inline" }, "Handshake")),
    el("p", {}, `Status ${s.handshake_status ?? "?"}`, s.response_line ? el("span", { class: "mono" }, `  ${s.response_line}`) : null,
      `  ·  started ${clock(s.started_at, true)}`, s.ended_at ? `  ·  lasted ${seconds(s.ended_at - s.started_at)}` : "  ·  open",
      s.subprotocol ? `  ·  subprotocol ${s.subprotocol}` : "", s.query ? el("span", { class: "mono" }, `  ?${s.query}`) : null),
    s.error ? el("p", { class: "error" }, s.error) : null,
    el("div", { class: "cols" },
      el("div", {}, el("div", { class: "dim" }, "Request headers"), headersTable(s.request_headers)),
      el("div", {}, el("div", { class: "dim" }, "Response headers"), headersTable(s.response_headers))),
    s.handshake_body ? el("div", {}, el("div", { class: "dim" }, "Body of the refusal"), el("pre", {}, typeof s.handshake_body === "string" ? s.handshake_body : JSON.stringify(s.handshake_body))) : null);
}

function closeStory(s, messages) {
  const closes = messages.filter((m) => m.opcode === "close");
  if (!closes.length) {
    if (s.ended_at === null) return el("p", { class: "dim" }, "Still open.");
    return el("p", { id: "close-story" }, `No close frame: the connection was dropped by the ${s.closed_by || "?"} side (${s.close_code ?? "no code"}).`);
  }
  const first = closes[0];
  const reply = closes.find((m) => m.direction !== first.direction);
  const who = (d) => (d === "c2s" ? "the client" : "the server");
  const code = (m) => `${m.close_code ?? "no code"}${m.close_reason ? ` "${m.close_reason}"` : ""}`;
  let answer;
  if (!reply) answer = "the reply never came";
  else if (reply.forwarded === false) answer = `${who(reply.direction)} replied ${seconds(reply.ts - first.ts)} later, too late: the other side had left without waiting (a browser leaving a page does)`;
  else answer = `${who(reply.direction)} replied with ${code(reply)} ${seconds(reply.ts - first.ts)} later`;
  return el("p", { id: "close-story" }, `Close: ${who(first.direction)} sent ${code(first)} at +${seconds(first.ts - s.started_at)}; ${answer}.`);
}

function timeline(view) {
  const { s, messages, info } = view;
  const width = 1000, height = 170, left = 90, right = 20;
  const start = s.started_at;
  const lastTs = messages.length ? messages[messages.length - 1].ts : start;
  const end = Math.max(s.ended_at || lastTs, lastTs, start + 0.001);
  const x = (ts) => left + ((ts - start) / (end - start)) * (width - left - right);
  const lane = { c2s: 55, s2c: 115 };
  const svg = el("svg:svg", { class: "timeline", viewBox: `0 0 ${width} ${height}`, id: "timeline" });
  svg.append(el("svg:text", { x: 6, y: lane.c2s + 4 }, "client → server"), el("svg:text", { x: 6, y: lane.s2c + 4 }, "server → client"));
  for (const y of Object.values(lane)) svg.append(el("svg:line", { class: "lane", x1: left, x2: width - right, y1: y, y2: y }));
  // Silences longer than the idle threshold, as the classifier sees them.
  let previous = start;
  for (const m of [...messages, { ts: end }]) {
    if (m.ts - previous >= info.idle_timeout) {
      svg.append(el("svg:rect", { class: "idle", x: x(previous), y: 30, width: Math.max(1, x(m.ts) - x(previous)), height: 110 },
        el("svg:title", {}, `${seconds(m.ts - previous)} without a frame`)));
    }
    previous = m.ts;
  }
  const closes = messages.filter((m) => m.opcode === "close");
  for (const m of messages) {
    const y = lane[m.direction] || 85;
    const cx = x(m.ts);
    if (m.opcode === "close") {
      const other = m.direction === "c2s" ? lane.s2c : lane.c2s;
      svg.append(el("svg:path", { class: "close", d: `M${cx},${y} L${cx + 8},${other}` }),
        el("svg:text", { class: "close-label", x: cx + 4, y: m.direction === "c2s" ? 22 : 148 }, `close ${m.close_code ?? ""}`));
    }
    const shape = m.opcode === "ping" || m.opcode === "pong"
      ? el("svg:rect", { x: cx - 3, y: y - 3, width: 6, height: 6 })
      : el("svg:circle", { cx, cy: y, r: m.opcode === "close" ? 6 : 4.5 });
    shape.setAttribute("class", `mark ${m.direction} ${view.selected === m ? "selected" : ""}`);
    shape.dataset.id = m.id;
    shape.addEventListener("click", () => select(view, m));
    shape.append(el("svg:title", {}, `${m.opcode} ${size(m.size)} at +${seconds(m.ts - start)}`));
    svg.append(shape);
  }
  for (const f of info.faults) {
    const fx = x(f.ts);
    svg.append(el("svg:path", { class: "fault", d: `M${fx - 5},12 L${fx + 5},12 L${fx},22 Z` },
      el("svg:title", {}, `fault ${f.fault_id} ${f.action}: ${f.detail || f.spec || ""}`)));
  }
  if (!closes.length && s.ended_at) {
    svg.append(el("svg:text", { class: "close-label", x: x(end) - 80, y: 148 }, `dropped (${s.close_code ?? "?"})`));
  }
  svg.append(el("svg:text", { x: left, y: height - 4 }, "+0"),
    el("svg:text", { x: width - right, y: height - 4, "text-anchor": "end" }, `+${seconds(end - start)}`));
  return svg;
}

function preview(m) {
  if (m.decoded) return m.decoded.summary;
  if (m.opcode === "close") return `${m.close_code ?? ""} ${m.close_reason || ""}`;
  if (m.text != null) return m.text.slice(0, 160);
  return m.hex ? `${size(m.size)} binary: ${m.hex.slice(0, 47)}` : "";
}

function flags(m) {
  const out = [];
  if (m.source && m.source !== "client" && m.source !== "server") out.push(`sent by the ${m.source}`);
  if (m.forwarded === false) out.push("not forwarded");
  if (m.compressed) out.push("compressed");
  if (m.violation) out.push(`protocol: ${m.violation}`);
  if (m.fault) out.push(`fault ${m.fault[0]} ${m.fault[1]}`);
  if (m.truncated) out.push("payload cut in the recording");
  return out;
}

function messageTable(view) {
  const start = view.s.started_at;
  return el("table", { id: "messages" },
    el("thead", {}, el("tr", {}, ["+time", "dir", "opcode", "size", "frames", "", "payload"].map((h) => el("th", {}, h)))),
    el("tbody", {}, view.messages.map((m) => el("tr", {
      class: `row ${view.selected === m ? "selected" : ""}`, "data-id": m.id, onclick: () => select(view, m),
    },
    el("td", { class: "num" }, (m.ts - start).toFixed(3)),
    el("td", {}, arrow(m.direction)),
    el("td", {}, m.opcode),
    el("td", { class: "num" }, size(m.size)),
    el("td", { class: "num" }, m.frames),
    el("td", { class: "flags" }, flags(m).map((f) => el("span", {}, f))),
    el("td", { class: "mono" }, preview(m))))));
}

function select(view, m) {
  view.selected = m;
  document.querySelectorAll("#timeline .mark, #messages tr").forEach((node) => {
    node.classList.toggle("selected", m !== null && node.dataset.id === String(m && m.id));
  });
  if (m) showDetail(view, m);
}

function showDetail(view, m) {
  const payload = m.text != null ? pretty(m.text) : m.hex || "";
  view.detail.replaceChildren(
    el("div", {}, el("strong", {}, `${m.opcode} ${arrow(m.direction)} `),
      `${size(m.size)} at +${(m.ts - view.s.started_at).toFixed(3)} s (${clock(m.ts, true)}), message ${m.id}`,
      m.frames > 1 ? `, ${m.frames} frames (fin ${m.fin.join(",")})` : ""),
    el("div", { class: "flags" }, flags(m).map((f) => el("span", {}, f))),
    m.decoded ? el("div", {}, el("div", { class: "dim" }, `${m.decoded.protocol} ${m.decoded.kind}`), el("pre", { id: "decoded" }, JSON.stringify(m.decoded, null, 2))) : null,
    m.opcode === "close" ? el("p", {}, `Close code ${m.close_code ?? "none"}${m.close_reason ? `, reason "${m.close_reason}"` : ""}`) : null,
    el("div", { class: "dim" }, m.text != null ? "payload" : "payload (hex)"),
    el("pre", { id: "payload" }, payload),
    m.cut ? el("p", { class: "dim" }, "Shown in part: the page gets the first 256 KiB.") : null);
  // The page may not be in the document yet (a search result opening it): scroll once it is.
  requestAnimationFrame(() => {
    const row = document.querySelector(`#messages tr[data-id="${m.id}"]`);
    if (row) row.scrollIntoView({ block: "nearest" });
  });
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch (e) {
    return text;
  }
}

// -- reconnect chains ----------------------------------------------------------------

async function chainsPage(query) {
  const found = await get(`api/chains?${query}`);
  const root = el("div", { id: "chains" });
  root.append(el("h1", {}, `Reconnect chains: ${found.total.toLocaleString()} page${found.total === 1 ? "" : "s"}`));
  root.append(el("p", { class: "dim" }, "Each block is one page load (a tab's sockets opened by one document load, or opened together): one line per socket path, its sockets in order with the time between the end of one and the start of the next; then what came after, the same client's next page. Bar length grows with the duration; gaps after a failure are red."));
  const seen = [...new Set(found.chains.flatMap((c) => c.lanes.flatMap((l) => l.sessions.map((s) => s.category ?? "pending"))))];
  root.append(el("p", { class: "legend" }, seen.map((c) => [badge(c), " "])));
  const client = el("input", { name: "client", value: query.get("client") || "", placeholder: "address or browser" });
  root.append(el("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); go("/chains", new URLSearchParams(client.value ? { client: client.value } : {})); } },
    el("label", {}, "client", client), el("button", { type: "submit" }, "Filter"),
    query.get("page_id") ? el("a", { class: "button", href: "#/chains" }, "Every page") : null));
  for (const c of found.chains) {
    const block = el("div", { class: "page-chain", "data-page": c.id });
    block.append(el("div", { class: "client" }, pageWords(c), " · ", c.client_addr || "?",
      el("span", { class: "dim" }, `  ${c.user_agent || ""}  · ${clock(c.began, true)}`)));
    for (const lane of c.lanes) block.append(chainLane(lane));
    if (c.drawn < c.sessions.length) block.append(el("p", { class: "dim" }, `The first ${c.drawn} of its ${c.sessions.length} sockets.`));
    block.append(afterLine(c));
    root.append(block);
  }
  root.append(pager(found, query, "/chains"));
  return root;
}

function chainLane(lane) {
  const chain = el("div", { class: "chain" }, el("span", { class: "lane-path mono", title: lane.path }, lane.path || "/"));
  let previous = null;
  for (const s of lane.sessions) {
    if (s.gap_before !== null) {
      const width = Math.max(24, Math.min(140, 16 * Math.log10(1 + s.gap_before * 1000)));
      chain.append(el("div", { class: `gap ${previous && previous.failure ? "after-failure" : ""}`, style: { minWidth: `${width}px` } }, seconds(s.gap_before)));
    }
    const width = Math.max(6, Math.min(180, 20 * Math.log10(1 + (duration(s) || 0) * 1000)));
    chain.append(el("div", {
      class: `bar cat-${s.category ?? "pending"}`, style: { width: `${width}px` }, "data-id": s.id,
      title: `session ${s.id}: ${s.category ?? "pending"}, ${s.handshake_status ?? "?"}, ${s.open ? "open" : seconds(duration(s))}, ${s.path}`,
      onclick: () => go(`/session/${s.id}`),
    }));
    previous = s;
  }
  return chain;
}

// What came after a page: the same client's next page, how long after this one ended.
function afterLine(c) {
  const a = c.after;
  if (!a) {
    return el("p", { class: "after dim" }, c.ended_at === null ? "Still open." : "Then nothing more from this client in the recording.");
  }
  const when = a.gap === null ? "while this page was still open" : a.gap < 0 ? `${seconds(-a.gap)} before this page's last socket ended` : `${seconds(a.gap)} after this page's last socket ended`;
  return el("p", { class: "after" }, "Then, ", when, ": ", pageWords(a), " · ",
    a.paths.map((p) => el("span", { class: "mono" }, `${p} `)), categoryCounts(a.categories));
}

// -- search --------------------------------------------------------------------------

async function searchPage(query) {
  const q = query.get("q") || "";
  const root = el("div", { id: "search" });
  root.append(el("h1", {}, "Search messages"));
  const input = el("input", { name: "q", value: q, size: 50, placeholder: 'words, "a phrase", key:value' });
  root.append(el("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); go("/search", new URLSearchParams({ q: input.value })); } },
    el("label", {}, "query", input), el("button", { type: "submit" }, "Search")));
  root.append(el("p", { class: "dim" }, "Words match anywhere, whatever their case; AND, OR, NOT, \"phrases\" and prefix* as in SQLite FTS5; event_type:mission_updated matches JSON (and Socket.IO) messages holding that key and value."));
  if (!q) return root;
  let found;
  try {
    found = await get(`api/search?${new URLSearchParams({ q, session: query.get("session") || "" })}`);
  } catch (error) {
    root.append(el("p", { class: "error" }, error.message));
    return root;
  }
  root.append(el("p", {}, found.hits.length ? `${found.more ? "The newest " : ""}${found.hits.length} match${found.hits.length === 1 ? "" : "es"}` : "Nothing matches."));
  root.append(el("table", { id: "hits" },
    el("thead", {}, el("tr", {}, ["time", "session", "dir", "", "text"].map((h) => el("th", {}, h)))),
    el("tbody", {}, found.hits.map((h) => {
      const href = `#/session/${h.session_id}?frame=${h.id}`;
      return el("tr", { class: "row", onclick: () => { location.hash = href; } },
        el("td", {}, el("a", { href }, clock(h.ts, true))),
        el("td", {}, `${h.session_id} `, el("span", { class: "dim mono" }, h.path || "")),
        el("td", {}, arrow(h.direction)),
        el("td", {}, h.kind === "close" ? "close" : ""),
        el("td", { class: "mono" }, h.snippet.map(([piece, matched]) => (matched ? el("mark", {}, piece) : piece))));
    }))));
  return root;
}

// -- routing and the live stream -----------------------------------------------------

async function render() {
  refresh = null;
  const { path, query } = params(location.hash);
  const section = path.startsWith("/session/") ? "sessions" : path.startsWith("/chains") ? "chains" : path.startsWith("/search") ? "search" : "sessions";
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("here", a.dataset.nav === section));
  let view;
  try {
    if (path.startsWith("/session/")) view = await sessionPage(Number(path.split("/")[2]), query);
    else if (path.startsWith("/chains")) view = await chainsPage(query);
    else if (path.startsWith("/search")) view = await searchPage(query);
    else {
      view = await sessionsPage(query);
      if ((Number(query.get("page")) || 1) === 1) refresh = async () => { await loadSummary(); await rerender(); };
    }
  } catch (error) {
    view = el("p", { class: "error" }, `Could not load this page: ${error.message}`);
  }
  main().replaceChildren(view);
  document.body.dataset.ready = path; // tests wait for this
}

async function rerender() {
  const scroll = window.scrollY;
  await render();
  window.scrollTo(0, scroll);
}

async function loadSummary() {
  summary = await get("api/summary");
  document.getElementById("recording").textContent = `${summary.recording} · ${summary.sessions.toLocaleString()} sessions`;
}

const FOLLOWING = "Follows the recording as it is written";

// The page could not refresh: it keeps what it shows and says why it is not fresh.
function stale(error) {
  const badgeNode = document.getElementById("live");
  badgeNode.classList.remove("on");
  badgeNode.classList.add("stale");
  badgeNode.textContent = "not refreshed";
  badgeNode.title = `Could not refresh (${error.message}); trying again on the next change`;
}

function follow() {
  const stream = new EventSource("api/live");
  const badgeNode = document.getElementById("live");
  stream.onopen = () => badgeNode.classList.add("on");
  stream.onerror = () => badgeNode.classList.remove("on");
  let busy = false;
  stream.addEventListener("change", async () => {
    if (busy || !refresh) return;
    busy = true;
    try {
      await refresh();
      badgeNode.classList.replace("stale", "on");
      badgeNode.textContent = "live";
      badgeNode.title = FOLLOWING;
    } catch (error) {
      stale(error); // the proxy stopping, say
    } finally {
      busy = false;
    }
  });
}

window.addEventListener("hashchange", render);
window.addEventListener("DOMContentLoaded", async () => {
  try {
    await loadSummary();
  } catch (error) {
    main().replaceChildren(el("p", { class: "error" }, `Could not read the recording: ${error.message}`));
    return;
  }
  await render();
  follow();
});
