// hop dashboard helpers shared by hops.js and hopc.js (plain ES2017, no
// modules, no dependencies). Every request goes to the page's own origin,
// by a path relative to the page, so basic-auth credentials go along.
"use strict";

(function () {
  const SVGNS = "http://www.w3.org/2000/svg"; // an XML namespace name, never fetched

  // el builds an element: attrs sets attributes (class, data-testid, ...),
  // children are nodes or strings (added as text, never parsed as HTML).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  // svg builds an SVG element the same way.
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVGNS, tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function setAttrs(e, attrs) {
    if (!attrs) return;
    for (const k of Object.keys(attrs)) {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      e.setAttribute(k, v === true ? "" : String(v));
    }
  }

  function append(e, children) {
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      if (Array.isArray(c)) append(e, c);
      else e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
  }

  // replace puts children in place of the contents of the section body
  // with the given id.
  function replace(sectionId, ...children) {
    const body = document.querySelector("#" + sectionId + " > .body");
    body.textContent = "";
    append(body, children);
  }

  function empty(testid, text) {
    return el("p", { class: "empty", "data-testid": testid }, text);
  }

  // APIError is a failed request: what was asked, the HTTP status and the
  // server's own words (its JSON "error" or its text).
  class APIError extends Error {
    constructor(what, status, text) {
      super(what + ": " + (status ? "HTTP " + status + " " : "") + text);
      this.status = status;
      this.detail = text;
    }
  }

  // request fetches path (relative to the page) and returns the decoded
  // JSON, or throws an APIError.
  async function request(path, init) {
    const what = ((init && init.method) || "GET") + " " + path;
    // Resolved against the page without its user:password@ (a page opened
    // with user:pw@ in its URL would make fetch refuse the URL); the
    // browser still sends the credentials it authenticated the page with.
    const url = new URL(path, document.baseURI);
    url.username = "";
    url.password = "";
    let resp;
    try {
      resp = await fetch(url.href, Object.assign({ credentials: "same-origin", cache: "no-store" }, init || {}));
    } catch (e) {
      throw new APIError(what, 0, "the server did not answer (" + e.message + ")");
    }
    const text = await resp.text();
    let body = null;
    try {
      body = text === "" ? null : JSON.parse(text);
    } catch (e) {
      body = undefined;
    }
    if (!resp.ok) {
      const msg = body && typeof body.error === "string" ? body.error : text.trim() || resp.statusText;
      throw new APIError(what, resp.status, msg);
    }
    if (body === undefined) throw new APIError(what, resp.status, "the answer is not JSON");
    return body;
  }

  // settle runs request for every path and returns, per path, {value} or
  // {error}: one failing endpoint does not blank the others.
  function settle(paths) {
    return Promise.all(paths.map((p) => request(p).then((value) => ({ value }), (error) => ({ error }))));
  }

  // showErrors lists errors (strings or Errors) in the #errors banner, or
  // hides it when there are none.
  function showErrors(errors) {
    const box = document.getElementById("errors");
    box.textContent = "";
    for (const e of errors) box.appendChild(el("p", { "data-testid": "error" }, e && e.message ? e.message : String(e)));
    box.hidden = errors.length === 0;
  }

  function updated() {
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }

  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

  function bytes(n) {
    if (typeof n !== "number" || !isFinite(n)) return "—";
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) + " " + units[i];
  }

  function rate(n) {
    return typeof n === "number" && isFinite(n) ? bytes(n) + "/s" : "—";
  }

  // duration formats seconds as "3d 4h", "4h 5m", "5m 6s" or "6s".
  function duration(s) {
    if (typeof s !== "number" || !isFinite(s) || s < 0) return "—";
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + sec + "s";
    return sec + "s";
  }

  // parseTime returns the time of an RFC 3339 string in ms, or NaN (also
  // for Go's zero time).
  function parseTime(t) {
    if (typeof t !== "string" || t === "" || t.startsWith("0001-01-01")) return NaN;
    return Date.parse(t);
  }

  function time(t) {
    const ms = parseTime(t);
    return isNaN(ms) ? "—" : new Date(ms).toLocaleString();
  }

  // relative says how far t is from now: "in 5s" or "12s ago".
  function relative(t) {
    const ms = parseTime(t);
    if (isNaN(ms)) return "";
    const d = (ms - Date.now()) / 1000;
    return d >= 0 ? "in " + duration(d) : duration(-d) + " ago";
  }

  // poll calls fn now and every ms milliseconds after it settled.
  function poll(fn, ms) {
    const run = () => Promise.resolve().then(fn).catch((e) => showErrors([e])).then(() => setTimeout(run, ms));
    run();
  }

  window.hop = { el, svg, replace, empty, request, settle, showErrors, updated, bytes, rate, duration, parseTime, time, relative, poll, APIError };
})();
