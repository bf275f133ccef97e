// Nodes: the image's and the volume's custom nodes; install from a git URL, update, remove,
// with each task's output pushed live over /ws (`node_task` events).
(window.cdComponents = window.cdComponents || {}).nodes = () => ({
  image: [], volume: [], layer: null, problem: "", seen: true, loading: true, tasks: {}, url: "", name: "",
  cd: window.cd,
  async init() {
    cd.on("node_task", (e) => this.event(e));
    await this.load();
  },
  async load() {
    try {
      const r = await cd.api("/api/nodes");
      this.image = r.image || []; this.volume = r.volume || []; this.layer = r.layer; this.problem = r.problem || "";
      this.seen = !!r.imports_seen;
      for (const t of r.tasks || []) if (t.state === "running" || !this.tasks[t.id]) this.tasks[t.id] = t;
    } finally { this.loading = false; }
  },
  running() { return Object.values(this.tasks).filter((t) => !t.hidden).sort((a, b) => b.started - a.started); },
  importText(n) {
    return { ok: "imported", failed: "import failed", not_loaded: "not loaded: restart ComfyUI", unknown: "no ComfyUI start seen" }[n.import.state] || n.import.state;
  },
  packagesText(n) {
    const s = n.packages ? n.packages.state : "";
    return { ok: "packages ok", failed: "packages failed", unchecked: "packages not checked yet" }[s] || "packages ?";
  },
  tone(state) {
    return { ok: "badge-ok", done: "badge-ok", failed: "badge-err", running: "badge-warn", unchecked: "badge-warn", not_loaded: "badge-warn" }[state] || "";
  },
  event(e) {
    const t = this.tasks[e.task_id] || (this.tasks[e.task_id] = { id: e.task_id, action: e.action, name: e.name, lines: [], started: Date.now() / 1000 });
    t.state = e.state; t.error = e.error;
    if (e.line) { t.lines = [...(t.lines || []), e.line].slice(-200); }
    if (e.state === "done" || e.state === "failed") {
      cd.toast(`${e.action} ${e.name}: ${e.state}${e.error ? " — " + e.error : ""}`, e.state === "done" ? "ok" : "err");
      this.load();
    }
  },
  forget(t) { t.hidden = true; },
  track(t) { this.tasks[t.id] = Object.assign(this.tasks[t.id] || {}, t); },
  async install() {
    const json = { source: this.url.trim() };
    if (this.name.trim()) json.name = this.name.trim();
    this.track(await cd.api("/api/nodes/install", { method: "POST", json }));
    this.url = ""; this.name = "";
  },
  async update(n) {
    this.track(await cd.api("/api/nodes/" + encodeURIComponent(n.name) + "/update", { method: "POST", json: {} }));
  },
  async remove(n) {
    if (!confirm(`Remove ${n.name} from the volume? Its packages stay in the layer.`)) return;
    this.track(await cd.api("/api/nodes/" + encodeURIComponent(n.name), { method: "DELETE" }));
  },
});
