// The History view: incidents of a window (24 h, 7 d, 30 d) from GET /api/incidents and /api/stats, polled.

import { bucketize, causesList, incidentChart, rankCauses, stageBars, stageName } from "./charts.js";
import { h } from "./dom.js";
import { dateTime, duration, severityOf, verdictWords } from "./format.js";
import { PolledView } from "./polled.js";

const POLL_MS = 30000; // history changes when a stall starts or ends: a glance every 30 s is plenty
const RETRY_MS = 5000; // the 503's Retry-After
const LIMIT = 1000; // the API's largest page

const hour = 3600e3;
const day = 24 * hour;
const hhmm = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const dayHour = (t) =>
  new Date(t).toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const monthDay = (t) => new Date(t).toLocaleDateString([], { month: "short", day: "numeric" });

// Buckets end at the next whole step (UTC), so a bucket keeps its edges from one poll to the next.
export const WINDOWS = {
  "24h": { words: "last 24 hours", step: hour, count: 24, label: hhmm, tickEvery: 3 },
  "7d": { words: "last 7 days", step: 6 * hour, count: 28, label: dayHour, tickEvery: 4 },
  "30d": { words: "last 30 days", step: day, count: 30, label: monthDay, tickEvery: 5 },
};

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  const body = await response.json().catch(() => null);
  return { ok: response.ok && body != null, status: response.status, body };
}

export class HistoryView extends PolledView {
  constructor({ root, onWindow }) {
    super();
    this.root = root;
    this.part = (name) => root.querySelector(`[data-part="${name}"]`);
    this.status = this.part("history-status");
    this.windowSelect = this.part("history-window");
    this.onWindow = onWindow;
    this.window = "24h";
    this.node = null;
    this.expanded = new Set();
    this.windowSelect.addEventListener("change", () => {
      this.setWindow(this.windowSelect.value);
      this.onWindow?.(this.window);
    });
  }

  /** The node this board belongs to: only its own incidents link to its explain route. */
  setNode(node) {
    this.node = node;
  }

  setWindow(key) {
    const next = key in WINDOWS ? key : "24h";
    this.windowSelect.value = next;
    if (next === this.window) return;
    this.window = next;
    this.setStatus("loading", `Reading the history of the ${WINDOWS[next].words}…`);
    this.schedule(0);
  }

  async poll() {
    if (this.inFlight) return;
    this.inFlight = true;
    let next = POLL_MS;
    const key = this.window;
    const spec = WINDOWS[key];
    const end = Math.ceil(Date.now() / spec.step) * spec.step;
    const start = end - spec.count * spec.step;
    const since = encodeURIComponent(new Date(start).toISOString());
    try {
      const [list, open, stats] = await Promise.all([
        getJson(`api/incidents?since=${since}&limit=${LIMIT}`),
        getJson(`api/incidents?open=true&limit=${LIMIT}`), // open ones that began before the window too
        getJson(`api/stats?window=${key}`),
      ]);
      if (key !== this.window) {
        next = 0; // the window changed while this poll was out: read the new one now
        return;
      }
      const failed = [list, open, stats].find((answer) => !answer.ok);
      if (failed) next = this.problem(failed.status, failed.body);
      else this.render({ list: list.body, open: open.body, stats: stats.body, start, end, spec });
    } catch {
      next = RETRY_MS;
      this.setStatus("error", "This sidecar is unreachable, so the history cannot be read; retrying every 5 s.");
    } finally {
      this.inFlight = false;
      this.schedule(next);
    }
  }

  setStatus(state, text) {
    this.root.dataset.state = state;
    if (this.status.textContent !== text) this.status.textContent = text;
  }

  problem(status, body) {
    const detail = body?.detail ?? `HTTP ${status}`;
    if (status === 503) {
      this.setStatus("unavailable", `History unavailable: ${detail}`);
      return RETRY_MS;
    }
    this.setStatus("error", `The history could not be read (${status}): ${detail}`);
    return POLL_MS;
  }

  render({ list, open, stats, start, end, spec }) {
    const inWindow = list.incidents;
    const byId = new Map(inWindow.map((incident) => [incident.id, incident]));
    for (const incident of open.incidents) byId.set(incident.id, incident);
    const incidents = [...byId.values()].sort(
      (a, b) => Number(b.open) - Number(a.open) || Date.parse(b.startedAt) - Date.parse(a.startedAt),
    );
    const stages = stats.stages ?? {};
    const openCount = incidents.filter((incident) => incident.open).length;
    const nothing = incidents.length === 0 && Object.keys(stages).length === 0;
    this.root.dataset.empty = String(nothing);
    const truncated = list.count > inWindow.length ? ` (the newest ${inWindow.length} of ${list.count} are drawn)` : "";
    this.setStatus(
      nothing ? "empty" : "live",
      nothing
        ? `No history yet for the ${spec.words}: no job stalled and no stage finished. Incidents appear here as soon as a job stalls.`
        : `${list.count} ${list.count === 1 ? "incident" : "incidents"} in the ${spec.words}, ${openCount} open${truncated} · updated ${dateTime(new Date().toISOString())} · every 30 s`,
    );

    const causes = rankCauses(inWindow);
    const buckets = bucketize(inWindow, start, spec.step, spec.count);
    this.part("history-chart").replaceChildren(
      ...incidentChart({ buckets, causes, label: spec.label, tickEvery: spec.tickEvery, title: `Incidents per period, ${spec.words}` }),
    );
    this.part("history-causes").replaceChildren(...causesList(causes));
    this.part("history-stages").replaceChildren(...stageBars(stages));
    this.renderList(incidents);
  }

  renderList(incidents) {
    const body = this.part("history-incidents");
    if (!incidents.length) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No incident in this window.")));
      return;
    }
    body.replaceChildren(...incidents.flatMap((incident) => this.incidentRows(incident)));
  }

  incidentRows(incident) {
    const id = `incident-${incident.id}`;
    const expanded = this.expanded.has(incident.id);
    const openFor = incident.open ? (Date.now() - Date.parse(incident.startedAt)) / 1000 : null;
    const toggle = h(
      "button",
      {
        type: "button",
        class: "disclosure",
        "aria-expanded": String(expanded),
        "aria-controls": id,
        "aria-label": `Verdict timeline of the stall of job ${incident.jobId} at ${dateTime(incident.startedAt)}`,
        onclick: () => this.toggle(incident, toggle, detail),
      },
      dateTime(incident.startedAt),
    );
    const row = h(
      "tr",
      { class: "incident", dataset: { incident: incident.id, open: String(incident.open), verdict: incident.verdict } },
      h("td", {}, toggle),
      h("th", { scope: "row" }, incident.jobId, incident.attempt > 1 ? h("span", { class: "muted small" }, ` #${incident.attempt}`) : null),
      h("td", {}, stageName(incident.stage)),
      h("td", {}, h("span", { class: "verdict-word", dataset: { severity: severityOf(incident.verdict) } }, verdictWords(incident.verdict))),
      h("td", { class: "num" }, duration(incident.open ? openFor : incident.durationSeconds) ?? "–"),
      h(
        "td",
        {},
        h("span", { class: "pill", dataset: { resolution: incident.resolution } }, incident.open ? "open" : incident.resolution),
      ),
    );
    const detail = h("tr", { class: "timeline-row", id, hidden: !expanded }, h("td", { colspan: 6 }, this.timeline(incident)));
    if (expanded) this.loadEvidence(incident, detail);
    return [row, detail];
  }

  toggle(incident, button, detail) {
    const expanded = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(expanded));
    detail.hidden = !expanded;
    if (expanded) {
      this.expanded.add(incident.id);
      this.loadEvidence(incident, detail);
    } else {
      this.expanded.delete(incident.id);
    }
  }

  timeline(incident) {
    const mine = this.node == null || incident.node === this.node;
    const explain = mine
      ? h(
          "a",
          { href: `api/jobs/${encodeURIComponent(incident.jobId)}/explain`, target: "_blank", rel: "noopener", dataset: { part: "explain" } },
          `Explain job ${incident.jobId}`,
        )
      : h("span", { class: "muted" }, `Recorded by node ${incident.node}: open its board to explain this job.`);
    return h(
      "div",
      { class: "timeline" },
      h(
        "ol",
        { class: "verdicts", "aria-label": "Verdicts in order" },
        ...incident.timeline.map((item) =>
          h(
            "li",
            { dataset: { code: item.code, severity: severityOf(item.code) } },
            h("time", { datetime: item.at }, dateTime(item.at)),
            " ",
            h("span", { class: "verdict-word" }, verdictWords(item.code)),
            h("span", { class: "muted small" }, ` ${item.code}`),
          ),
        ),
        incident.open
          ? null
          : h("li", { class: "end", dataset: { code: "end" } }, h("time", { datetime: incident.endedAt }, dateTime(incident.endedAt)), ` Ended: ${incident.resolution}`),
      ),
      h("p", { class: "evidence muted", dataset: { part: "evidence" } }),
      h("p", {}, explain),
    );
  }

  /** The evidence summary (what the job showed at its last verdict), fetched when a row is opened. */
  async loadEvidence(incident, detail) {
    const target = detail.querySelector('[data-part="evidence"]');
    try {
      const answer = await getJson(`api/incidents/${encodeURIComponent(incident.id)}`);
      const summary = answer.ok ? answer.body.evidence?.summary : null;
      if (summary) target.textContent = summary;
    } catch {
      // The timeline stands without it.
    }
  }
}
