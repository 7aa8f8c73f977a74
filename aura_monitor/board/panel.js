// The job panel: the diagnosis (GET /api/jobs/{id}/explain), the timeline, the log tail, and retry /
// cancel behind a confirmation, with the server's answer shown as it gave it.

import { h } from "./dom.js";
import {
  clockTime,
  dateTime,
  duration,
  percent,
  STATUS_LABELS,
  severityOf,
  TERMINAL,
  threshold,
  verdictWords,
} from "./format.js";

const TOKEN_KEY = "aura-monitor.token";
const RETRYABLE = new Set(["failed", "cancelled"]);
// Events after which the diagnosis may have changed; progress alone does not re-diagnose.
const REDIAGNOSE_ON = new Set([
  "job-status",
  "step-status",
  "job-stalled",
  "job-recovered",
  "warning",
  "job-completed",
  "job-failed",
  "job-cancelled",
]);
const ACTIONS = {
  retry: {
    title: (id) => `Retry job ${id}?`,
    text: "The job is queued again and resumes from the first stage that did not complete.",
    yes: "Retry job",
    no: "Not now",
    sent: "Retry accepted: the job is queued again. Its row updates as the worker picks it up.",
  },
  cancel: {
    title: (id) => `Cancel job ${id}?`,
    text: "The worker stops the encoder, removes temporary files and ends the job as cancelled. This cannot be undone.",
    yes: "Cancel job",
    no: "Keep it running",
    sent: "Cancel accepted: the worker has been asked to stop. The row turns Cancelled when it has.",
  },
};

export class JobPanel {
  constructor({ store, root, dialog, onClose }) {
    this.store = store;
    this.root = root;
    this.dialog = dialog;
    this.onClose = onClose;
    this.id = null;
    this.report = null;
    this.request = null;
    this.refreshTimer = 0;
    this.lastFetch = 0;
    this.pending = null;
    const part = (name) => root.querySelector(`[data-part="${name}"]`);
    this.parts = {
      title: part("title"),
      facts: part("facts"),
      verdict: part("verdict"),
      retry: part("retry"),
      cancel: part("cancel"),
      answer: part("answer"),
      tokenForm: part("token-form"),
      token: part("token"),
      tokenState: part("token-state"),
      body: part("body"),
      foot: part("foot"),
      refresh: part("refresh"),
    };
    part("close").addEventListener("click", () => this.close());
    this.parts.refresh.addEventListener("click", () => this.#fetch());
    this.parts.retry.addEventListener("click", () => this.#act("retry", this.parts.retry));
    this.parts.cancel.addEventListener("click", () => this.#act("cancel", this.parts.cancel));
    this.parts.tokenForm.addEventListener("submit", (event) => this.#saveToken(event));
    setInterval(() => this.#renderFacts(), 1000);
    this.#renderTokenState();
  }

  get isOpen() {
    return this.id !== null;
  }

  open(id) {
    const same = id === this.id;
    this.id = id;
    this.root.hidden = false;
    if (!same) {
      this.report = null;
      this.pending = null;
      this.parts.answer.replaceChildren();
      this.parts.tokenForm.hidden = true;
      this.parts.title.textContent = id;
      this.parts.verdict.replaceChildren(h("p", { class: "muted" }, "Diagnosing…"));
      this.parts.body.replaceChildren();
      this.parts.foot.textContent = "";
      this.#fetch();
    }
    this.#renderFacts();
    this.parts.title.focus();
  }

  close() {
    if (this.id === null) return;
    const id = this.id;
    this.id = null;
    this.request?.abort();
    clearTimeout(this.refreshTimer);
    this.root.hidden = true;
    this.onClose(id);
  }

  /** A stream event touched job `id`: refresh what is shown, re-diagnosing at most once a second. */
  jobChanged(id, type) {
    if (id !== this.id) return;
    this.#renderFacts();
    if (type === "resync" || REDIAGNOSE_ON.has(type)) this.#scheduleFetch();
  }

  #scheduleFetch() {
    if (this.refreshTimer) return;
    const wait = Math.max(0, 1000 - (performance.now() - this.lastFetch));
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = 0;
      this.#fetch();
    }, wait);
  }

  async #fetch() {
    const id = this.id;
    if (id === null) return;
    this.request?.abort();
    const request = new AbortController();
    this.request = request;
    this.lastFetch = performance.now();
    this.root.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(`api/jobs/${encodeURIComponent(id)}/explain`, {
        headers: { Accept: "application/json" },
        signal: request.signal,
      });
      const body = await readJson(response);
      if (this.id !== id) return;
      if (!response.ok) {
        const detail = body?.detail ?? `${response.status} ${response.statusText}`;
        this.parts.verdict.replaceChildren(h("p", { class: "problem" }, `Could not diagnose: ${detail}`));
        return;
      }
      this.report = body;
      this.#renderReport();
    } catch (error) {
      if (error.name === "AbortError" || this.id !== id) return;
      this.parts.verdict.replaceChildren(h("p", { class: "problem" }, `Could not reach the sidecar: ${error.message}`));
    } finally {
      if (this.request === request) this.root.removeAttribute("aria-busy");
    }
  }

  #renderFacts() {
    if (this.id === null) return;
    const job = this.store.get(this.id) ?? this.#jobFromReport();
    if (!job) return;
    const now = performance.now();
    const since = this.store.sinceProgress(job, now);
    const eta = this.store.eta(job, now);
    const rows = [
      ["Status", h("span", { class: "pill", dataset: { status: job.status } }, STATUS_LABELS[job.status] ?? job.status)],
      ["Stage", job.stage || "–"],
      ["Progress", percent(job.percent)],
    ];
    if (job.stalled) rows.push([job.status === "queued" ? "Queued for" : "Stuck for", duration(since) ?? "?"]);
    else if (job.status === "queued" && since != null) rows.push(["Queued for", duration(since)]);
    else if (since != null) rows.push(["Last progress", `${duration(since)} ago`]);
    if (job.thresholdSeconds != null && !TERMINAL.has(job.status)) {
      const kind = job.thresholdKind && job.thresholdKind !== "default" ? ` (${job.thresholdKind})` : "";
      // A learned threshold says where it came from (docs/thresholds.md): "learned: p99 gap 3.65 s over 200 runs, x4".
      const learned = job.thresholdSource === "learned" ? `, learned: ${job.thresholdBasis ?? "?"}` : "";
      rows.push(["Stall threshold", `${threshold(job.thresholdSeconds)}${kind}${learned}`]);
    }
    // A stalled job has no ETA: its last velocity no longer says anything.
    if (job.stalled && !TERMINAL.has(job.status)) rows.push(["ETA", "– (stalled)"]);
    else if (eta != null) rows.push(["ETA", duration(eta)]);
    const elapsed = this.store.elapsed(job);
    if (elapsed != null) rows.push([TERMINAL.has(job.status) ? "Took" : "Elapsed", duration(elapsed)]);
    if (job.attempt > 1) rows.push(["Attempt", String(job.attempt)]);
    if (job.createdAt) rows.push(["Created", dateTime(job.createdAt)]);
    this.parts.facts.replaceChildren(...rows.map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value))));
    const { cancel, retry } = this.parts;
    cancel.disabled = TERMINAL.has(job.status);
    cancel.title = cancel.disabled ? "The job has already ended" : "";
    retry.disabled = !RETRYABLE.has(job.status);
    retry.title = retry.disabled ? "Only failed or cancelled jobs can be retried" : "";
  }

  #jobFromReport() {
    const r = this.report;
    if (!r || r.jobId !== this.id) return null;
    return { id: r.jobId, status: r.status, stage: r.stage, percent: r.percent, stalled: r.stalled };
  }

  #renderReport() {
    const r = this.report;
    const severity = r.severity ?? severityOf(r.verdict);
    this.parts.verdict.dataset.severity = severity;
    this.parts.verdict.replaceChildren(
      h(
        "p",
        { class: "verdict-head" },
        h("span", { class: "sev", dataset: { severity } }, severityLabel(severity)),
        h("code", { class: "verdict-code" }, r.verdict),
        h("span", { class: "verdict-words" }, verdictWords(r.verdict)),
      ),
      h("p", { class: "summary", "data-testid": "summary" }, r.summary),
    );
    const sections = [];
    const findings = r.findings ?? [];
    if (findings.length) {
      sections.push(
        section("Findings", h("ol", { class: "findings" }, findings.map((finding, index) => renderFinding(finding, index === 0 && finding.summary === r.summary)))),
      );
    }
    if (r.notSeen?.length) {
      sections.push(
        section(
          "Not seen",
          h("p", { class: "muted small" }, "What the diagnosis could not look at, so a missing finding is not a clean bill of health."),
          h("ul", { class: "evidence" }, r.notSeen.map(renderFact)),
        ),
      );
    }
    if (r.verdicts?.length) {
      sections.push(
        section(
          "Verdicts",
          h("p", { class: "muted small" }, "What the sidecar held over this stall (board, metrics and alerts), oldest first."),
          h("ol", { class: "verdicts", "data-testid": "verdicts" }, r.verdicts.map(renderVerdictAt)),
        ),
      );
    }
    if (r.timeline?.length) {
      sections.push(section("Timeline", h("ol", { class: "timeline" }, [...r.timeline].reverse().map(renderTransition))));
    }
    if (r.logTail?.length) {
      const lines = r.logTail.map((line) => (typeof line === "string" ? line : line.text)).join("\n");
      const sources = [...new Set(r.logTail.map((line) => line.source).filter(Boolean))].join(", ");
      sections.push(
        section(
          "Log tail",
          sources ? h("p", { class: "muted small" }, `From ${sources}`) : null,
          h("pre", { class: "log", tabindex: "0", "aria-label": "Log tail" }, lines),
        ),
      );
    }
    // The server's absolute links (from --external-url), never location guesses: they open from wherever they
    // are pasted (a ticket, a chat), even when this page was reached through another address.
    if (r.links?.board) {
      sections.push(
        section(
          "Links",
          h(
            "ul",
            { class: "job-links", "data-testid": "job-links" },
            h("li", {}, h("a", { href: r.links.board, "data-link": "board" }, "This job on the board")),
            h("li", {}, h("a", { href: r.links.explain, target: "_blank", rel: "noopener noreferrer", "data-link": "explain" }, "Diagnosis as JSON")),
          ),
        ),
      );
    }
    this.parts.body.replaceChildren(...sections);
    const foot = [`Diagnosed ${clockTime(r.diagnosedAt)}`];
    if (r.durationMs != null) foot.push(`in ${r.durationMs} ms`);
    if (r.recordPath) foot.push(r.recordPath);
    this.parts.foot.textContent = foot.join(" · ");
    this.#renderFacts();
  }

  async #act(action, button) {
    const id = this.id;
    if (id === null) return;
    const confirmed = await this.#confirm(action, id);
    button.focus();
    if (!confirmed || this.id !== id) return;
    await this.#send(action, id);
  }

  #confirm(action, id) {
    const words = ACTIONS[action];
    const dialog = this.dialog;
    dialog.querySelector('[data-part="confirm-title"]').textContent = words.title(id);
    dialog.querySelector('[data-part="confirm-text"]').textContent = words.text;
    dialog.querySelector('[data-part="confirm-yes"]').textContent = words.yes;
    dialog.querySelector('[data-part="confirm-no"]').textContent = words.no;
    dialog.dataset.action = action;
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
      dialog.showModal();
    });
  }

  async #send(action, id) {
    const words = ACTIONS[action];
    this.pending = { action, id };
    this.parts.tokenForm.hidden = true;
    this.#answer("pending", `Sending ${action}…`);
    const headers = { Accept: "application/json, application/problem+json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(`api/jobs/${encodeURIComponent(id)}/${action}`, { method: "POST", headers });
    } catch (error) {
      this.#answer("problem", `Could not reach the sidecar (${error.message}). Nothing was sent.`);
      return;
    }
    const body = await readJson(response);
    if (this.id !== id) return;
    const detail = body?.detail ?? response.statusText;
    if (response.status === 202 || response.ok) {
      this.pending = null;
      const extra = [body?.detail, body?.retriesRemaining != null ? `${body.retriesRemaining} retries remaining.` : null];
      if (body?.requestId) extra.push(`Request ${body.requestId}.`);
      this.#answer("ok", `${response.status} Accepted · ${words.sent}`, extra.filter(Boolean).join(" ") || null);
      this.#scheduleFetch();
    } else if (response.status === 401 || response.status === 403) {
      const why = token ? "The token was refused." : "This sidecar needs a token for retry and cancel.";
      this.#answer("problem", `${response.status} · ${why}`, detail);
      this.parts.tokenForm.hidden = false;
      this.parts.token.focus();
    } else if (response.status === 400 && isBackoff(response, body)) {
      this.pending = null;
      const after = Number(response.headers.get("Retry-After") ?? body?.retryAfterSeconds);
      const facts = [];
      if (Number.isFinite(after)) facts.push(`Try again in ${duration(after)} (Retry-After: ${after}).`);
      if (body?.retriesRemaining != null) facts.push(`${body.retriesRemaining} retries remaining.`);
      this.#answer("problem", `400 · ${body?.title ?? "Retry not allowed now"}: ${detail}`, facts.join(" ") || null);
    } else if (response.status === 409) {
      this.pending = null;
      this.#answer("problem", `409 · ${body?.title ?? "Conflict"}: ${detail}`);
    } else {
      this.pending = null;
      this.#answer("problem", `${response.status} · ${body?.title ?? "Error"}: ${detail}`);
    }
  }

  #answer(kind, text, extra = null) {
    this.parts.answer.dataset.kind = kind;
    const lines = [h("span", {}, text)];
    if (extra) lines.push(h("span", { class: "answer-extra" }, extra));
    this.parts.answer.replaceChildren(...lines);
  }

  async #saveToken(event) {
    event.preventDefault();
    const token = this.parts.token.value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    this.parts.token.value = "";
    this.#renderTokenState();
    const pending = this.pending;
    if (pending && pending.id === this.id) await this.#send(pending.action, pending.id);
  }

  #renderTokenState() {
    const state = this.parts.tokenState;
    if (!sessionStorage.getItem(TOKEN_KEY)) {
      state.replaceChildren();
      return;
    }
    state.replaceChildren(
      h("span", { class: "muted small" }, "A token is set for this tab. "),
      h(
        "button",
        {
          type: "button",
          class: "link",
          onclick: () => {
            sessionStorage.removeItem(TOKEN_KEY);
            this.#renderTokenState();
          },
        },
        "Forget it",
      ),
    );
  }
}

function section(title, ...children) {
  return h("section", { class: "panel-section" }, h("h3", {}, title), ...children);
}

function severityLabel(severity) {
  return { critical: "Critical", warning: "Warning", info: "Info" }[severity] ?? severity;
}

function renderFinding(finding, summaryShownAbove) {
  const confidence = Number.isFinite(finding.confidence) ? `${Math.round(finding.confidence * 100)}% sure` : null;
  return h(
    "li",
    { class: "finding", dataset: { severity: finding.severity } },
    h(
      "p",
      { class: "finding-head" },
      h("span", { class: "sev", dataset: { severity: finding.severity } }, severityLabel(finding.severity)),
      h("code", {}, finding.code),
      confidence ? h("span", { class: "muted small" }, confidence) : null,
    ),
    summaryShownAbove ? null : h("p", { class: "finding-summary" }, finding.summary),
    finding.evidence?.length ? h("h4", {}, "Evidence") : null,
    finding.evidence?.length ? h("ul", { class: "evidence" }, finding.evidence.map(renderFact)) : null,
    finding.remediation?.length ? h("h4", {}, "What to do") : null,
    finding.remediation?.length ? h("ol", { class: "remedy" }, finding.remediation.map((step) => h("li", {}, step))) : null,
  );
}

function renderFact(fact) {
  if (typeof fact === "string") return h("li", {}, fact);
  return h("li", {}, h("span", { class: "source" }, fact.source), h("span", { class: "fact" }, fact.fact));
}

function renderVerdictAt(entry) {
  const severity = severityOf(entry.code);
  return h(
    "li",
    { dataset: { severity, code: entry.code } },
    h("time", { datetime: entry.at }, clockTime(entry.at)),
    h("code", { class: "held-code" }, entry.code),
    h("span", { class: "held-words" }, verdictWords(entry.code)),
  );
}

function renderTransition(t) {
  const change = t.from || t.to ? `${t.from ?? "–"} → ${t.to ?? "–"}` : "";
  return h(
    "li",
    {},
    h("time", { datetime: t.at }, clockTime(t.at)),
    h("span", { class: "kind" }, t.kind),
    change ? h("span", { class: "change" }, change) : null,
    t.reason ? h("span", { class: "reason" }, t.reason) : null,
  );
}

function isBackoff(response, body) {
  return response.headers.has("Retry-After") || body?.retryAfterSeconds != null || body?.retriesRemaining != null;
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}
