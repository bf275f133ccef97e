// Pro: log tail with follow and search; ComfyUI queue with interrupt and delete; restart.
const cdc = (window.cdComponents = window.cdComponents || {});
cdc.logs = () => ({
  sources: [], source: "", lines: [], q: "", follow: true, error: "", max: 2000,
  async init() {
    try {
      this.sources = (await cd.api("/api/logs", { quiet: true })).sources || [];
      const pick = this.sources.find((s) => s.name === "comfyui") || this.sources[0];
      this.source = pick ? pick.name : "";
      if (!this.source) this.error = "No log files in workspace/logs yet.";
      else await this.load();
    } catch (e) { this.error = "Logs are not available: " + e.message; }
    cd.on("log_line", (d) => {
      if (!this.follow || d.source !== this.source) return;
      this.lines.push(d.line);
      if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
      this.$nextTick(() => this.bottom());
    });
  },
  get shown() {
    const q = this.q.trim().toLowerCase();
    return q ? this.lines.filter((l) => l.toLowerCase().includes(q)) : this.lines;
  },
  bottom() { const v = this.$refs.view; if (v && this.follow) v.scrollTop = v.scrollHeight; },
  async load() {
    if (!this.source) return;
    this.error = "";
    try {
      const r = await cd.api(`/api/logs/${encodeURIComponent(this.source)}?lines=500`, { quiet: true });
      this.lines = r.lines || [];
      this.$nextTick(() => this.bottom());
    } catch (e) { this.error = e.message; }
  },
});
cdc.queue = () => ({
  running: [], pending: [], error: "", instance: "",
  init() {
    this.load();
    cd.on("generation", (d) => { if (["execution_start", "execution_success", "execution_error", "execution_interrupted"].includes(d.kind)) this.load(); });
  },
  async load() {
    try {
      const r = await cd.api("/api/queue", { quiet: true });
      this.running = r.running || []; this.pending = r.pending || []; this.error = "";
    } catch (e) { this.error = "Queue unavailable: " + e.message; }
  },
  async interrupt() { await cd.api("/api/queue/interrupt", { method: "POST" }); cd.toast("Interrupt sent", "ok"); this.load(); },
  async remove(q) { await cd.api(`/api/queue/${encodeURIComponent(q.prompt_id)}`, { method: "DELETE" }); this.load(); },
  async restart() {
    // One ComfyUI per GPU: the chosen one (`instance`), or every one.
    const one = this.instance || "";
    const what = one ? one : "ComfyUI";
    if (!confirm(`Restart ${what}? Its running and queued prompts are lost.`)) return;
    await cd.api("/api/service/comfyui/restart" + (one ? "?instance=" + encodeURIComponent(one) : ""), { method: "POST" });
    cd.toast(`${what} is restarting`, "ok");
  },
});
