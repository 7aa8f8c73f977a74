// The History view's pictures: incidents over time stacked by verdict (inline SVG), top causes, stage bars.

import { h, svg } from "./dom.js";
import { duration, percent, severityOf, verdictWords } from "./format.js";

const SERIES = 6; // distinct colours; rarer verdicts share "other" so the legend stays readable
const W = 720;
const H = 260;
const PAD = { left: 36, right: 8, top: 12, bottom: 28 };

/** Verdicts ranked by count (ties by code), each with its share of all incidents. */
export function rankCauses(incidents) {
  const counts = new Map();
  for (const incident of incidents) counts.set(incident.verdict, (counts.get(incident.verdict) ?? 0) + 1);
  const total = incidents.length;
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])))
    .map(([code, count]) => ({ code, count, share: total ? (100 * count) / total : 0 }));
}

/** The series each verdict is drawn in: the top ones their own colour, the rest "other". */
export function seriesOf(causes) {
  const series = new Map();
  causes.forEach((cause, index) => series.set(cause.code, index < SERIES ? String(index) : "other"));
  return series;
}

/** Equal buckets covering [start, end): incidents counted by the bucket their stall started in. */
export function bucketize(incidents, start, step, count) {
  const buckets = Array.from({ length: count }, (_, i) => ({
    start: start + i * step,
    end: start + (i + 1) * step,
    byVerdict: new Map(),
    total: 0,
  }));
  for (const incident of incidents) {
    const at = Date.parse(incident.startedAt);
    const index = Math.floor((at - start) / step);
    if (!(index >= 0 && index < count)) continue;
    const bucket = buckets[index];
    bucket.byVerdict.set(incident.verdict, (bucket.byVerdict.get(incident.verdict) ?? 0) + 1);
    bucket.total += 1;
  }
  return buckets;
}

function niceMax(value) {
  if (value <= 4) return Math.max(1, value);
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * magnitude >= value) return m * magnitude;
  return value;
}

function bucketText(bucket, label) {
  const parts = [...bucket.byVerdict.entries()].map(([code, n]) => `${n} ${verdictWords(code)}`);
  const noun = bucket.total === 1 ? "incident" : "incidents";
  return `${label(bucket.start)}–${label(bucket.end)}: ${bucket.total} ${noun}${parts.length ? ` (${parts.join("; ")})` : ""}`;
}

/** The stacked bar chart, plus a table with the same numbers for screen readers. */
export function incidentChart({ buckets, causes, label, tickEvery, title }) {
  const series = seriesOf(causes);
  const order = causes.map((cause) => cause.code);
  const max = niceMax(Math.max(0, ...buckets.map((b) => b.total)));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / buckets.length;
  const barW = Math.max(2, slot * 0.72);
  const y = (n) => PAD.top + plotH - (n / max) * plotH;

  const grid = [0, max / 2, max]
    .filter((v, i, all) => Number.isInteger(v) && all.indexOf(v) === i)
    .map((v) =>
      svg(
        "g",
        { class: "grid" },
        svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }),
        svg("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)),
      ),
    );

  const bars = buckets.map((bucket, i) => {
    const x = PAD.left + i * slot + (slot - barW) / 2;
    let top = y(0);
    const rects = [];
    for (const code of order) {
      const n = bucket.byVerdict.get(code);
      if (!n) continue;
      const height = (n / max) * plotH;
      top -= height;
      rects.push(
        svg("rect", {
          x: x.toFixed(1),
          y: top.toFixed(1),
          width: barW.toFixed(1),
          height: height.toFixed(1),
          class: `series-${series.get(code)}`,
          dataset: { verdict: code, count: n },
        }),
      );
    }
    const tick =
      i % tickEvery === 0
        ? svg("text", { class: "tick", x: (x + barW / 2).toFixed(1), y: H - 8, "text-anchor": "middle" }, label(bucket.start))
        : null;
    return svg(
      "g",
      {
        class: "bucket",
        dataset: { bucket: i, count: bucket.total, start: new Date(bucket.start).toISOString(), end: new Date(bucket.end).toISOString() },
      },
      svg("title", {}, bucketText(bucket, label)),
      ...rects,
      tick,
    );
  });

  const total = buckets.reduce((sum, b) => sum + b.total, 0);
  const chart = svg(
    "svg",
    { class: "incident-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title}: ${total} incidents. The table below has every bucket.`, focusable: "false" },
    ...grid,
    svg("line", { class: "axis", x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0) }),
    ...bars,
  );

  const legend = h(
    "ul",
    { class: "legend", "aria-hidden": "true" },
    ...causes.slice(0, SERIES).map((cause) =>
      h("li", {}, h("span", { class: "swatch", dataset: { series: series.get(cause.code) } }), verdictWords(cause.code)),
    ),
    causes.length > SERIES ? h("li", {}, h("span", { class: "swatch", dataset: { series: "other" } }), "Other causes") : null,
  );

  const rows = buckets
    .filter((bucket) => bucket.total > 0)
    .map((bucket) =>
      h(
        "tr",
        { dataset: { start: new Date(bucket.start).toISOString() } },
        h("th", { scope: "row" }, `${label(bucket.start)}–${label(bucket.end)}`),
        h("td", { class: "num" }, String(bucket.total)),
        h("td", {}, [...bucket.byVerdict.entries()].map(([code, n]) => `${n} ${verdictWords(code)}`).join("; ")),
      ),
    );
  const table = h(
    "table",
    { class: "visually-hidden", "data-part": "history-chart-table" },
    h("caption", {}, `${title}, by period (periods without incidents left out)`),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Period"), h("th", { scope: "col" }, "Incidents"), h("th", { scope: "col" }, "Verdicts"))),
    h("tbody", {}, ...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 3 }, "No incident in this window."))])),
  );
  return [chart, legend, table];
}

/** Verdicts ranked, each a bar of its share, its count and its severity. */
export function causesList(causes) {
  if (!causes.length) return [h("p", { class: "muted" }, "No stall in this window.")];
  const series = seriesOf(causes);
  return [
    h(
      "ol",
      { class: "causes" },
      ...causes.map((cause) => {
        const bar = h("span", { class: "share-bar", dataset: { series: series.get(cause.code) } });
        bar.style.setProperty("width", `${cause.share.toFixed(1)}%`); // CSSOM: allowed by the page's CSP
        return h(
          "li",
          { dataset: { verdict: cause.code, count: cause.count, severity: severityOf(cause.code) } },
          h("span", { class: "cause-words" }, verdictWords(cause.code)),
          h("span", { class: "cause-code muted" }, cause.code),
          h("span", { class: "share-track", "aria-hidden": "true" }, bar),
          h("span", { class: "num cause-count" }, `${cause.count} · ${percent(cause.share)}`),
        );
      }),
    ),
  ];
}

// The pipeline's order of canonical stages (jobs/stages.py), so the bars read top to bottom as a job runs.
const PIPELINE = ["plan", "queued", "brief", "script", "tts", "images", "render", "finalize", "complete"];
const pipelineIndex = (key) => (PIPELINE.includes(key) ? PIPELINE.indexOf(key) : PIPELINE.length);

// Canonical stage keys ("tts", "render") as the pipeline names them ("TTS", "Render").
export function stageName(key) {
  return key.length <= 3 ? key.toUpperCase() : key[0].toUpperCase() + key.slice(1);
}

/** Per stage: p50 and p95 durations as bars on one scale, with runs and the stall rate beside them. */
export function stageBars(stages) {
  const names = Object.keys(stages).sort((a, b) => pipelineIndex(a) - pipelineIndex(b) || a.localeCompare(b));
  if (!names.length) return [h("p", { class: "muted" }, "No stage finished in this window.")];
  const top = Math.max(1, ...names.map((name) => stages[name].durationSeconds?.p95 ?? 0));
  const width = (seconds) => `${Math.max(0.5, (100 * (seconds ?? 0)) / top).toFixed(1)}%`;
  return [
    h(
      "ul",
      { class: "stage-bars" },
      ...names.map((name) => {
        const s = stages[name];
        const p50 = s.durationSeconds?.p50;
        const p95 = s.durationSeconds?.p95;
        const b95 = h("span", { class: "bar p95" });
        const b50 = h("span", { class: "bar p50" });
        b95.style.setProperty("width", width(p95));
        b50.style.setProperty("width", width(p50));
        const rate = s.stallRate == null ? "no finished run" : `stall rate ${percent(100 * s.stallRate)}`;
        return h(
          "li",
          { dataset: { stage: name, p50: p50 ?? "", p95: p95 ?? "", runs: s.runs, stallRate: s.stallRate ?? "" } },
          h("span", { class: "stage-name" }, stageName(name)),
          h("span", { class: "track", "aria-hidden": "true" }, p95 == null ? null : b95, p50 == null ? null : b50),
          h(
            "span",
            { class: "stage-figures" },
            p50 == null ? "no duration yet" : `p50 ${duration(p50)} · p95 ${duration(p95)}`,
            h("span", { class: "muted" }, ` · ${s.runs} ${s.runs === 1 ? "run" : "runs"} · `),
            h("span", { class: "rate", dataset: { hot: s.stallRate > 0 ? "true" : "false" } }, rate),
            s.incidents ? h("span", { class: "muted" }, ` (${s.incidents} ${s.incidents === 1 ? "stall" : "stalls"})`) : null,
          ),
        );
      }),
    ),
  ];
}
