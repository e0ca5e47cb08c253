// hops dashboard: polls the hops JSON API every 2 s and renders server
// info, clients with their proxies, live traffic, session losses and the
// P2P success matrix. Plain ES2017; helpers in common.js.
"use strict";

(function () {
  const { el, svg, replace, empty, settle, showErrors, updated, bytes, rate, duration, time, parseTime, poll } = window.hop;

  const INTERVAL_MS = 2000;
  const WINDOW_MS = 5 * 60 * 1000; // of the throughput sparkline

  // Traffic state across polls.
  const prev = new Map(); // proxy key -> {bytesIn, bytesOut} at lastPoll
  let lastPoll = 0; // ms of the previous /api/proxies answer
  const history = []; // {t, in, out}: total bytes/s, oldest first

  const proxyKey = (p) => (p.user || "") + "\n" + (p.clientID || "") + "\n" + p.name;
  const clientKey = (c) => (c.user || "") + "\n" + (c.clientID || "");
  const clientName = (c) => (c.user ? c.user + "." : "") + (c.clientID || "(no client ID)");
  const num = (v) => typeof v === "number" && isFinite(v);

  // list returns the answer r as an array, or records why it is not one.
  function list(r, what, errors) {
    if (r.error) {
      errors.push(r.error);
      return null;
    }
    if (!Array.isArray(r.value)) {
      errors.push(new Error(what + ": the answer is not a JSON array"));
      return null;
    }
    return r.value;
  }

  async function tick() {
    const [info, clientsR, proxiesR, p2pR] = await settle(["api/serverinfo", "api/clients", "api/proxies", "api/p2p"]);
    const errors = [];
    if (info.error) errors.push(info.error);
    const clients = list(clientsR, "GET api/clients", errors);
    const proxies = list(proxiesR, "GET api/proxies", errors);
    const p2p = list(p2pR, "GET api/p2p", errors);
    const rates = proxies ? sample(proxies, Date.now()) : new Map();
    renderServer(info);
    renderClients(clients, proxies, clientsR.error || proxiesR.error);
    renderTraffic(proxies, rates);
    renderLosses(clients);
    renderP2P(p2p);
    showErrors(errors);
    updated();
  }

  // sample turns the byte counters into bytes/s since the previous poll,
  // per proxy, and appends the total to the sparkline history. A proxy
  // seen for the first time, or whose counters went back (a new
  // session), has no rate yet.
  function sample(proxies, now) {
    const rates = new Map();
    const dt = lastPoll ? (now - lastPoll) / 1000 : 0;
    let tin = 0, tout = 0;
    const next = new Map();
    for (const p of proxies) {
      const k = proxyKey(p);
      if (!num(p.bytesIn) || !num(p.bytesOut)) continue;
      next.set(k, { bytesIn: p.bytesIn, bytesOut: p.bytesOut });
      const q = prev.get(k);
      if (!q || dt <= 0) continue;
      const din = p.bytesIn - q.bytesIn, dout = p.bytesOut - q.bytesOut;
      if (din < 0 || dout < 0) continue;
      const r = { in: din / dt, out: dout / dt };
      rates.set(k, r);
      tin += r.in;
      tout += r.out;
    }
    prev.clear();
    for (const [k, v] of next) prev.set(k, v);
    if (dt > 0) history.push({ t: now, in: tin, out: tout });
    lastPoll = now;
    while (history.length && history[0].t < now - WINDOW_MS) history.shift();
    return rates;
  }

  function renderServer(r) {
    if (r.error || !r.value || typeof r.value !== "object") {
      replace("server", empty("server-error", "Server info unavailable: " + (r.error ? r.error.message : "not a JSON object")));
      return;
    }
    const s = r.value;
    const row = (label, id, value) => el("div", null, el("dt", null, label), el("dd", { "data-testid": id }, value));
    replace(
      "server",
      el(
        "dl",
        { class: "tiles" },
        row("Version", "info-version", s.version || "—"),
        row("Bind port", "info-bind-port", num(s.bindPort) ? s.bindPort : "—"),
        row("Started", "info-started", time(s.startedAt)),
        row("Uptime", "info-uptime", duration(s.uptimeSeconds)),
        row("Clients connected", "info-clients", num(s.clientsConnected) ? s.clientsConnected : "—"),
        row("Proxies", "info-proxies", num(s.proxies) ? s.proxies : "—"),
        row("Prometheus /metrics", "info-prometheus", s.enablePrometheus ? "on" : "off")
      )
    );
  }

  function renderClients(clients, proxies, err) {
    if (!clients && !proxies) {
      replace("clients", empty("clients-error", "Clients unavailable: " + (err ? err.message : "")));
      return;
    }
    // The proxies of each client, and proxies of clients not listed.
    const byClient = new Map();
    for (const p of proxies || []) {
      const k = clientKey(p);
      if (!byClient.has(k)) byClient.set(k, []);
      byClient.get(k).push(p);
    }
    const rows = (clients || []).slice();
    const known = new Set(rows.map(clientKey));
    for (const [k, ps] of byClient) {
      if (!known.has(k)) rows.push({ user: ps[0].user, clientID: ps[0].clientID, online: null, listed: false });
    }
    if (rows.length === 0) {
      replace("clients", empty("clients-empty", "No client has connected yet."));
      return;
    }
    rows.sort((a, b) => (b.online === true) - (a.online === true) || clientName(a).localeCompare(clientName(b)));
    const head = el("tr", null, ["Client", "State", "Address", "NAT class", "RTT", "Uptime", "Sessions", "Proxies"].map((h, i) => el("th", { class: i >= 4 && i <= 6 ? "num" : null }, h)));
    const body = [];
    for (const c of rows) {
      const state = c.online === true ? "online" : c.online === false ? "gone" : "unknown";
      const ps = byClient.get(clientKey(c)) || [];
      const names = proxies ? ps.map((p) => p.name) : Array.isArray(c.proxies) ? c.proxies : [];
      body.push(
        el(
          "tr",
          { class: "client", "data-testid": "client-row", "data-client-id": c.clientID || "", "data-user": c.user || "", "data-state": state },
          el("td", { "data-testid": "client-id" }, clientName(c)),
          el("td", null, el("span", { class: "badge " + state, "data-testid": "client-state" }, state)),
          el("td", { "data-testid": "client-addr" }, c.addr || "—"),
          el("td", { "data-testid": "client-nat" }, c.listed === false ? "—" : c.natClass || "unknown"),
          el("td", { class: "num", "data-testid": "client-rtt" }, c.online && num(c.heartbeatRttMs) ? c.heartbeatRttMs.toFixed(1) + " ms" : "—"),
          el("td", { class: "num", "data-testid": "client-uptime" }, c.online ? duration(c.uptimeSeconds) : "—"),
          el("td", { class: "num", "data-testid": "client-sessions" }, num(c.sessions) ? c.sessions : "—"),
          el("td", { "data-testid": "client-proxy-names" }, names.length ? names.map((n) => el("span", { class: "chip" }, n)) : el("span", { class: "muted" }, "none"))
        )
      );
      if (ps.length) body.push(el("tr", { class: "sub" }, el("td", { colspan: 8 }, proxyTable(ps))));
    }
    replace("clients", el("table", { "data-testid": "clients-table" }, el("thead", null, head), el("tbody", null, body)));
  }

  function proxyTable(ps) {
    const cols = ["Proxy", "Type", "Remote port", "State", "Conns open", "Conns total", "Bytes in", "Bytes out"];
    const head = el("tr", null, cols.map((h, i) => el("th", { class: i >= 4 ? "num" : null }, h)));
    const rows = ps
      .slice()
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) =>
        el(
          "tr",
          { "data-testid": "proxy-row", "data-proxy": p.name, "data-client-id": p.clientID || "" },
          el("td", { "data-testid": "proxy-name" }, p.name),
          el("td", null, p.type || "—"),
          el("td", null, num(p.remotePort) && p.remotePort > 0 ? p.remotePort : (p.domains || []).join(", ") || "—"),
          el("td", null, el("span", { class: "badge " + (p.state || ""), "data-testid": "proxy-state" }, p.state || "—")),
          el("td", { class: "num" }, num(p.connsOpen) ? p.connsOpen : "—"),
          el("td", { class: "num" }, num(p.connsTotal) ? p.connsTotal : "—"),
          el("td", { class: "num", "data-testid": "proxy-bytes-in" }, bytes(p.bytesIn)),
          el("td", { class: "num", "data-testid": "proxy-bytes-out" }, bytes(p.bytesOut))
        )
      );
    return el("table", { "data-testid": "client-proxies" }, el("thead", null, head), el("tbody", null, rows));
  }

  function renderTraffic(proxies, rates) {
    if (!proxies) {
      replace("traffic", empty("traffic-error", "Traffic unavailable: GET api/proxies failed."));
      return;
    }
    const last = history.length ? history[history.length - 1] : null;
    const totals = el(
      "div",
      { class: "legend" },
      el("span", null, el("span", { class: "swatch in" }), "in (toward hopc) ", el("b", { "data-testid": "total-in" }, last ? rate(last.in) : "—")),
      el("span", null, el("span", { class: "swatch out" }), "out (toward users) ", el("b", { "data-testid": "total-out" }, last ? rate(last.out) : "—"))
    );
    const parts = [totals, sparkline()];
    if (proxies.length === 0) {
      parts.push(empty("traffic-empty", "No proxies."));
    } else {
      const withRate = proxies.map((p) => ({ p, r: rates.get(proxyKey(p)) }));
      withRate.sort((a, b) => (b.r ? b.r.in + b.r.out : -1) - (a.r ? a.r.in + a.r.out : -1) || a.p.name.localeCompare(b.p.name));
      const head = el("tr", null, ["Proxy", "Client", "In/s", "Out/s"].map((h, i) => el("th", { class: i >= 2 ? "num" : null }, h)));
      const rows = withRate.map(({ p, r }) =>
        el(
          "tr",
          { "data-testid": "traffic-row", "data-proxy": p.name, "data-client-id": p.clientID || "" },
          el("td", null, p.name),
          el("td", { class: "muted" }, clientName(p)),
          el("td", { class: "num", "data-testid": "rate-in" }, r ? rate(r.in) : "—"),
          el("td", { class: "num", "data-testid": "rate-out" }, r ? rate(r.out) : "—")
        )
      );
      parts.push(el("table", { "data-testid": "traffic-table" }, el("thead", null, head), el("tbody", null, rows)));
    }
    replace("traffic", parts);
  }

  // sparkline draws the total bytes/s in and out over the last WINDOW_MS.
  function sparkline() {
    if (history.length < 2) return empty("sparkline-empty", "Collecting throughput samples (one every " + INTERVAL_MS / 1000 + " s)…");
    // The x axis spans the samples held, up to WINDOW_MS.
    const W = 600, H = 70, now = history[history.length - 1].t, t0 = history[0].t, span = Math.max(now - t0, 1);
    let max = 0;
    for (const h of history) max = Math.max(max, h.in, h.out);
    const top = max > 0 ? max * 1.1 : 1;
    const pts = (f) => history.map((h) => ((W * (h.t - t0)) / span).toFixed(1) + "," + (H - 2 - ((H - 4) * h[f]) / top).toFixed(1)).join(" ");
    return el(
      "div",
      null,
      svg(
        "svg",
        { class: "spark", viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", "data-testid": "sparkline", "data-samples": history.length, role: "img", "aria-label": "total throughput, last 5 minutes" },
        svg("polyline", { class: "in", points: pts("in"), "vector-effect": "non-scaling-stroke" }),
        svg("polyline", { class: "out", points: pts("out"), "vector-effect": "non-scaling-stroke" })
      ),
      el("div", { class: "legend muted" }, el("span", null, "last " + duration(span / 1000)), el("span", { "data-testid": "sparkline-peak" }, "peak " + rate(max)))
    );
  }

  // causeClass is the innermost part of a loss cause ("control stream
  // ended: heartbeat timeout" -> "heartbeat timeout"), to count alike
  // causes together; the full text stays in the timeline.
  function causeClass(cause) {
    const parts = String(cause || "unknown").split(": ");
    return parts[parts.length - 1].trim() || "unknown";
  }

  const palette = ["#c0392b", "#2a6fdb", "#d9480f", "#1f8a4c", "#8e44ad", "#b7791f", "#16a085", "#6b7480"];

  function renderLosses(clients) {
    if (!clients) {
      replace("losses", empty("losses-error", "Losses unavailable: GET api/clients failed."));
      return;
    }
    const losses = [];
    for (const c of clients) {
      for (const l of Array.isArray(c.losses) ? c.losses : []) {
        const t = parseTime(l.at);
        if (!isNaN(t)) losses.push({ t, at: l.at, cause: String(l.cause || "unknown"), cls: causeClass(l.cause), client: clientName(c) });
      }
    }
    if (losses.length === 0) {
      replace("losses", empty("losses-empty", "No session has been lost."));
      return;
    }
    losses.sort((a, b) => a.t - b.t);
    const counts = new Map();
    for (const l of losses) counts.set(l.cls, (counts.get(l.cls) || 0) + 1);
    const classes = [...counts.keys()].sort((a, b) => counts.get(b) - counts.get(a) || a.localeCompare(b));
    const colour = (cls) => palette[Math.min(classes.indexOf(cls), palette.length - 1)];
    const table = el(
      "table",
      { "data-testid": "loss-causes" },
      el("thead", null, el("tr", null, el("th", null, "Cause"), el("th", { class: "num" }, "Count"))),
      el(
        "tbody",
        null,
        classes.map((cls) => {
          const sw = el("span", { class: "swatch" });
          sw.style.backgroundColor = colour(cls);
          return el("tr", { "data-testid": "loss-cause-row", "data-cause": cls }, el("td", null, sw, cls), el("td", { class: "num", "data-testid": "loss-count" }, counts.get(cls)));
        })
      )
    );
    // The strip spans from the first loss to now.
    const W = 600, H = 34, t0 = losses[0].t, t1 = Math.max(Date.now(), losses[losses.length - 1].t + 1);
    const strip = svg(
      "svg",
      { class: "strip", viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", "data-testid": "loss-strip", role: "img", "aria-label": "session losses over time" },
      losses.map((l) =>
        svg("rect", { x: (((W - 3) * (l.t - t0)) / (t1 - t0)).toFixed(1), y: 3, width: 3, height: H - 6, fill: colour(l.cls), "data-testid": "loss-mark" }, svg("title", null, time(l.at) + " " + l.client + ": " + l.cause))
      )
    );
    const span = el("div", { class: "legend muted" }, el("span", null, time(losses[0].at)), el("span", null, "→ now"));
    const recent = losses.slice(-50).reverse();
    const timeline = el(
      "ol",
      { class: "timeline", "data-testid": "loss-timeline" },
      recent.map((l) => el("li", { "data-testid": "loss-item" }, el("span", { class: "muted" }, time(l.at) + " "), el("b", null, l.client), " — " + l.cause))
    );
    replace("losses", table, el("h3", null, "Timeline"), strip, span, el("h3", null, "Latest"), timeline);
  }

  function renderP2P(rows) {
    if (!rows) {
      replace("p2p", empty("p2p-error", "P2P tally unavailable: GET api/p2p failed."));
      return;
    }
    const nat = (s) => s || "unknown";
    const cells = new Map();
    for (const r of rows) {
      const k = nat(r.visitorNAT) + "\n" + nat(r.ownerNAT);
      const c = cells.get(k) || { attempts: 0, lan: 0, direct: 0, relay: 0, mapped: 0, tcp: 0 };
      for (const f of ["attempts", "lan", "direct", "relay", "mapped", "tcp"]) c[f] += num(r[f]) ? r[f] : 0;
      cells.set(k, c);
    }
    const visitors = [...new Set(rows.map((r) => nat(r.visitorNAT)))].sort();
    const owners = [...new Set(rows.map((r) => nat(r.ownerNAT)))].sort();
    let total = 0;
    for (const c of cells.values()) total += c.attempts;
    if (total === 0) {
      replace("p2p", empty("p2p-empty", "No P2P attempt yet."));
      return;
    }
    const head = el("tr", null, el("th", { class: "corner muted" }, "visitor ↓ owner →"), owners.map((o) => el("th", { "data-testid": "p2p-owner-nat" }, o)));
    const body = visitors.map((v) =>
      el(
        "tr",
        null,
        el("th", { "data-testid": "p2p-visitor-nat" }, v),
        owners.map((o) => {
          const c = cells.get(v + "\n" + o);
          if (!c || c.attempts === 0) return el("td", { class: "cell none", "data-testid": "p2p-cell", "data-visitor-nat": v, "data-owner-nat": o }, "—");
          const share = (c.lan + c.direct) / c.attempts;
          const td = el(
            "td",
            { class: "cell", "data-testid": "p2p-cell", "data-visitor-nat": v, "data-owner-nat": o, "data-share": share.toFixed(3), title: c.attempts + " attempts: " + c.lan + " LAN, " + c.direct + " direct (" + c.mapped + " mapped, " + c.tcp + " TCP), " + c.relay + " relay" },
            Math.round(share * 100) + "% (" + c.attempts + ")"
          );
          td.style.backgroundColor = "hsl(" + Math.round(120 * share) + ", 60%, 72%)";
          return td;
        })
      )
    );
    replace(
      "p2p",
      el("table", { class: "matrix", "data-testid": "p2p-matrix" }, el("thead", null, head), el("tbody", null, body)),
      el("p", { class: "muted" }, "Each cell: share of attempts that ended direct or on the LAN (attempts). " + total + " attempts in all.")
    );
  }

  poll(tick, INTERVAL_MS);
})();
