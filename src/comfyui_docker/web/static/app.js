// ComfyUI-Docker dashboard: failed requests shown to the user, CSRF on every change,
// one events WebSocket shared by the page, and the Alpine.js components of each section.
(() => {
  "use strict";
  const $ = (s, el = document) => el.querySelector(s);
  const csrf = () => ($('meta[name="csrf-token"]') || {}).content || "";

  // ---- toasts: every failure reaches the user ------------------------------------------
  function toast(msg, kind = "err") {
    const box = $("#toasts");
    if (!box) return alert(msg);
    const el = document.createElement("div");
    el.className = "toast rounded-md border px-3 py-2 text-sm shadow " +
      (kind === "ok" ? "border-green-300 bg-green-50 text-green-900" : "border-red-300 bg-red-50 text-red-900");
    el.setAttribute("role", kind === "ok" ? "status" : "alert");
    el.textContent = msg;
    el.title = "click to dismiss";
    el.onclick = () => el.remove();
    box.appendChild(el);
    setTimeout(() => el.remove(), kind === "ok" ? 4000 : 15000);
  }

  function errorText(status, body) {
    try {
      const j = JSON.parse(body);
      const e = j.error || j;
      if (typeof e === "string") return e;
      if (e.message) return e.message + (e.hint ? " — " + e.hint : "");
      if (j.detail) return typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail).slice(0, 300);
    } catch (_) { /* not JSON */ }
    const t = (body || "").replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim();
    return t.slice(0, 300) || "HTTP " + status;
  }

  function loginRedirect() {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
  }

  // fetch wrapper: JSON in and out, CSRF header, errors toasted and thrown.
  async function api(url, opts = {}) {
    const o = Object.assign({ credentials: "same-origin" }, opts);
    o.headers = Object.assign({ "X-CSRF-Token": csrf(), Accept: "application/json" }, opts.headers || {});
    if ("json" in opts) {
      o.body = JSON.stringify(opts.json);
      o.headers["Content-Type"] = "application/json";
      delete o.json;
    }
    let r;
    try {
      r = await fetch(url, o);
    } catch (e) {
      if (!opts.quiet) toast(`${o.method || "GET"} ${url}: the dashboard did not answer (${e.message})`);
      throw e;
    }
    if (r.status === 401 && !opts.quiet) loginRedirect();
    if (!r.ok) {
      const text = await r.text();
      const err = new Error(errorText(r.status, text));
      err.status = r.status;
      try { err.body = JSON.parse(text); } catch (_) { err.body = text; }
      if (!opts.quiet) toast(`${r.status}: ${err.message}`);
      throw err;
    }
    const ct = r.headers.get("content-type") || "";
    return ct.includes("json") ? r.json() : r;
  }

  document.addEventListener("htmx:configRequest", (e) => { e.detail.headers["X-CSRF-Token"] = csrf(); });
  document.addEventListener("htmx:responseError", (e) => {
    const x = e.detail.xhr;
    if (x.status === 401) return loginRedirect();
    toast(`${x.status}: ${errorText(x.status, x.responseText)}`);
  });
  document.addEventListener("htmx:sendError", (e) => {
    toast(`${(e.detail.requestConfig || {}).verb || "request"} ${e.detail.pathInfo ? e.detail.pathInfo.requestPath : ""}: the dashboard did not answer`);
  });
  window.addEventListener("unhandledrejection", (e) => { if (!(e.reason && e.reason.status)) toast(String(e.reason)); });

  // ---- events WebSocket -----------------------------------------------------------------
  const listeners = {};
  const on = (type, fn) => (listeners[type] = listeners[type] || []).push(fn);
  let backoff = 500;
  function connect() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    ws.onopen = () => { backoff = 500; store("live", true); };
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (_) { return; }
      for (const fn of (listeners[m.type] || []).concat(listeners["*"] || [])) fn(m.data || {}, m);
    };
    ws.onclose = (ev) => {
      store("live", false);
      if (ev.code === 4401 || ev.code === 1008) return; // refused: not logged in
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
  }
  const pending = {};
  function store(k, v) {
    if (window.Alpine && Alpine.store("cd")) Alpine.store("cd")[k] = v; else pending[k] = v;
  }

  // ---- formatting helpers ---------------------------------------------------------------
  const size = (n) => {
    if (n == null || isNaN(n)) return "?";
    const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0; n = +n;
    while (n >= 1024 && i < 4) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n.toFixed(0)) + " " + u[i];
  };
  const eta = (s) => s == null || !isFinite(s) ? "" : s < 60 ? Math.round(s) + " s" : s < 3600 ? Math.round(s / 60) + " min" : (s / 3600).toFixed(1) + " h";
  const pct = (a, b) => (b > 0 ? Math.min(100, Math.floor((100 * a) / b)) : 0);

  window.cd = { api, toast, on, size, eta, pct, csrf };

  document.addEventListener("alpine:init", () => {
    const main = $("#main") || { dataset: {} };
    Alpine.store("cd", Object.assign({ live: false, comfyui: main.dataset.comfyui || "", active: +(main.dataset.active || 0), tasks: {} }, pending));
    const s = Alpine.store("cd");
    on("hello", (d) => {
      if (d.comfyui && d.comfyui.state) s.comfyui = String(d.comfyui.state).replace(/_/g, " ");
      for (const t of d.tasks || []) s.tasks[t.task_id || t.id] = t.state;
      s.active = Object.values(s.tasks).filter((x) => ["queued", "downloading", "verifying"].includes(x)).length;
    });
    on("service_state", (d) => { if (d.service === "comfyui") s.comfyui = String(d.state).replace(/_/g, " "); });
    on("task_state", (d) => {
      s.tasks[d.task_id] = d.state;
      s.active = Object.values(s.tasks).filter((x) => ["queued", "downloading", "verifying"].includes(x)).length;
    });
    for (const [name, fn] of Object.entries(window.cdComponents || {})) Alpine.data(name, fn);
  });
  connect();
})();
