// hopc dashboard: polls /api/status every 2 s and renders the client's
// link, its proxies and visitors; the Reload button posts /api/reload and
// shows what changed or why the new config was refused. Plain ES2017;
// helpers in common.js.
"use strict";

(function () {
  const { el, replace, empty, request, showErrors, updated, time, relative, poll } = window.hop;

  const INTERVAL_MS = 2000;

  async function tick() {
    let st;
    try {
      st = await request("api/status");
    } catch (e) {
      showErrors([e]);
      return;
    }
    if (!st || typeof st !== "object") {
      showErrors([new Error("GET api/status: the answer is not a JSON object")]);
      return;
    }
    renderStatus(st);
    renderProxies(Array.isArray(st.proxies) ? st.proxies : []);
    renderVisitors(Array.isArray(st.visitors) ? st.visitors : []);
    showErrors([]);
    updated();
  }

  function renderStatus(st) {
    const state = st.online ? "online" : "offline";
    const row = (label, id, value) => [el("dt", null, label), el("dd", { "data-testid": id }, value)];
    replace(
      "status",
      el(
        "dl",
        { class: "info" },
        row("Client ID", "status-client-id", st.clientID || "—"),
        row("Server", "status-server", st.server || "—"),
        row("Link", "status-online", el("span", { class: "badge " + state }, state)),
        row("Last error", "status-last-error", st.lastError ? el("span", { class: "err" }, st.lastError) : "—")
      )
    );
  }

  const badge = (s) => el("span", { class: "badge " + (s || ""), "data-testid": "state" }, s || "—");

  function retry(t) {
    const rel = relative(t);
    return rel ? [time(t), el("span", { class: "muted" }, " (" + rel + ")")] : "—";
  }

  function renderProxies(ps) {
    if (ps.length === 0) {
      replace("proxies", empty("proxies-empty", "No proxies configured."));
      return;
    }
    const cols = ["Proxy", "Type", "State", "Error", "Next retry", "Remote", "Local"];
    replace(
      "proxies",
      el(
        "table",
        { "data-testid": "proxies-table" },
        el("thead", null, el("tr", null, cols.map((h) => el("th", null, h)))),
        el(
          "tbody",
          null,
          ps.map((p) =>
            el(
              "tr",
              { "data-testid": "proxy-row", "data-proxy": p.name, "data-state": p.state || "" },
              el("td", { "data-testid": "proxy-name" }, p.name),
              el("td", null, p.type || "—"),
              el("td", null, badge(p.state)),
              el("td", { class: p.error ? "err" : null, "data-testid": "proxy-error" }, p.error || "—"),
              el("td", { "data-testid": "proxy-next-retry" }, retry(p.nextRetry)),
              el("td", null, p.remoteAddr || (p.domains || []).join(", ") || "—"),
              el("td", null, p.localAddr || "—")
            )
          )
        )
      )
    );
  }

  function renderVisitors(vs) {
    if (vs.length === 0) {
      replace("visitors", empty("visitors-empty", "No visitors configured."));
      return;
    }
    const cols = ["Visitor", "Type", "Server proxy", "Bind address", "State", "Error", "Path"];
    replace(
      "visitors",
      el(
        "table",
        { "data-testid": "visitors-table" },
        el("thead", null, el("tr", null, cols.map((h) => el("th", null, h)))),
        el(
          "tbody",
          null,
          vs.map((v) =>
            el(
              "tr",
              { "data-testid": "visitor-row", "data-visitor": v.name, "data-state": v.state || "" },
              el("td", { "data-testid": "visitor-name" }, v.name),
              el("td", null, v.type || "—"),
              el("td", null, v.serverName || "—"),
              el("td", null, v.bindAddr || "—"),
              el("td", null, badge(v.state)),
              el("td", { class: v.error ? "err" : null, "data-testid": "visitor-error" }, v.error || "—"),
              el("td", { "data-testid": "visitor-path" }, v.path || "—")
            )
          )
        )
      )
    );
  }

  // reload posts api/reload and shows the diff or the refusal.
  async function reload() {
    const button = document.getElementById("reload");
    const out = document.getElementById("reload-result");
    button.disabled = true;
    try {
      const r = await request("api/reload", { method: "POST" });
      const names = (a) => (Array.isArray(a) && a.length ? a.join(", ") : "none");
      out.className = "notice";
      out.dataset.outcome = "ok";
      out.textContent = "Reloaded: added " + names(r.added) + "; removed " + names(r.removed) + "; changed " + names(r.changed) + "; " + (r.unchanged || 0) + " unchanged.";
    } catch (e) {
      out.className = "notice failed";
      out.dataset.outcome = "error";
      out.textContent = "Reload refused, the running config stays: " + (e.detail || e.message);
    } finally {
      out.hidden = false;
      button.disabled = false;
    }
    await tick();
  }

  document.getElementById("reload").addEventListener("click", () => {
    reload().catch((e) => showErrors([e]));
  });
  poll(tick, INTERVAL_MS);
})();
