// Workflows: list, upload (drag and drop), rename, delete, run, check and install missing models.
(window.cdComponents = window.cdComponents || {}).workflows = () => ({
  items: [], loading: true, over: false, progress: {}, recent: [], cd: window.cd,
  async init() {
    cd.on("generation", (d) => {
      this.recent.push(d); if (this.recent.length > 300) this.recent.shift();
      this.gen(d);
    });
    cd.on("task_state", (t) => this.taskUpdate(t));
    cd.on("download_progress", (t) => this.taskUpdate(t));
    await this.load();
  },
  gen(d) {
      const w = this.items.find((x) => x.run && x.run.prompt_id === d.prompt_id);
      if (!w) return;
      const k = d.kind;
      if (k === "execution_start" || k === "executing") w.run.state = d.payload && d.payload.node === null ? "done" : "running";
      if (k === "execution_success") w.run.state = "done";
      if (k === "execution_error") { w.run.state = "error"; w.problems = [`${(d.payload || {}).node_type}: ${((d.payload || {}).exception_message || "").trim()}`]; }
      if (k === "execution_interrupted") w.run.state = "interrupted";
  },
  async load() {
    try { this.items = (await cd.api("/api/workflows")).workflows || []; } finally { this.loading = false; }
  },
  url(w, tail = "") { return "/api/workflows/" + encodeURIComponent(w.name) + tail; },
  async upload(files) {
    for (const f of files) {
      const send = (overwrite) => {
        const fd = new FormData(); fd.append("file", f, f.name);
        return cd.api("/api/workflows" + (overwrite ? "?overwrite=true" : ""), { method: "POST", body: fd, quiet: true });
      };
      try {
        await send(false);
      } catch (e) {
        if (e.status === 409 && confirm(`${f.name} exists. Replace it?`)) await send(true).catch((x) => cd.toast(`${f.name}: ${x.message}`));
        else if (e.status !== 409) { cd.toast(`${f.name}: ${e.message}`); continue; }
        else continue;
      }
      cd.toast(`Saved ${f.name}`, "ok");
    }
    const keep = Object.fromEntries(this.items.map((w) => [w.name, w]));
    await this.load();
    this.items = this.items.map((w) => Object.assign(keep[w.name] || {}, w));
  },
  async rename(w) {
    const name = prompt("New name", w.name);
    if (!name || name === w.name) return;
    const r = await cd.api(this.url(w, "/rename"), { method: "POST", json: { new_name: name } });
    Object.assign(w, r);
  },
  async remove(w) {
    if (!confirm(`Delete ${w.name}?`)) return;
    await cd.api(this.url(w), { method: "DELETE" });
    this.items = this.items.filter((x) => x !== w);
  },
  explain(e) { // the one error shape: readable lines in details.problems
    const d = (e.body && e.body.error && e.body.error.details) || {};
    return d.problems && d.problems.length ? d.problems : [e.message];
  },
  async run(w) {
    w.problems = [];
    try {
      const r = await cd.api(this.url(w, "/run"), { method: "POST", json: {}, quiet: true });
      w.run = { prompt_id: r.prompt_id, state: "queued" };
      for (const d of this.recent) if (d.prompt_id === r.prompt_id) this.gen(d); // frames that beat the answer
      cd.toast(`Queued ${w.name}`, "ok");
    } catch (e) {
      w.problems = this.explain(e);
      if (e.status === 400) this.check(w);
    }
  },
  async check(w) {
    const wf = await cd.api(this.url(w));
    w.workflow = wf;
    const r = await cd.api("/api/models/missing", { method: "POST", json: { workflow: wf } });
    w.missing = r.missing || [];
  },
  installable(m) {
    return !!m.install && (m.install.kind !== "url" || m.install.allowed);
  },
  source(m) {
    if (!m.install) return "no known source";
    if (m.install.kind === "preset") return "preset " + m.install.preset_id;
    return "from " + (m.install.host || "its URL");
  },
  async installMissing(w) {
    // A workflow from the internet chooses these URLs: say where they lead before fetching anything.
    const hosts = [...new Set(w.missing.filter((m) => this.installable(m) && m.install.kind === "url").map((m) => m.install.host))];
    if (hosts.length && !confirm(`Download this workflow's model files from ${hosts.join(", ")}?`)) return;
    const r = await cd.api("/api/models/install-missing", { method: "POST", json: { workflow: w.workflow } });
    w.tasks = (r.tasks || []).map((t) => t.id || t.task_id);
    for (const m of w.missing) if (this.installable(m)) this.progress[m.folder + "/" + m.name] = "queued";
    if (r.unresolved && r.unresolved.length) cd.toast(`${r.unresolved.length} model(s) have no known source`);
    if (r.refused && r.refused.length) cd.toast(`${r.refused.length} model(s) not downloaded: ${r.refused[0].why}`);
  },
  taskUpdate(t) {
    const id = t.task_id || t.id;
    for (const w of this.items) {
      if (!(w.tasks || []).includes(id) || !w.missing) continue;
      const label = t.state === "done" ? "installed" : (t.state || "downloading") + (t.bytes_total ? " " + cd.pct(t.bytes_done, t.bytes_total) + " %" : "");
      for (const m of w.missing) if (this.installable(m)) this.progress[m.folder + "/" + m.name] = label;
      if (t.state === "done") this.check(w);
    }
  },
});
