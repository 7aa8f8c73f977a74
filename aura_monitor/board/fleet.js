// The Fleet view: every node and every stalled job of the fleet, polled from GET /api/fleet (Prometheus).

import { h } from "./dom.js";
import { clockTime, duration, threshold, verdictWords } from "./format.js";
import { PolledView } from "./polled.js";

const POLL_MS = 5000; // the sidecar caches Prometheus' answer for 3 s: faster polling would add nothing
const STATUSES = ["running", "queued", "paused", "failed", "completed", "cancelled"];

export class FleetView extends PolledView {
  constructor({ root }) {
    super();
    this.root = root;
    this.status = root.querySelector('[data-part="fleet-status"]');
    this.totals = root.querySelector('[data-part="fleet-totals"]');
    this.nodes = root.querySelector('[data-part="fleet-nodes"]');
    this.jobs = root.querySelector('[data-part="fleet-jobs"]');
    this.notes = root.querySelector('[data-part="fleet-notes"]');
  }

  async poll() {
    if (this.inFlight) return;
    this.inFlight = true;
    try {
      const response = await fetch("api/fleet", { headers: { Accept: "application/json" }, cache: "no-store" });
      const body = await response.json().catch(() => null);
      if (response.ok && body) this.render(body);
      else this.problem(response.status, body);
    } catch {
      this.setStatus(
        "error",
        "This sidecar is unreachable, so the fleet cannot be read; retrying every 5 s.",
      );
    } finally {
      this.inFlight = false;
      this.schedule(POLL_MS);
    }
  }

  setStatus(state, text) {
    this.root.dataset.state = state;
    if (this.status.textContent !== text) this.status.textContent = text;
  }

  problem(status, body) {
    const detail = body?.detail ?? `HTTP ${status}`;
    if (status === 404 && body?.type?.endsWith(":fleet-disabled")) {
      this.setStatus("off", `Fleet view is off: ${detail}`);
    } else if (status === 502 || status === 503) {
      this.setStatus("error", `Prometheus is unreachable: ${detail}. Showing the last answer, if any.`);
    } else {
      this.setStatus("error", `The fleet could not be read (${status}): ${detail}`);
    }
  }

  render(fleet) {
    const t = fleet.totals;
    const down = t.down ? `, ${t.down} down` : "";
    this.setStatus(
      t.down ? "degraded" : "live",
      `From Prometheus ${fleet.prometheusUrl} · updated ${clockTime(fleet.generatedAt)} · every 5 s`,
    );
    const totals = [
      h("span", { class: "total" }, h("b", {}, String(t.nodes)), ` nodes (${t.up} up${down})`),
      h("span", { class: "total", dataset: { hot: t.stalled > 0 ? "true" : "false" } }, h("b", {}, String(t.stalled)), " stalled"),
    ];
    if (t.unknown) totals.push(h("span", { class: "total" }, h("b", {}, String(t.unknown)), " unknown (node down)"));
    this.totals.replaceChildren(...totals);
    this.nodes.replaceChildren(...fleet.nodes.map((node) => nodeRow(node)));
    this.jobs.replaceChildren(
      ...(fleet.stalled.length
        ? fleet.stalled.map((job) => jobRow(job))
        : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No stalled job anywhere in the fleet."))]),
    );
    const notes = [...fleet.warnings, ...fleet.nodes.filter((n) => n.message).map((n) => n.message)];
    this.notes.replaceChildren(...notes.map((text) => h("li", {}, text)));
    this.notes.hidden = notes.length === 0;
  }
}

// Links come from Prometheus labels (a sidecar's --external-url): only http(s) ever becomes an href.
function safeUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function link(url, text, label) {
  url = url ? safeUrl(url) : null;
  return url ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer", "aria-label": label }, text) : text;
}

function nodeRow(node) {
  const state = node.up ? "up" : "down";
  const known = node.jobsKnown;
  const counts = STATUSES.map((status) =>
    h("td", { class: "num" }, known === "none" ? "?" : String(node.jobs[status] ?? 0)),
  );
  return h(
    "tr",
    { dataset: { node: node.node, state, known } },
    h("th", { scope: "row" }, link(node.boardUrl, node.node, `Open ${node.node}'s board`)),
    h(
      "td",
      {},
      h("span", { class: "pill", dataset: { status: node.up ? "completed" : "failed" } }, state),
      known === "last-known" ? h("span", { class: "muted small" }, ` last known ${clockTime(node.lastScrapeAt)}`) : null,
    ),
    ...counts,
    h("td", { class: "muted" }, node.version ?? "–"),
  );
}

function jobRow(job) {
  const unknown = job.status === "unknown";
  const stuck = duration(job.secondsSinceProgress);
  const limit = threshold(job.thresholdSeconds);
  return h(
    "tr",
    { dataset: { job: job.jobId, node: job.node, status: job.status } },
    h("td", {}, job.node),
    h("th", { scope: "row" }, link(job.boardUrl, job.jobId, `Open job ${job.jobId} on ${job.node}'s board`)),
    h("td", {}, job.stage ?? "–"),
    h(
      "td",
      {},
      unknown ? h("span", { class: "pill", dataset: { status: "unknown" } }, "unknown: node down") : null,
      unknown && job.verdict ? h("span", { class: "muted small" }, ` last: ${verdictWords(job.verdict)}`) : null,
      unknown ? null : h("span", { class: "verdict-word" }, job.verdict ? verdictWords(job.verdict) : "diagnosing…"),
    ),
    h("td", { class: "num" }, stuck ? (limit ? `${stuck} / ${limit}` : stuck) : "–"),
    h("td", {}, link(job.explainUrl, "Explain", `Explain job ${job.jobId} on ${job.node}`)),
  );
}
