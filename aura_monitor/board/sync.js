// From /api/events to the store: the `connected` snapshot replaces the table, every other event merges
// the fields it carries into its job (docs/api.md lists each event's payload).

const TERMINAL_EVENTS = new Set(["job-completed", "job-failed", "job-cancelled"]);

export class StreamSync {
  constructor(store, { onJobEvent, onSnapshot }) {
    this.store = store;
    this.onJobEvent = onJobEvent;
    this.onSnapshot = onSnapshot;
    this.snapshots = 0;
    this.replaying = 0;
  }

  apply(type, data) {
    if (!data || typeof data !== "object") return;
    if (type === "connected") return this.#connected(data);
    if (type === "heartbeat") {
      if (data.serverTime) this.store.noteServerTime(data.serverTime);
      return;
    }
    const id = data.jobId ?? data.job?.id;
    if (!id) return;
    if (this.replaying > 0) {
      // Missed events replayed after `connected`: its snapshot was taken after them and already holds them.
      this.replaying -= 1;
      return;
    }
    const fields = this.#fields(type, data);
    if (type === "job-status" && !data.discovered && data.previousStatus && !this.store.get(id)) {
      this.store.unomit(data.previousStatus);
    }
    if (fields === null) this.store.remove(id);
    else this.store.merge(id, fields);
    this.onJobEvent(id, type, data);
  }

  #connected(data) {
    if (data.serverTime) this.store.noteServerTime(data.serverTime);
    const jobs = Array.isArray(data.jobs) ? data.jobs : null;
    if (jobs === null) return;
    this.replaying = Number(data.replayed) || 0;
    // The server lists active and recent jobs and counts the older finished ones (docs/api.md, `omitted`).
    const omitted = data.omitted && typeof data.omitted === "object" ? data.omitted : {};
    this.store.replace(jobs, omitted);
    this.snapshots += 1;
    this.onSnapshot({ resync: Boolean(data.resync), first: this.snapshots === 1, count: jobs.length });
  }

  /** The job fields an event carries; null when the job is gone. */
  #fields(type, data) {
    const fields = {};
    for (const key of ["status", "stage", "percent", "attempt"]) if (key in data) fields[key] = data[key];
    const since = (at) => Math.max(0, (this.store.serverNow() - Date.parse(at)) / 1000);
    switch (type) {
      case "job-status":
        if (data.job) Object.assign(fields, data.job);
        break;
      case "step-progress":
        for (const key of ["stagePercent", "message", "etaSeconds"]) if (key in data) fields[key] = data[key];
        if (data.at) {
          fields.secondsSinceProgress = since(data.at);
          fields.lastProgressAt = data.at;
        }
        break;
      case "job-stalled":
        fields.stalled = true;
        fields.etaSeconds = null;
        for (const key of ["verdict", "thresholdSeconds", "thresholdKind", "thresholdSource", "thresholdBasis", "stalledSince"]) {
          if (key in data) fields[key] = data[key];
        }
        if (data.secondsSinceProgress != null) {
          fields.secondsSinceProgress = data.secondsSinceProgress + (data.at ? since(data.at) : 0);
        }
        break;
      case "job-recovered":
        Object.assign(fields, { stalled: false, verdict: null, stalledSince: null });
        break;
      case "warning":
        if (data.code === "job_removed") return null;
        if (data.code === "record_unreadable") fields.unreadable = true;
        if (data.code === "record_readable") fields.unreadable = false;
        break;
      default:
        if (TERMINAL_EVENTS.has(type)) {
          Object.assign(fields, { stalled: false, etaSeconds: null, secondsSinceProgress: null });
          for (const key of ["completedAt", "outputPath", "errorMessage", "message"]) {
            if (key in data) fields[key] = data[key];
          }
        }
    }
    return fields;
  }
}
