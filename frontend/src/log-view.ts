// The live log of one job, as the card shows it under the lanes.
//
// Subscribes to `esphome_pipeline/subscribe_log`: the kept output, then live lines, then the
// result. Follows new lines while the reader is at the bottom, strips terminal escape codes,
// and copies the log to the clipboard. The subscription ends when the element leaves the page
// or shows another job.
import { LitElement, html, type PropertyValues, type TemplateResult } from "lit";
import type { MessageBase, UnsubscribeFunc } from "home-assistant-js-websocket";

import { jobLabel, stripAnsi } from "./model";
import { cardStyles } from "./styles";
import type { HomeAssistant, Job, LogEvent } from "./types";

export const LOG_ELEMENT = "esphome-pipeline-log";
const LOG_LINE_LIMIT = 2000;
const FOLLOW_SLACK_PX = 24;

interface LogState {
  job: Job;
  lines: string[];
  elided: number;
}

export class EsphomePipelineLog extends LitElement {
  static override styles = cardStyles;

  static override properties = {
    hass: { attribute: false },
    jobId: { attribute: false },
    entryId: { attribute: false },
    name: { attribute: false },
    _log: { state: true },
    _error: { state: true },
  };

  hass?: HomeAssistant;
  jobId?: string;
  entryId?: string;
  /** The configuration's name as people read it (the card knows it). */
  name = "";
  private _log?: LogState;
  private _error?: string;
  private _unsubscribe?: Promise<UnsubscribeFunc | undefined>;
  private _subscribed?: { jobId: string; connection: HomeAssistant["connection"] };
  private _follow = true;
  // A narrower card wraps more lines: keep showing the newest while following.
  private _resize = new ResizeObserver(() => this._scrollToEnd());
  private _observed?: Element;

  override connectedCallback(): void {
    super.connectedCallback();
    this._resubscribe();
    // Back on the page: render again, which observes the log's size again.
    this.requestUpdate();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this._resize.disconnect();
    this._observed = undefined;
    this._release();
  }

  protected override updated(changed: PropertyValues): void {
    if (changed.has("hass") || changed.has("jobId")) this._resubscribe();
    const pre = this.renderRoot.querySelector("pre");
    if (pre && pre !== this._observed) {
      this._resize.observe(pre);
      this._observed = pre;
    }
    if (changed.has("_log")) this._scrollToEnd();
  }

  private _scrollToEnd(): void {
    const pre = this.renderRoot.querySelector("pre");
    if (pre && this._follow) pre.scrollTop = pre.scrollHeight;
  }

  private _resubscribe(): void {
    const hass = this.hass;
    const jobId = this.jobId;
    if (!hass || !jobId || !this.isConnected) return;
    if (this._subscribed?.jobId === jobId && this._subscribed.connection === hass.connection) return;
    this._release();
    this._log = undefined;
    this._error = undefined;
    this._follow = true;
    this._subscribed = { jobId, connection: hass.connection };
    const message: MessageBase = { type: "esphome_pipeline/subscribe_log", job_id: jobId };
    if (this.entryId) message.entry_id = this.entryId;
    this._unsubscribe = hass.connection
      .subscribeMessage<LogEvent>((event) => this._onEvent(jobId, event), message)
      .catch((err: { message?: string }) => {
        this._error = err?.message ?? String(err);
        return undefined;
      });
  }

  private _release(): void {
    // The subscription may have ended on the server already: ignore that.
    this._unsubscribe?.then((unsubscribe) => unsubscribe?.()).catch(() => undefined);
    this._unsubscribe = undefined;
    this._subscribed = undefined;
  }

  private _onEvent(jobId: string, event: LogEvent): void {
    if (jobId !== this.jobId) return;
    const log = this._log;
    switch (event.event) {
      case "log":
        this._log = { job: event.job, lines: event.lines.map(stripAnsi), elided: event.elided };
        break;
      case "lines": {
        if (!log) return;
        const lines = [...log.lines];
        if (event.dropped) lines.push(`… ${event.dropped} lines not shown (the browser fell behind) …`);
        lines.push(...event.lines.map(stripAnsi));
        const excess = Math.max(0, lines.length - LOG_LINE_LIMIT);
        this._log = { ...log, lines: lines.slice(excess), elided: log.elided + excess };
        break;
      }
      case "job":
      case "result":
        if (log) this._log = { ...log, job: event.job };
        break;
      case "ended":
        this._release();
        break;
    }
  }

  private async _copy(): Promise<void> {
    const text = this._log?.lines.join("\n") ?? "";
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // No clipboard API (a page served over plain HTTP to another host): select and copy.
      const area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
  }

  private _onScroll(event: Event): void {
    const pre = event.target as HTMLElement;
    // Follow new lines only while the reader is at the bottom.
    this._follow = pre.scrollHeight - pre.scrollTop - pre.clientHeight < FOLLOW_SLACK_PX;
  }

  protected override render(): TemplateResult {
    const log = this._log;
    const job = log?.job;
    const body = this._error ?? (log ? log.lines.join("\n") : "Loading…");
    return html`<section class="log">
      <h2>Log</h2>
      <div class="log-head">
        <div class="what">
          <div class="name">${job ? `${this.name} · ${jobLabel(job)}` : this.name}</div>
          <div class="detail">
            ${job ? job.status : ""}${log?.elided ? ` · ${log.elided} earlier lines not kept` : ""}
          </div>
        </div>
        <button class="copy" @click=${() => this._copy()}>Copy</button>
        <button class="close" @click=${() => this.dispatchEvent(new CustomEvent("close"))}>Close</button>
      </div>
      <pre @scroll=${(event: Event) => this._onScroll(event)}>${body}</pre>
    </section>`;
  }
}

if (!customElements.get(LOG_ELEMENT)) {
  customElements.define(LOG_ELEMENT, EsphomePipelineLog);
}
