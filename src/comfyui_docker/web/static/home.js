// Home: live gauges from system_status, live download list from task_state / download_progress.
(window.cdComponents = window.cdComponents || {}).home = () => ({
  tasks: {},
  cd: window.cd,
  init() {
    const el = document.getElementById("home-tasks-data");
    // the page's tasks are the service's (`id`); events name theirs `task_id`
    for (const t of JSON.parse((el && el.textContent) || "[]")) {
      const id = t.task_id || t.id;
      this.tasks[id] = Object.assign({}, t, { task_id: id });
    }
    const put = (d) => {
      const old = this.tasks[d.task_id] || {};
      const t = Object.assign({}, old, d);
      if (["done", "failed", "cancelled"].includes(t.state)) delete this.tasks[d.task_id];
      else this.tasks[d.task_id] = t;
    };
    cd.on("task_state", put);
    cd.on("download_progress", (d) => put(Object.assign({ state: "downloading" }, this.tasks[d.task_id], d)));
    // One ComfyUI per GPU: each card follows its service's state and its own queue.
    const TONES = { running: "ok", starting: "warn", stopping: "warn", backoff: "warn", stopped: "warn" };
    cd.on("service_state", (d) => {
      const badge = document.querySelector(`[data-instance="${d.service}"] [data-state]`);
      if (!badge) return;
      badge.textContent = String(d.state).replace(/_/g, " ");
      badge.className = "badge badge-" + (TONES[d.state] || (d.state === "not_installed" ? "" : "err"));
      const detail = document.querySelector(`[data-instance="${d.service}"] [data-detail]`);
      if (detail) detail.textContent = d.detail || "";
    });
    cd.on("generation", (d) => {
      if (d.kind !== "status" || !d.instance) return;
      const p = d.payload || {};
      const own = p.instance_queue_remaining != null ? p.instance_queue_remaining : ((p.status || {}).exec_info || {}).queue_remaining;
      const el = document.querySelector(`[data-instance="${d.instance}"] [data-queue]`);
      if (el && own != null) el.textContent = own;
    });
    cd.on("system_status", (d) => {
      const g = (key, p, text) => {
        const box = document.querySelector(`[data-gauge="${key}"]`);
        if (!box) return;
        const bar = box.querySelector("[data-bar]");
        if (bar) bar.style.width = Math.round(p) + "%";
        box.querySelector("[data-text]").textContent = text;
      };
      g("cpu", d.cpu_percent || 0, Math.round(d.cpu_percent || 0) + " %");
      if (d.memory && d.memory.total) g("memory", (100 * d.memory.used) / d.memory.total, cd.size(d.memory.used) + " / " + cd.size(d.memory.total));
      if (d.disk && d.disk.total) g("disk", (100 * d.disk.used) / d.disk.total, cd.size(d.disk.free) + " free of " + cd.size(d.disk.total));
      (d.gpus || []).forEach((x, i) => {
        const card = document.querySelector(`[data-instance][data-gpu="${x.index != null ? x.index : i}"] [data-vram]`);
        if (card && x.memory_total) card.textContent = cd.size(x.memory_used) + " / " + cd.size(x.memory_total);
        if (x.memory_total) g("gpu" + i, (100 * x.memory_used) / x.memory_total, cd.size(x.memory_used) + " / " + cd.size(x.memory_total) + (x.utilization != null ? " · " + x.utilization + " % busy" : ""));
      });
    });
  },
});
