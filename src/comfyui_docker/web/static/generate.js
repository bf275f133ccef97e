// Generate: queue a built-in template, follow its progress, show its images.
(window.cdComponents = window.cdComponents || {}).generate = () => ({
  busy: false, promptId: null, status: "", node: "", nodeName: "", nodes: {}, done: {}, step: { value: 0, max: 0 },
  images: [], problems: [], fields: {}, missing: [], relay: true, sock: null, early: [],
  cid: "ui-" + Math.random().toString(36).slice(2) + Date.now().toString(36),
  init() {
    this.relay = this.$el.dataset.relay === "true";
    cd.on("generation", (d) => {
      if (d.prompt_id && d.prompt_id === this.promptId) this.frame(d.kind, d.payload || {});
      else if (d.prompt_id && this.busy && !this.promptId) this.early.push([d.prompt_id, d.kind, d.payload || {}]);
      // The queue emptied but our prompt's frames never came (e.g. queued before the relay
      // connected): the history is the record, ask it once.
      const q = d.kind === "status" && d.payload && d.payload.status && d.payload.status.exec_info;
      if (q && q.queue_remaining === 0 && this.busy && this.promptId) this.finish(true);
    });
  },
  get overall() {
    const n = Object.keys(this.nodes).length;
    if (!n) return this.status === "done" ? 100 : 0;
    let sum = Object.keys(this.done).length;
    if (this.node && !this.done[this.node] && this.step.max) sum += this.step.value / this.step.max;
    return this.status === "done" ? 100 : Math.min(100, Math.floor((100 * sum) / n));
  },
  direct() { // ComfyUI's own socket through the proxy, when no relay runs in this process
    if (this.sock && this.sock.readyState <= 1) return Promise.resolve();
    return new Promise((ok) => {
      const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/comfyui/ws?clientId=" + this.cid);
      this.sock = ws;
      ws.onopen = () => ok();
      ws.onerror = () => ok();
      ws.onmessage = (ev) => {
        if (typeof ev.data !== "string") return;
        let m; try { m = JSON.parse(ev.data); } catch (_) { return; }
        const d = m.data || {};
        if (d.prompt_id && d.prompt_id === this.promptId) this.frame(m.type, d);
        else if (d.prompt_id && this.busy && !this.promptId) this.early.push([d.prompt_id, m.type, d]);
      };
    });
  },
  reset() {
    this.busy = true; this.status = "queued"; this.problems = []; this.fields = {}; this.missing = [];
    this.images = []; this.done = {}; this.node = ""; this.step = { value: 0, max: 0 }; this.promptId = null; this.early = [];
  },
  async queue(body) { // the one Generate route: POST /api/generate, one error shape
    try {
      if (!this.relay) await this.direct();
      const r = await cd.api("/api/generate", { method: "POST", json: Object.assign({ client_id: this.cid }, body), quiet: true });
      this.nodes = r.nodes || {};
      this.adopt(r.prompt_id);
    } catch (e) {
      this.busy = false; this.status = "error";
      const d = (e.body && e.body.error && e.body.error.details) || {};
      this.problems = d.problems && d.problems.length ? d.problems : [e.message];
      this.fields = d.fields || {};
      this.missing = d.missing || [];
    }
  },
  async submit(form) {
    this.reset();
    const values = Object.fromEntries(new FormData(form));
    const builtin = values.template; delete values.template;
    await this.queue({ builtin, values });
  },
  adopt(id) { // frames can arrive before the POST answers: replay the ones for our prompt
    this.promptId = id;
    const early = this.early; this.early = [];
    for (const [pid, kind, d] of early) if (pid === id) this.frame(kind, d);
  },
  async installPreset(id) {
    await cd.api("/api/presets/install", { method: "POST", json: { preset_id: id } });
    cd.toast("Installing " + id + ": follow it on the Models page, then queue again", "ok");
  },
  async interrupt() {
    await cd.api("/api/comfyui/interrupt", { method: "POST", json: { prompt_id: this.promptId } });
  },
  frame(kind, d) {
    if (kind === "execution_start") this.status = "running";
    else if (kind === "execution_cached") (d.nodes || []).forEach((n) => (this.done[n] = true));
    else if (kind === "executing") {
      if (d.node == null) return this.finish();
      if (this.node && this.node !== d.node) this.done[this.node] = true;
      this.status = "running"; this.node = d.node; this.nodeName = this.nodes[d.node] || ""; this.step = { value: 0, max: 0 };
    } else if (kind === "progress") { this.step = { value: d.value, max: d.max }; }
    else if (kind === "executed") {
      this.done[d.node] = true;
      for (const i of (d.output && d.output.images) || []) this.addImage(i);
    } else if (kind === "execution_success") this.finish();
    else if (kind === "execution_error") {
      this.status = "error"; this.busy = false;
      this.problems = [`Node #${d.node_id} (${d.node_type}) failed: ${(d.exception_message || "").trim()}`];
    } else if (kind === "execution_interrupted") { this.status = "interrupted"; this.busy = false; }
  },
  addImage(i) {
    const url = "/api/comfyui/view?" + new URLSearchParams({ filename: i.filename, subfolder: i.subfolder || "", type: i.type || "output" });
    if (!this.images.some((x) => x.url === url)) this.images.push({ url, filename: i.filename });
  },
  async finish(probe = false) {
    if (this.status === "done" || this.status === "error") return;
    let entry = null;
    try { // the history is the record: it has every image even if a frame was missed
      const h = await cd.api("/api/comfyui/history/" + this.promptId, { quiet: true });
      entry = h[this.promptId];
    } catch (e) { if (!probe) cd.toast("Finished, but the images could not be listed: " + e.message); }
    if (probe && !(entry && entry.status && entry.status.completed !== undefined)) return;
    if (entry && entry.status && entry.status.status_str === "error") {
      this.status = "error"; this.busy = false;
      if (!this.problems.length) this.problems = ["ComfyUI stopped this prompt with an error: see the ComfyUI log on the Pro page."];
      return;
    }
    this.status = "done"; this.busy = false; this.node = "";
    for (const out of Object.values((entry && entry.outputs) || {})) for (const i of out.images || []) this.addImage(i);
  },
});
Object.assign(window.cdComponents, {
  generate: ((base) => () => Object.assign(base(), {
    async installOfficial(name) {
      const wf = await cd.api(`/generate/official/${encodeURIComponent(name)}/workflow`);
      const r = await cd.api("/api/models/install-missing", { method: "POST", json: { workflow: wf } });
      const n = (r.tasks || []).length;
      cd.toast(n ? `Installing ${r.missing} model(s): follow the downloads on the Models page` : "Nothing to install", "ok");
      if (r.unresolved && r.unresolved.length) cd.toast(`${r.unresolved.length} model(s) have no known download`);
    },
    async runOfficial(name, form) {
      this.reset();
      const set = {};
      for (const [k, v] of new FormData(form)) set[k] = v;
      await this.queue({ template: name, set });
    },
  }))(window.cdComponents.generate),
});
