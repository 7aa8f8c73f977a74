// The live job table: one keyed row per job, changes batched into one DOM pass per animation frame,
// rows moved (never rebuilt) when their order changes. Rows off screen cost little to update: they use
// content-visibility, so the browser skips their layout and paint until they scroll into view.

import { duration, percent, STATUS_LABELS, severityOf, TERMINAL, threshold, verdictWords } from "./format.js";

const ATTENTION_RANK = { running: 1, paused: 1, queued: 2, completed: 3, failed: 3, cancelled: 3 };

class Row {
  constructor(id, template) {
    this.id = id;
    this.el = template.content.firstElementChild.cloneNode(true);
    this.el.dataset.id = id;
    const part = (name) => this.el.querySelector(`[data-part="${name}"]`);
    this.parts = {
      id: part("id"),
      sub: part("sub"),
      stage: part("stage"),
      meter: part("meter"),
      fill: part("fill"),
      pct: part("pct"),
      eta: part("eta"),
      elapsed: part("elapsed"),
      status: part("status"),
      badge: part("badge"),
    };
    this.shown = {};
    this.key = null;
    this.hidden = false;
  }

  text(name, value) {
    if (this.shown[name] === value) return;
    this.shown[name] = value;
    this.parts[name].textContent = value;
  }

  attr(name, value) {
    if (this.shown[`@${name}`] === value) return;
    this.shown[`@${name}`] = value;
    if (value == null) delete this.el.dataset[name];
    else this.el.dataset[name] = value;
  }
}

export class JobTable {
  constructor({ store, tbody, template, onOpen, onCounts }) {
    this.store = store;
    this.tbody = tbody;
    this.template = template;
    this.onOpen = onOpen;
    this.onCounts = onCounts;
    this.rows = new Map();
    this.order = [];
    this.dirty = new Set();
    this.clockDirty = new Set();
    this.filter = { status: "", stalledOnly: false, text: "" };
    this.sort = "attention";
    this.activeId = null;
    this.openId = null;
    this.resetPending = false;
    this.frame = 0;
    store.subscribe((change) => this.#changed(change));
    tbody.addEventListener("click", (event) => this.#clicked(event));
    tbody.addEventListener("keydown", (event) => this.#keydown(event));
    tbody.addEventListener("focusin", (event) => {
      const row = event.target.closest("tr[data-id]");
      if (row) this.#activate(row.dataset.id, false);
    });
    setInterval(() => this.#tick(), 1000);
  }

  setFilter(filter) {
    this.filter = { ...this.filter, ...filter };
    this.#markAll();
  }

  setSort(sort) {
    this.sort = sort;
    this.resetPending = true;
    this.#schedule();
  }

  /** Mark the job whose panel is open, so its row stays highlighted. */
  setOpen(id) {
    const previous = this.rows.get(this.openId);
    if (previous) previous.el.removeAttribute("aria-current");
    this.openId = id;
    const row = this.rows.get(id);
    if (row) row.el.setAttribute("aria-current", "true");
  }

  focusRow(id) {
    const row = this.rows.get(id);
    if (row && !row.hidden) {
      this.#activate(id, true);
      return true;
    }
    return false;
  }

  visibleCount() {
    let count = 0;
    for (const row of this.rows.values()) if (!row.hidden) count += 1;
    return count;
  }

  #changed(change) {
    if (change.reset) this.resetPending = true;
    else for (const id of change.ids) this.dirty.add(id);
    this.#schedule();
  }

  #markAll() {
    for (const id of this.rows.keys()) this.dirty.add(id);
    this.#schedule();
  }

  #schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.#flush());
  }

  #tick() {
    for (const [id, row] of this.rows) {
      if (row.hidden) continue;
      const job = this.store.get(id);
      if (job && !TERMINAL.has(job.status)) this.clockDirty.add(id);
    }
    if (this.clockDirty.size) this.#schedule();
  }

  #flush() {
    this.frame = 0;
    const now = performance.now();
    const focused = document.activeElement?.closest?.("tr[data-id]")?.dataset.id ?? null;
    if (this.resetPending) this.#rebuild(now);
    else {
      for (const id of this.dirty) this.#update(id, now);
      for (const id of this.clockDirty) {
        const row = this.rows.get(id);
        const job = this.store.get(id);
        if (row && job && !this.dirty.has(id)) this.#renderClocks(row, job, now);
      }
    }
    this.dirty.clear();
    this.clockDirty.clear();
    this.resetPending = false;
    this.#keepFocus(focused);
    this.onCounts(this.#counts());
  }

  #rebuild(now) {
    const previous = this.rows;
    this.rows = new Map();
    for (const job of this.store.values()) {
      const row = previous.get(job.id) ?? new Row(job.id, this.template);
      this.rows.set(job.id, row);
      this.#render(row, job, now);
      row.key = this.#sortKey(job);
    }
    this.order = [...this.rows.keys()].sort((a, b) => compare(this.rows.get(a).key, this.rows.get(b).key));
    const fragment = document.createDocumentFragment();
    for (const id of this.order) fragment.append(this.rows.get(id).el);
    this.tbody.replaceChildren(fragment);
    this.setOpen(this.openId);
  }

  #update(id, now) {
    const job = this.store.get(id);
    let row = this.rows.get(id);
    if (!job) {
      if (row) this.#drop(row);
      return;
    }
    if (!row) {
      row = new Row(id, this.template);
      this.rows.set(id, row);
    }
    this.#render(row, job, now);
    const key = this.#sortKey(job);
    if (row.key === null || compare(row.key, key) !== 0 || !row.el.isConnected) this.#place(row, key);
  }

  #drop(row) {
    row.el.remove();
    this.rows.delete(row.id);
    const at = this.order.indexOf(row.id);
    if (at >= 0) this.order.splice(at, 1);
  }

  #place(row, key) {
    const at = this.order.indexOf(row.id);
    if (at >= 0) this.order.splice(at, 1);
    row.key = key;
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compare(this.rows.get(this.order[mid]).key, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    this.order.splice(lo, 0, row.id);
    const next = lo + 1 < this.order.length ? this.rows.get(this.order[lo + 1]).el : null;
    if (row.el.nextElementSibling !== next || !row.el.isConnected) this.tbody.insertBefore(row.el, next);
  }

  #sortKey(job) {
    const created = -(Date.parse(job.createdAt ?? job.startedAt ?? "") || 0);
    if (this.sort === "newest") return [created, job.id];
    const rank = job.stalled ? 0 : (ATTENTION_RANK[job.status] ?? 3);
    return [rank, created, job.id];
  }

  #matches(job) {
    const { status, stalledOnly, text } = this.filter;
    if (stalledOnly && !job.stalled) return false;
    if (status === "active" && TERMINAL.has(job.status)) return false;
    if (status && status !== "active" && job.status !== status) return false;
    if (!text) return true;
    const haystack = [job.id, job.stage, job.status, job.verdict, job.message, job.errorMessage]
      .filter(Boolean)
      .join(" ")
      .toLowerCase();
    return text
      .toLowerCase()
      .split(/\s+/)
      .every((word) => haystack.includes(word));
  }

  #render(row, job, now) {
    const hidden = !this.#matches(job);
    if (hidden !== row.hidden) {
      row.hidden = hidden;
      row.el.hidden = hidden;
    }
    const stalled = Boolean(job.stalled);
    row.attr("status", job.status);
    row.attr("stalled", stalled ? "true" : null);
    row.attr("severity", stalled ? severityOf(job.verdict) : null);
    row.text("id", job.id);
    const sub = subline(job);
    if (row.shown.sub !== sub) row.parts.sub.title = sub;
    row.text("sub", sub);
    row.text("stage", job.stage || "–");
    const pct = Math.min(100, Math.max(0, job.percent ?? 0));
    if (row.shown.percent !== pct) {
      row.shown.percent = pct;
      row.parts.fill.style.setProperty("--p", String(pct / 100));
      row.parts.meter.setAttribute("aria-valuenow", String(Math.round(pct * 10) / 10));
    }
    row.text("pct", percent(job.percent));
    row.text("status", STATUS_LABELS[job.status] ?? job.status ?? "–");
    row.parts.badge.hidden = !stalled;
    this.#renderClocks(row, job, now);
  }

  #renderClocks(row, job, now) {
    row.text("eta", job.stalled && !TERMINAL.has(job.status) ? "stalled" : (duration(this.store.eta(job, now)) ?? "–"));
    row.text("elapsed", duration(this.store.elapsed(job)) ?? "–");
    if (job.stalled) {
      const since = duration(this.store.sinceProgress(job, now)) ?? "?";
      const limit = threshold(job.thresholdSeconds) ?? "?";
      row.text("badge", `${job.verdict ?? "stalled"} · ${since} / ${limit}`);
    }
  }

  #counts() {
    const counts = { total: 0, stalled: 0, visible: 0, queued: 0, running: 0, paused: 0 };
    Object.assign(counts, { completed: 0, failed: 0, cancelled: 0 });
    for (const job of this.store.values()) {
      counts.total += 1;
      if (job.stalled) counts.stalled += 1;
      if (job.status in counts) counts[job.status] += 1;
    }
    for (const [status, n] of Object.entries(this.store.omitted)) {
      counts.total += n;
      if (status in counts) counts[status] += n;
    }
    counts.visible = this.visibleCount();
    return counts;
  }

  #clicked(event) {
    const row = event.target.closest("tr[data-id]");
    if (!row) return;
    this.#activate(row.dataset.id, true);
    this.onOpen(row.dataset.id);
  }

  #keydown(event) {
    const row = event.target.closest("tr[data-id]");
    if (!row || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      this.onOpen(row.dataset.id);
      return;
    }
    const steps = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10, Home: -Infinity, End: Infinity };
    if (!(event.key in steps)) return;
    event.preventDefault();
    const visible = this.order.filter((id) => !this.rows.get(id).hidden);
    const here = visible.indexOf(row.dataset.id);
    const step = steps[event.key];
    const target = Math.min(visible.length - 1, Math.max(0, Number.isFinite(step) ? here + step : step > 0 ? visible.length - 1 : 0));
    if (visible[target]) this.#activate(visible[target], true);
  }

  #activate(id, focus) {
    if (this.activeId !== id) {
      const previous = this.rows.get(this.activeId);
      if (previous) previous.el.tabIndex = -1;
      this.activeId = id;
    }
    const row = this.rows.get(id);
    if (!row) return;
    row.el.tabIndex = 0;
    if (focus && document.activeElement !== row.el) row.el.focus({ preventScroll: false });
  }

  #keepFocus(focusedId) {
    // Moving a focused row in the DOM blurs it; give focus back so keyboard users keep their place.
    if (focusedId && document.activeElement === document.body && this.rows.has(focusedId)) {
      this.rows.get(focusedId).el.focus({ preventScroll: true });
    }
    const active = this.rows.get(this.activeId);
    if (!active || active.hidden) {
      const first = this.order.find((id) => !this.rows.get(id).hidden);
      if (first) this.#activate(first, false);
    } else active.el.tabIndex = 0;
  }
}

function compare(a, b) {
  for (let i = 0; i < a.length; i += 1) {
    if (a[i] < b[i]) return -1;
    if (a[i] > b[i]) return 1;
  }
  return 0;
}

function subline(job) {
  if (job.stalled) return verdictWords(job.verdict);
  if (job.unreadable) return "job.json cannot be read; showing its last good state";
  if (job.status === "failed") return job.errorMessage || verdictWords(job.verdict) || "Failed";
  if (job.status === "completed") return job.outputPath ? `Output: ${basename(job.outputPath)}` : "Completed";
  if (job.status === "cancelled") return job.message || "Cancelled";
  if (job.status === "queued") return job.message || "Waiting for a worker";
  return job.message || "";
}

function basename(path) {
  return path.split(/[\\/]/).pop();
}
