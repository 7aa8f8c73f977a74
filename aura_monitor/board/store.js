// The board's model of every job: the server's job objects, plus when each was received, so the clocks
// (stuck for, ETA, elapsed) keep ticking between events without asking the server again.

import { TERMINAL } from "./format.js";

export class JobStore {
  constructor() {
    this.jobs = new Map();
    this.listeners = new Set();
    // Server clock minus browser clock, in ms: elapsed times stay right when the browser's clock is off.
    this.skewMs = 0;
    // Finished jobs the server left out of its snapshot, by status: counted in the summary, not listed.
    this.omitted = {};
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(id) {
    return this.jobs.get(id);
  }

  get size() {
    return this.jobs.size;
  }

  values() {
    return this.jobs.values();
  }

  /** Replace everything with a snapshot (first connect, or a resync after the server restarted). */
  replace(jobs, omitted = {}) {
    this.omitted = { ...omitted };
    this.jobs.clear();
    for (const job of jobs) this.#put(job);
    this.#emit({ reset: true, ids: new Set(this.jobs.keys()) });
  }

  /** Merge server fields into one job; unknown jobs are created. Returns the merged job. */
  merge(id, fields) {
    const existing = this.jobs.get(id);
    const job = this.#put({ ...(existing ?? { id }), ...fields, id }, existing, fields);
    this.#emit({ reset: false, ids: new Set([id]), added: existing ? null : id });
    return job;
  }

  /** A job the snapshot left out came back (retried): it is listed from now on, no longer only counted. */
  unomit(status) {
    if (this.omitted[status] > 0) this.omitted[status] -= 1;
  }

  remove(id) {
    if (!this.jobs.delete(id)) return;
    this.#emit({ reset: false, ids: new Set([id]), removed: id });
  }

  /** The server's "now", as ISO-8601 or epoch ms, seen at this instant. */
  noteServerTime(at) {
    const ms = typeof at === "number" ? at : Date.parse(at);
    if (Number.isFinite(ms)) this.skewMs = ms - Date.now();
  }

  serverNow() {
    return Date.now() + this.skewMs;
  }

  /** Seconds since the job last progressed, now (null when terminal or unknown). */
  sinceProgress(job, now = performance.now()) {
    if (TERMINAL.has(job.status) || job.secondsSinceProgress == null) return null;
    return job.secondsSinceProgress + (now - job._rxProgress) / 1000;
  }

  /** Seconds left, counting down from the server's estimate; null while stalled or unknown. */
  eta(job, now = performance.now()) {
    if (TERMINAL.has(job.status) || job.stalled || job.etaSeconds == null) return null;
    return Math.max(0, job.etaSeconds - (now - job._rxEta) / 1000);
  }

  /** Seconds since the job started (or was created), up to its end for finished jobs. */
  elapsed(job) {
    const start = Date.parse(job.startedAt ?? job.createdAt ?? "");
    if (!Number.isFinite(start)) return null;
    const end = TERMINAL.has(job.status) ? Date.parse(job.completedAt ?? "") : this.serverNow();
    if (!Number.isFinite(end)) return null;
    return Math.max(0, (end - start) / 1000);
  }

  #put(job, previous, fields = job) {
    const now = performance.now();
    const stamped = { ...job };
    // Each clock reading counts from when it arrived; a change that did not carry one keeps the old stamp.
    const fresh = (key) => !previous || Object.hasOwn(fields, key);
    stamped._rxProgress = fresh("secondsSinceProgress") || previous._rxProgress == null ? now : previous._rxProgress;
    stamped._rxEta = fresh("etaSeconds") || previous._rxEta == null ? now : previous._rxEta;
    this.jobs.set(job.id, stamped);
    return stamped;
  }

  #emit(change) {
    for (const listener of this.listeners) listener(change);
  }
}
