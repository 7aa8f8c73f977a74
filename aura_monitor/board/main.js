// The board: wires the store, the stream, the table, the panel and the controls around them.

import { FleetView } from "./fleet.js";
import { HistoryView } from "./history.js";
import { EventStream } from "./stream.js";
import { JobPanel } from "./panel.js";
import { JobStore } from "./store.js";
import { StreamSync } from "./sync.js";
import { JobTable } from "./table.js";

const part = (name) => document.querySelector(`[data-part="${name}"]`);
const THEMES = ["auto", "light", "dark"];
const THEME_KEY = "aura-monitor.theme";

const store = new JobStore();

const table = new JobTable({
  store,
  tbody: part("rows"),
  template: part("row-template"),
  onOpen: (id) => openJob(id),
  onCounts: (counts) => showCounts(counts),
});

const panel = new JobPanel({
  store,
  root: part("panel"),
  dialog: part("confirm"),
  onClose: (id) => {
    table.setOpen(null);
    document.body.classList.remove("panel-open");
    setHash({ job: null });
    if (!table.focusRow(id)) part("search").focus();
  },
});

function openJob(id) {
  table.setOpen(id);
  document.body.classList.add("panel-open");
  panel.open(id);
  setHash({ job: id });
}

// -- the stream -------------------------------------------------------------------------------------------
const announcer = part("announce");
const sync = new StreamSync(store, {
  onJobEvent: (id, type, data) => {
    panel.jobChanged(id, type);
    if (type === "job-stalled" && !data.refined) {
      announcer.textContent = `Job ${id} stalled: ${data.verdict ?? "diagnosing"}`;
    }
  },
  onSnapshot: ({ resync, first }) => {
    if (panel.isOpen) panel.jobChanged(panel.id, "resync");
    if (resync && !first) announcer.textContent = "Reconnected to a restarted sidecar; the table was reloaded.";
  },
});

const conn = part("conn");
const connText = part("conn-text");
const CONN_WORDS = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…" };

// The sidecar's own address as users reach it (--external-url), for the links the board writes out.
let externalUrl = "";
const liveTitle = () => `Receiving live updates from ${externalUrl}/api/events`;

const stream = new EventStream(
  "api/events",
  (type, data) => sync.apply(type, data),
  ({ state, detail }) => {
    conn.dataset.state = state;
    connText.textContent = detail ? `${CONN_WORDS[state]} (${detail})` : CONN_WORDS[state];
    conn.title = state === "live" ? liveTitle() : "Not receiving updates right now";
    if (state === "live") loadJobsDir();
  },
);
stream.open();

async function loadJobsDir() {
  try {
    const response = await fetch("readyz", { headers: { Accept: "application/json" } });
    const body = await response.json();
    if (typeof body?.externalUrl === "string") {
      externalUrl = body.externalUrl.replace(/\/+$/, "");
      if (conn.dataset.state === "live") conn.title = liveTitle();
    }
    if (body?.node) {
      const tab = document.getElementById("tab-node");
      tab.textContent = `This node: ${body.node}`;
      historyView.setNode(body.node);
    }
    if (body?.jobsDir) {
      part("jobs-dir").textContent = body.jobsDir;
      part("jobs-dir").title = `Watching ${body.jobsDir}`;
    }
  } catch {
    // The path is a courtesy; the board works without it.
  }
}

// -- counts, filters, search ----------------------------------------------------------------------------
const summary = part("summary");
const searchInput = part("search");
const statusSelect = part("status");
const stalledOnly = part("stalled-only");
const sortSelect = part("sort");
const empty = part("empty");

function showCounts(counts) {
  for (const el of summary.querySelectorAll("[data-count]")) {
    const n = counts[el.dataset.count] ?? 0;
    if (el.textContent !== String(n)) el.textContent = String(n);
  }
  summary.querySelector('[data-filter="stalled"]').dataset.hot = counts.stalled > 0 ? "true" : "false";
  const noun = counts.total === 1 ? "job" : "jobs";
  const shown = counts.visible === counts.total ? `${counts.total} ${noun}` : `${counts.visible} of ${counts.total} ${noun}`;
  if (part("shown").textContent !== shown) part("shown").textContent = shown;
  const unlisted = Object.values(store.omitted).reduce((sum, n) => sum + n, 0);
  part("shown").title = unlisted
    ? `${unlisted} older finished jobs are counted but not listed here; ${externalUrl}/api/jobs?status=completed lists them`
    : "";
  document.title = counts.stalled ? `(${counts.stalled} stalled) aura-monitor` : "aura-monitor";
  empty.hidden = counts.visible > 0;
  if (counts.visible === 0) {
    empty.textContent =
      counts.total === 0
        ? "No jobs yet. Jobs appear here as soon as a job.json is written in the watched directory."
        : "No job matches these filters.";
  }
}

function applyFilters() {
  const filter = { text: searchInput.value.trim(), status: statusSelect.value, stalledOnly: stalledOnly.checked };
  table.setFilter(filter);
  for (const button of summary.querySelectorAll("[data-filter]")) {
    const which = button.dataset.filter;
    const on = which === "stalled" ? filter.stalledOnly : filter.status === which;
    button.setAttribute("aria-pressed", String(on));
  }
  setHash({ q: filter.text || null, status: filter.status || null, stalled: filter.stalledOnly ? "1" : null });
}

summary.addEventListener("click", (event) => {
  const button = event.target.closest("[data-filter]");
  if (!button) return;
  const which = button.dataset.filter;
  if (which === "stalled") stalledOnly.checked = !stalledOnly.checked;
  else statusSelect.value = statusSelect.value === which ? "" : which;
  applyFilters();
});
part("filters").addEventListener("submit", (event) => event.preventDefault());
searchInput.addEventListener("input", applyFilters);
statusSelect.addEventListener("change", applyFilters);
stalledOnly.addEventListener("change", applyFilters);
sortSelect.addEventListener("change", () => table.setSort(sortSelect.value));

// -- the URL remembers filters and the open job, so a link shows the same view -----------------------
function readHash() {
  return new URLSearchParams(location.hash.slice(1));
}

function setHash(changes) {
  const params = readHash();
  for (const [key, value] of Object.entries(changes)) {
    if (value == null) params.delete(key);
    else params.set(key, value);
  }
  const text = params.toString();
  history.replaceState(null, "", text ? `#${text}` : location.pathname + location.search);
}

function followHash() {
  const params = readHash();
  const view = params.get("view");
  historyView.setWindow(params.get("window") ?? "24h");
  showView(VIEWS.includes(view) ? view : "node", { remember: false });
  const status = params.get("status") ?? "";
  searchInput.value = params.get("q") ?? "";
  statusSelect.value = [...statusSelect.options].some((o) => o.value === status) ? status : "";
  stalledOnly.checked = params.get("stalled") === "1";
  applyFilters();
  const job = params.get("job");
  if (job && job !== panel.id) openJob(job);
  else if (!job && panel.isOpen) panel.close();
}

// -- views: this node's jobs (live from /api/events), the fleet (/api/fleet) or the history (/api/incidents) --
const VIEWS = ["node", "fleet", "history"];
const fleet = new FleetView({ root: part("fleet") });
const historyView = new HistoryView({
  root: part("history"),
  onWindow: (key) => setHash({ window: key === "24h" ? null : key }),
});
const viewTabs = [...part("views").querySelectorAll('[role="tab"]')];

function showView(name, { remember = true, focus = false } = {}) {
  for (const tab of viewTabs) {
    const on = tab.dataset.view === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    document.getElementById(tab.getAttribute("aria-controls")).hidden = !on;
    if (on && focus) tab.focus();
  }
  fleet.show(name === "fleet");
  historyView.show(name === "history");
  if (remember) setHash({ view: name === "node" ? null : name });
}

part("views").addEventListener("click", (event) => {
  const tab = event.target.closest('[role="tab"]');
  if (tab) showView(tab.dataset.view);
});
// The tabs pattern: arrows (and Home/End) move between tabs and show the one reached.
part("views").addEventListener("keydown", (event) => {
  const index = viewTabs.indexOf(event.target);
  if (index < 0) return;
  const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: viewTabs.length - 1 };
  if (!(event.key in moves)) return;
  event.preventDefault();
  const next = viewTabs[(moves[event.key] + viewTabs.length) % viewTabs.length];
  showView(next.dataset.view, { focus: true });
});

followHash();
window.addEventListener("hashchange", followHash);

// -- keyboard -------------------------------------------------------------------------------------------
document.addEventListener("keydown", (event) => {
  const typing = event.target.closest?.("input, select, textarea, [contenteditable]");
  if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
    event.preventDefault();
    searchInput.focus();
    searchInput.select();
  } else if (event.key === "Escape" && !part("confirm").open) {
    if (event.target === searchInput && searchInput.value) {
      searchInput.value = "";
      applyFilters();
    } else if (panel.isOpen) {
      event.preventDefault();
      panel.close();
    }
  }
});

// -- theme ----------------------------------------------------------------------------------------------
const themeButton = part("theme");
function showTheme() {
  const theme = document.documentElement.dataset.theme;
  themeButton.textContent = `Theme: ${theme}`;
  themeButton.setAttribute("aria-label", `Theme: ${theme}. Switch theme`);
}
themeButton.addEventListener("click", () => {
  const current = document.documentElement.dataset.theme;
  const next = THEMES[(THEMES.indexOf(current) + 1) % THEMES.length];
  document.documentElement.dataset.theme = next;
  try {
    localStorage.setItem(THEME_KEY, next);
  } catch {
    // Not persisted; the choice still holds for this page.
  }
  showTheme();
});
showTheme();
