// Models: preset grid with live install progress, installed files, disk usage.
(window.cdComponents = window.cdComponents || {}).presets = () => ({
  items: [], loading: true, error: "", q: "", type: "all", show: "all", variant: {}, tasks: {}, folders: {}, disk: {},
  cd: window.cd,
  async init() {
    const d = document.getElementById("disk-data");
    if (d) this.disk = JSON.parse(d.textContent);
    cd.on("task_state", (t) => this.update(t));
    cd.on("download_progress", (t) => this.update(Object.assign({ state: "downloading" }, t)));
    await Promise.all([this.load(), this.loadTasks(), this.loadFiles()]);
  },
  async load() {
    try {
      const r = await cd.api("/api/presets", { quiet: true });
      const list = Array.isArray(r.presets) ? r.presets : Object.entries(r.presets || {}).map(([id, p]) => Object.assign({ id }, p));
      this.items = list;
      for (const p of list) if (!(p.id in this.variant)) this.variant[p.id] = p.default_variant || this.variantNames(p)[0] || "";
      if (r.problems && r.problems.length) cd.toast("Catalog problems: " + r.problems.join("; "));
    } catch (e) {
      this.error = "The preset catalog is not available: " + e.message;
    } finally { this.loading = false; }
  },
  async loadTasks() {
    try {
      const r = await cd.api("/api/presets/tasks", { quiet: true });
      for (const t of r.tasks || []) if (!["done", "cancelled"].includes(t.state)) this.update(t);
    } catch (_) { /* the catalog error above already says why */ }
  },
  async loadFiles() {
    try {
      const r = await cd.api("/api/models", { quiet: true });
      this.folders = r.folders || {};
      if (r.disk) this.disk = r.disk;
    } catch (e) { cd.toast("Cannot list the model files: " + e.message); }
  },
  update(t) {
    const pid = t.preset_id;
    if (!pid) return;
    const id = t.task_id || t.id;
    const old = this.tasks[pid] && this.tasks[pid].task_id === id ? this.tasks[pid] : {};
    const n = Object.assign({}, old, t, { task_id: id });
    this.tasks[pid] = n;
    if (n.state === "done" && old.state !== "done") {
      const p = this.items.find((x) => x.id === pid);
      if (p) { p.installed = true; p.installed_state = "installed"; }
      this.loadFiles();
      setTimeout(() => { if (this.tasks[pid] && this.tasks[pid].task_id === id) delete this.tasks[pid]; }, 1500);
    }
  },
  get shown() {
    const q = this.q.trim().toLowerCase();
    return this.items.filter((p) => {
      if (this.type !== "all" && p.type !== this.type) return false;
      if (this.show === "installed" && !this.isInstalled(p)) return false;
      if (this.show === "available" && this.isInstalled(p)) return false;
      if (!q) return true;
      return [p.id, p.name, p.description, p.category, (p.tags || []).join(" ")].join(" ").toLowerCase().includes(q);
    });
  },
  req: (p) => p.requirements || {},
  errText(t) { const e = t && t.error; return !e ? "" : typeof e === "string" ? e : e.message + (e.hint ? " — " + e.hint : ""); },
  variantNames(p) { const v = p.variants || {}; return Array.isArray(v) ? v.map((x) => x.name || x) : Object.keys(v); },
  variantSize(p, name) {
    const v = Array.isArray(p.variants) ? p.variants.find((x) => x.name === name) : (p.variants || {})[name];
    const s = v && (v.size || v.total_size || v.bytes);
    return s ? " · " + cd.size(s) : "";
  },
  sizeOf(p) { return p.size || p.total_size || p.bytes || 0; },
  isInstalled(p) {
    const s = p.installed_state;
    if (s && typeof s === "object") return !!(s.installed || s.state === "installed");
    return s === "installed" || p.installed === true || p.installed === "installed";
  },
  installedText(p) {
    const s = p.installed_state && typeof p.installed_state === "object" ? p.installed_state.state : p.installed_state;
    if (this.isInstalled(p)) return "installed";
    return s === "partial" ? "partly installed" : "not installed";
  },
  installedTone(p) { return this.isInstalled(p) ? "badge-ok" : ""; },
  task(p) { return this.tasks[p.id]; },
  busy(p) { const t = this.tasks[p.id]; return !!t && ["queued", "pending", "downloading", "verifying", "running"].includes(t.state); },
  async install(p) {
    const variant = this.variantNames(p).length ? this.variant[p.id] || p.default_variant : null;
    const body = { preset_id: p.id };
    if (variant) body.variant = variant;
    const r = await cd.api("/api/presets/install", { method: "POST", json: body });
    if (!this.tasks[p.id] || this.tasks[p.id].task_id !== r.task_id) this.update({ task_id: r.task_id, preset_id: p.id, state: r.status || "queued", bytes_done: 0, bytes_total: 0 });
  },
  async cancel(p) {
    const t = this.tasks[p.id];
    await cd.api(`/api/presets/tasks/${encodeURIComponent(t.task_id)}/cancel`, { method: "POST" });
  },
  async uninstall(p) {
    if (!confirm(`Uninstall ${p.name}? Files no other installed preset uses are deleted.`)) return;
    const r = await cd.api(`/api/presets/${encodeURIComponent(p.id)}`, { method: "DELETE" });
    p.installed = false; p.installed_state = "not_installed";
    cd.toast(`Removed ${(r.removed || []).length} file(s)`, "ok");
    this.loadFiles();
  },
  async deleteFile(folder, file) {
    if (!confirm(`Delete models/${folder}/${file.name} (${cd.size(file.size)})?`)) return;
    const url = `/api/models/${encodeURIComponent(folder)}/${file.name.split("/").map(encodeURIComponent).join("/")}`;
    try {
      await cd.api(url, { method: "DELETE", quiet: true });
    } catch (e) {
      if (e.status !== 409 || !confirm(e.message + "\n\nDelete it anyway?")) { if (e.status !== 409) cd.toast(e.message); return; }
      await cd.api(url + "?force=true", { method: "DELETE" });
    }
    cd.toast(`Deleted ${folder}/${file.name}`, "ok");
    this.loadFiles();
  },
});
