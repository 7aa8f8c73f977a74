// A view that polls the sidecar only while it is shown and the browser tab is visible (Fleet, History).

export class PolledView {
  constructor() {
    this.timer = null;
    this.active = false;
    this.inFlight = false;
    document.addEventListener("visibilitychange", () => this.schedule(0));
  }

  /** Start (or stop) polling: only while the view is shown and the tab is visible. */
  show(active) {
    this.active = active;
    this.schedule(0);
  }

  /** Poll after `delay` ms, unless the view is hidden; subclasses define poll() and reschedule from it. */
  schedule(delay) {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.active || document.hidden) return;
    this.timer = setTimeout(() => this.poll(), delay);
  }
}
