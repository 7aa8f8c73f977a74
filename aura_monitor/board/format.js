// Plain-language words and compact numbers for the board: durations, percents, verdicts, statuses.

/** "45s", "2m 10s", "1h 05m", "3d 4h"; null for unknown. */
export function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return null;
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** A threshold reads better without a leading zero-padded part: "45s", "3m", "2m 30s". */
export function threshold(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return null;
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s % 60 === 0) return s % 3600 === 0 ? `${s / 3600}h` : `${s / 60}m`;
  return duration(s);
}

export function percent(value) {
  if (value == null || !Number.isFinite(value)) return "–";
  const clamped = Math.min(100, Math.max(0, value));
  return Number.isInteger(clamped) || clamped >= 99.95 ? `${Math.round(clamped)}%` : `${clamped.toFixed(1)}%`;
}

export function clockTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
}

/** "19:10:46" for today, "Nov 22, 19:10" before. */
export function dateTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  if (date.toDateString() === new Date().toDateString()) return clockTime(iso);
  return date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
}

export const STATUS_LABELS = {
  queued: "Queued",
  running: "Running",
  paused: "Paused",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);

// One short line per finding code (docs/diagnosis.md), for the table; the panel shows the full summary.
export const VERDICT_WORDS = {
  healthy: "Progressing normally",
  finalizing: "Finishing the output file",
  completion_not_propagated: "Render finished, but the job never marked itself done",
  failure_not_propagated: "ffmpeg failed, but the job still says running",
  progress_capped: "Progress frozen at a cap while the encoder keeps going",
  progress_not_reported: "Still working, but not reporting progress",
  process_dead: "The worker or encoder process is gone",
  process_hung: "The process is alive but frozen",
  abandoned: "Nothing has changed for a long time: abandoned",
  upstream_errors: "The provider keeps failing (rate limits, 5xx, timeouts)",
  disk_full: "The disk is almost full",
  queued_too_long: "Waiting in the queue for too long",
  output_missing: "Finished without an output file",
  output_invalid: "The output file is broken or too short",
  status_inconsistent: "The job record contradicts itself",
  record_unreadable: "job.json cannot be read",
  killed_while_progressing: "Killed as stalled while it was still progressing",
  stall_killed: "Failed by Aura's own stall monitor (not cancelled by a user)",
  paused_stalled: "Paused and not changing: Aura's pipeline does not stop on pause",
  no_progress: "No progress; no specific cause found yet",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};

const CRITICAL = new Set([
  "record_unreadable",
  "disk_full",
  "status_inconsistent",
  "completion_not_propagated",
  "failure_not_propagated",
  "process_dead",
  "process_hung",
  "abandoned",
  "killed_while_progressing",
  "output_missing",
  "output_invalid",
]);

/** critical | warning | info for a verdict code, as docs/diagnosis.md ranks them. */
export function severityOf(code) {
  if (!code) return "warning";
  if (CRITICAL.has(code)) return "critical";
  if (["healthy", "finalizing", "completed", "cancelled"].includes(code)) return "info";
  return "warning";
}

export function verdictWords(code) {
  return VERDICT_WORDS[code] ?? (code ? code.replaceAll("_", " ") : "Diagnosing…");
}
