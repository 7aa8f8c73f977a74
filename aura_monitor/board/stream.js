// The one all-jobs stream (/api/events): browsers allow 6 HTTP/1.1 connections per host, so the board
// never opens per-job streams. EventSource reconnects by itself and sends Last-Event-ID; when it gives up
// (the server answered with an error) or goes quiet past its heartbeats, a fresh one is opened.

const EVENT_TYPES = [
  "connected",
  "job-status",
  "step-status",
  "step-progress",
  "job-stalled",
  "job-recovered",
  "warning",
  "job-completed",
  "job-failed",
  "job-cancelled",
  "heartbeat",
];

export class EventStream {
  /**
   * @param {string} url
   * @param {(type: string, data: any, id: string) => void} onEvent
   * @param {(state: {state: string, detail: string}) => void} onState
   */
  constructor(url, onEvent, onState) {
    this.url = url;
    this.onEvent = onEvent;
    this.onState = onState;
    this.source = null;
    this.quietLimitMs = 35_000;
    this.attempt = 0;
    this.watchdog = 0;
    this.retryTimer = 0;
    this.lastEventAt = 0;
    this.lastEventId = "";
  }

  open() {
    this.#close();
    this.onState({ state: this.attempt ? "reconnecting" : "connecting", detail: "" });
    // A new EventSource does not carry the old one's Last-Event-ID: pass it as the query parameter.
    const url = this.lastEventId ? `${this.url}?lastEventId=${encodeURIComponent(this.lastEventId)}` : this.url;
    const source = new EventSource(url);
    this.source = source;
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (event) => this.#received(source, type, event));
    }
    source.addEventListener("error", () => this.#failed(source));
    this.#arm();
  }

  #received(source, type, event) {
    if (source !== this.source) return;
    this.lastEventAt = performance.now();
    if (event.lastEventId) this.lastEventId = event.lastEventId;
    this.#arm();
    let data = null;
    try {
      data = event.data ? JSON.parse(event.data) : null;
    } catch (error) {
      console.warn(`aura-monitor: ignoring a ${type} event whose data is not JSON`, error);
      return;
    }
    if (type === "connected") {
      this.attempt = 0;
      const heartbeat = Number(data?.heartbeatSeconds ?? data?.heartbeatInterval);
      if (Number.isFinite(heartbeat) && heartbeat > 0) this.quietLimitMs = Math.max(15_000, heartbeat * 3_000);
      this.onState({ state: "live", detail: "" });
    }
    this.onEvent(type, data, event.lastEventId);
  }

  #failed(source) {
    if (source !== this.source) return;
    this.attempt += 1;
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up (an HTTP error or a wrong content type): retry ourselves, backing off.
      const delay = Math.min(10, 2 ** Math.min(this.attempt - 1, 4));
      this.onState({ state: "reconnecting", detail: `retrying in ${delay}s` });
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.open(), delay * 1000);
    } else {
      this.onState({ state: "reconnecting", detail: "" });
    }
  }

  #arm() {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      // No event and no heartbeat for far longer than the heartbeat period: the connection is dead
      // even if the socket looks open (a proxy, a suspended laptop).
      this.attempt += 1;
      this.open();
    }, this.quietLimitMs);
  }

  #close() {
    clearTimeout(this.watchdog);
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.source = null;
  }
}
