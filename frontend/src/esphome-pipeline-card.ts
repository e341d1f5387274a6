// The ESPHome Pipeline dashboard card: the lanes, what waits and why, recent results, the
// configurations with an update available, and the live log of a selected job.
//
// Data comes from the integration's WebSocket API: `esphome_pipeline/subscribe_jobs` sends a
// snapshot, then every change; `esphome_pipeline/subscribe_log` the log of the selected job.
// Both go through `hass.connection.subscribeMessage`, which subscribes again after a
// reconnect (a fresh snapshot replaces the card's state). Both end when the card leaves the
// page. Install and Cancel are shown to administrators only (the commands are admin-only).
import { LitElement, html, nothing, type PropertyValues, type TemplateResult } from "lit";
import type { MessageBase, UnsubscribeFunc } from "home-assistant-js-websocket";

import { addToCardPicker, checkConfig, CONFIG_FORM } from "./config";
import "./log-view";
import {
  byCreation,
  compileLane,
  formatDuration,
  isActive,
  jobLabel,
  peerJobs,
  recentResults,
  seconds,
  uploadLane,
  waitReason,
  type LaneView,
} from "./model";
import { cardStyles } from "./styles";
import type {
  CardConfig,
  ConfigurationInfo,
  HomeAssistant,
  InstallResult,
  Job,
  JobsEvent,
  JobsSnapshot,
} from "./types";

const CARD_TYPE = "esphome-pipeline-card";
const DOMAIN = "esphome_pipeline";
const DEFAULT_HISTORY = 5;
const RESUBSCRIBE_DELAY_MS = 3000;
const MAX_KEPT_RESULTS = 200;

export class EsphomePipelineCard extends LitElement {
  static override styles = cardStyles;

  static override properties = {
    hass: { attribute: false },
    _config: { state: true },
    _snapshot: { state: true },
    _jobs: { state: true },
    _configurations: { state: true },
    _selected: { state: true },
    _error: { state: true },
    _busy: { state: true },
  };

  hass?: HomeAssistant;
  private _config?: CardConfig;
  private _snapshot?: JobsSnapshot;
  private _jobs: Map<string, Job> = new Map();
  private _configurations: ConfigurationInfo[] = [];
  private _selected?: string;
  private _error?: string;
  private _busy = false;
  private _unsubscribeJobs?: Promise<UnsubscribeFunc | undefined>;
  private _subscribedWith?: HomeAssistant["connection"];
  private _retry?: number;
  private _clock?: number;

  // ------------------------------------------------------------ Home Assistant's card API

  static getStubConfig(): Partial<CardConfig> {
    return { history: DEFAULT_HISTORY, show_log: true };
  }

  static getConfigForm() {
    return CONFIG_FORM;
  }

  setConfig(config: CardConfig): void {
    checkConfig(config);
    const entryChanged = this._config !== undefined && this._config.entry_id !== config.entry_id;
    this._config = config;
    if (entryChanged) {
      this._unsubscribeAll();
      this._subscribe();
    }
  }

  getCardSize(): number {
    const active = [...this._jobs.values()].filter(isActive).length;
    const updates = this._configurations.filter((item) => item.update_available).length;
    return 4 + active + updates + Math.ceil(this._history / 2) + (this._selected ? 6 : 0);
  }

  getGridOptions() {
    return { columns: 12, min_columns: 6, min_rows: 4 };
  }

  // -------------------------------------------------------------------- subscriptions

  override connectedCallback(): void {
    super.connectedCallback();
    this._subscribe();
    // Running jobs show how long they have run: redraw them once a second.
    this._clock = window.setInterval(() => {
      if ([...this._jobs.values()].some((job) => job.status === "running")) this.requestUpdate();
    }, 1000);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.clearInterval(this._clock);
    this._unsubscribeAll();
  }

  protected override updated(changed: PropertyValues): void {
    if (changed.has("hass") && this.hass && this.hass.connection !== this._subscribedWith) {
      this._unsubscribeAll();
      this._subscribe();
    }
  }

  private _subscribe(): void {
    if (!this.hass || !this.isConnected || this._unsubscribeJobs) return;
    const connection = this.hass.connection;
    this._subscribedWith = connection;
    const message: MessageBase = { type: `${DOMAIN}/subscribe_jobs` };
    if (this._config?.entry_id) message.entry_id = this._config.entry_id;
    this._unsubscribeJobs = connection
      .subscribeMessage<JobsEvent>((event) => this._onJobsEvent(event), message)
      .then(
        (unsubscribe) => {
          this._error = undefined;
          return unsubscribe;
        },
        (err: { message?: string }) => {
          this._error = err?.message ?? String(err);
          this._unsubscribeJobs = undefined;
          this._scheduleResubscribe();
          return undefined;
        },
      );
  }

  private _scheduleResubscribe(): void {
    window.clearTimeout(this._retry);
    this._retry = window.setTimeout(() => this._subscribe(), RESUBSCRIBE_DELAY_MS);
  }

  private _unsubscribeAll(): void {
    window.clearTimeout(this._retry);
    this._release(this._unsubscribeJobs);
    this._unsubscribeJobs = undefined;
    this._subscribedWith = undefined;
  }

  private _release(pending?: Promise<UnsubscribeFunc | undefined>): void {
    // The subscription may have ended on the server already (entry unloaded): ignore that.
    pending?.then((unsubscribe) => unsubscribe?.()).catch(() => undefined);
  }

  private _onJobsEvent(event: JobsEvent): void {
    switch (event.event) {
      case "snapshot":
        this._snapshot = event;
        this._jobs = new Map(event.jobs.map((job) => [job.job_id, job]));
        this._configurations = event.configurations;
        break;
      case "jobs": {
        const jobs = new Map(this._jobs);
        for (const job of event.jobs) jobs.set(job.job_id, job);
        this._jobs = this._trim(jobs);
        break;
      }
      case "configurations":
        this._configurations = event.configurations;
        break;
      case "ended":
        // The entry was unloaded (a reload, say): subscribe again once it is back.
        this._unsubscribeAll();
        this._scheduleResubscribe();
        break;
    }
  }

  /** Keep every active job and the newest finished ones (the server prunes the same way). */
  private _trim(jobs: Map<string, Job>): Map<string, Job> {
    const finished = byCreation([...jobs.values()].filter((job) => !isActive(job)));
    for (const job of finished.slice(0, Math.max(0, finished.length - MAX_KEPT_RESULTS))) {
      jobs.delete(job.job_id);
    }
    return jobs;
  }

  private _select(jobId?: string): void {
    if (this._config?.show_log === false) return;
    this._selected = this._selected === jobId ? undefined : jobId;
  }

  // ------------------------------------------------------------------------- commands

  private async _command(message: MessageBase): Promise<unknown> {
    if (!this.hass) return undefined;
    if (this._config?.entry_id) message.entry_id = this._config.entry_id;
    this._busy = true;
    try {
      const result = await this.hass.connection.sendMessagePromise(message);
      this._error = undefined;
      return result;
    } catch (err) {
      this._error = (err as { message?: string })?.message ?? String(err);
      return undefined;
    } finally {
      this._busy = false;
    }
  }

  private _install(configuration: string): Promise<unknown> {
    return this._command({ type: `${DOMAIN}/install`, configuration: [configuration] });
  }

  private async _installOutdated(): Promise<void> {
    const result = (await this._command({ type: `${DOMAIN}/install_outdated` })) as InstallResult | undefined;
    if (result) this.dispatchEvent(new CustomEvent("esphome-pipeline-installed", { detail: result }));
  }

  private _cancel(event: Event, jobId: string): void {
    event.stopPropagation();
    void this._command({ type: `${DOMAIN}/cancel`, job_id: jobId });
  }

  // --------------------------------------------------------------------------- render

  private get _history(): number {
    return this._config?.history ?? DEFAULT_HISTORY;
  }

  private get _isAdmin(): boolean {
    return this.hass?.user?.is_admin ?? false;
  }

  protected override render(): TemplateResult {
    const title = this._config?.title || this._snapshot?.title || "ESPHome Pipeline";
    if (!this._snapshot) {
      return html`<ha-card>
        <header><h1>${title}</h1></header>
        ${this._error ? html`<div class="notice">${this._error}</div>` : html`<div class="empty">Loading…</div>`}
      </ha-card>`;
    }
    const jobs = byCreation(this._jobs.values());
    const byId = this._jobs;
    const compile = compileLane(jobs);
    const upload = uploadLane(jobs);
    const lanes = this._snapshot.lanes;
    return html`<ha-card>
      <header>
        <h1>${title}</h1>
        ${this._snapshot.running ? nothing : html`<span class="status failed">lanes stopped</span>`}
      </header>
      ${this._error ? html`<div class="notice">${this._error}</div>` : nothing}
      ${this._renderLane("Compile", "compile", compile, lanes.compile.workers, byId, `${lanes.compile.workers} worker${lanes.compile.workers === 1 ? "" : "s"}`)}
      ${this._snapshot.peers.map((peer) =>
        this._renderLane(`Build peer ${peer.label}`, `peer-${peer.label}`, { running: peerJobs(jobs, peer.label), waiting: [] }, 1, byId, "1 slot"),
      )}
      ${this._renderLane("Upload", "upload", upload, lanes.upload.slots, byId, `${lanes.upload.slots} slot${lanes.upload.slots === 1 ? "" : "s"}`)}
      ${this._renderUpdates()} ${this._renderResults(jobs)} ${this._renderLog()}
    </ha-card>`;
  }

  private _renderLane(
    name: string,
    key: string,
    lane: LaneView,
    capacity: number,
    byId: Map<string, Job>,
    meta: string,
  ): TemplateResult {
    return html`<section class="lane" data-lane=${key}>
      <h2>${name} <span class="meta">${meta}</span></h2>
      ${lane.running.length === 0 && lane.waiting.length === 0 ? html`<div class="empty">Idle</div>` : nothing}
      ${lane.running.map((job) => this._renderRunning(job))}
      ${lane.waiting.map((job) => this._renderWaiting(job, waitReason(job, byId, lane, capacity)))}
    </section>`;
  }

  private _configurationName(configuration: string): string {
    return this._configurations.find((item) => item.configuration === configuration)?.name ?? configuration;
  }

  private _jobName(job: Job): string {
    return job.configuration ? this._configurationName(job.configuration) : "All configurations";
  }

  private _cancelButton(job: Job): TemplateResult | typeof nothing {
    if (!this._isAdmin || !isActive(job)) return nothing;
    return html`<button class="danger cancel" ?disabled=${this._busy} @click=${(event: Event) => this._cancel(event, job.job_id)}>
      Cancel
    </button>`;
  }

  private _row(job: Job, content: TemplateResult, state: string): TemplateResult {
    return html`<div
      class="row job ${this._selected === job.job_id ? "selected" : ""}"
      data-job-id=${job.job_id}
      data-state=${state}
      data-configuration=${job.configuration}
      data-job-type=${job.job_type}
      @click=${() => this._select(job.job_id)}
    >
      ${content}
    </div>`;
  }

  private _renderRunning(job: Job): TemplateResult {
    const elapsed = formatDuration(seconds(job.started_at, null));
    const progress = job.progress;
    return this._row(
      job,
      html`<div class="what">
          <div class="name">${this._jobName(job)}</div>
          <div class="detail">${jobLabel(job)}${job.peer ? ` on ${job.peer}` : ""} · running ${elapsed}</div>
        </div>
        <span class="status running">${progress === null ? "running" : `${progress} %`}</span>
        ${this._cancelButton(job)}
        <div
          class="bar ${progress === null ? "unknown" : ""}"
          role="progressbar"
          aria-valuemin="0"
          aria-valuemax="100"
          aria-valuenow=${progress ?? nothing}
        >
          <div style="width: ${progress ?? 30}%"></div>
        </div>`,
      "running",
    );
  }

  private _renderWaiting(job: Job, reason: string): TemplateResult {
    return this._row(
      job,
      html`<div class="what">
          <div class="name">${this._jobName(job)}</div>
          <div class="detail reason">${jobLabel(job)} · ${reason}</div>
        </div>
        <span class="status">${job.held ? "held" : "queued"}</span>
        ${this._cancelButton(job)}`,
      job.held ? "held" : "queued",
    );
  }

  private _renderUpdates(): TemplateResult {
    const outdated = this._configurations.filter((item) => item.update_available);
    return html`<section class="updates">
      <h2>
        Updates available
        ${this._isAdmin && outdated.length
          ? html`<button class="primary install-all" ?disabled=${this._busy} @click=${() => this._installOutdated()}>
              Install all outdated (${outdated.length})
            </button>`
          : nothing}
      </h2>
      ${outdated.length === 0 ? html`<div class="empty">Every installed configuration is current</div>` : nothing}
      ${outdated.map(
        (item) => html`<div class="row update" data-configuration=${item.configuration}>
          <div class="what">
            <div class="name">${item.name}</div>
            <div class="detail">${item.configuration} · installed ${item.installed?.slice(0, 8)} → ${item.latest.slice(0, 8)}</div>
          </div>
          ${this._isAdmin
            ? html`<button class="install" ?disabled=${this._busy} @click=${() => this._install(item.configuration)}>Install</button>`
            : nothing}
        </div>`,
      )}
    </section>`;
  }

  private _renderResults(jobs: Job[]): TemplateResult | typeof nothing {
    if (this._history === 0) return nothing;
    const results = recentResults(jobs, this._history);
    return html`<section class="results">
      <h2>Recent results</h2>
      ${results.length === 0 ? html`<div class="empty">No finished jobs yet</div>` : nothing}
      ${results.map((job) =>
        this._row(
          job,
          html`<div class="what">
              <div class="name">${this._jobName(job)}</div>
              <div class="detail ${job.status === "failed" ? "error" : ""}">
                ${jobLabel(job)}${job.skipped ? " · skipped (nothing to do)" : ""}${job.error ? ` · ${job.error}` : ""}
              </div>
            </div>
            <span class="duration">${formatDuration(seconds(job.started_at, job.finished_at))}</span>
            <span class="status ${job.status}">${job.status}</span>`,
          job.status,
        ),
      )}
    </section>`;
  }

  private _renderLog(): TemplateResult | typeof nothing {
    if (!this._selected || this._config?.show_log === false) return nothing;
    const job = this._jobs.get(this._selected);
    return html`<esphome-pipeline-log
      .hass=${this.hass}
      .jobId=${this._selected}
      .entryId=${this._config?.entry_id}
      .name=${job ? this._jobName(job) : this._selected}
      @close=${() => this._select(undefined)}
    ></esphome-pipeline-log>`;
  }
}

if (!customElements.get(CARD_TYPE)) {
  customElements.define(CARD_TYPE, EsphomePipelineCard);
}

addToCardPicker(CARD_TYPE);
