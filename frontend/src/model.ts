// Pure helpers of the card: what each lane shows, why a job waits, durations, log text.
import type { Job } from "./types";

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);

export const isActive = (job: Job): boolean => !TERMINAL.has(job.status);

/** Jobs in creation order (the order the engine considers them in). */
export function byCreation(jobs: Iterable<Job>): Job[] {
  return [...jobs].sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0));
}

export interface LaneView {
  running: Job[];
  waiting: Job[];
}

/** The compile lane of this machine: running compile-lane jobs and everything queued on it. */
export function compileLane(jobs: Job[]): LaneView {
  return {
    running: jobs.filter((job) => job.status === "running" && job.lane === "compile"),
    waiting: jobs.filter((job) => job.status === "queued" && job.lane !== "upload"),
  };
}

/** What a build peer runs now. */
export function peerJobs(jobs: Job[], label: string): Job[] {
  return jobs.filter((job) => job.status === "running" && job.lane === "remote" && job.peer === label);
}

export function uploadLane(jobs: Job[]): LaneView {
  return {
    running: jobs.filter((job) => job.status === "running" && job.lane === "upload"),
    waiting: jobs.filter((job) => job.status === "queued" && job.lane === "upload"),
  };
}

/** Why a queued job waits, in words. */
export function waitReason(job: Job, byId: Map<string, Job>, lane: LaneView, capacity: number): string {
  const running = [...byId.values()].filter((other) => other.status === "running");
  if (job.job_type === "reset_build_env") {
    return running.length ? "waits for the running jobs to stop" : "starts next";
  }
  if (running.some((other) => other.job_type === "reset_build_env")) {
    return "waits for the build environment reset";
  }
  if (job.held) {
    const prerequisite = job.depends_on ? byId.get(job.depends_on) : undefined;
    if (prerequisite && isActive(prerequisite)) {
      return prerequisite.status === "running" ? "waits for its compile (running)" : "waits for its compile (queued)";
    }
    return "held: a clean or reset runs first";
  }
  if (running.some((other) => other.configuration === job.configuration && job.configuration)) {
    return "waits for another job of this configuration";
  }
  if (lane.running.length >= capacity) {
    return job.lane === "upload" ? "waits for a free upload slot" : "waits for a free compile worker";
  }
  return "starts next";
}

/** Seconds between two ISO times (the end defaults to now), or null. */
export function seconds(start: string | null, end: string | null, now: number = Date.now()): number | null {
  if (!start) return null;
  const from = Date.parse(start);
  const to = end ? Date.parse(end) : now;
  if (Number.isNaN(from) || Number.isNaN(to)) return null;
  return Math.max(0, (to - from) / 1000);
}

export function formatDuration(value: number | null): string {
  if (value === null) return "";
  if (value < 10) return `${value.toFixed(1)} s`;
  if (value < 60) return `${Math.round(value)} s`;
  const minutes = Math.floor(value / 60);
  const rest = Math.round(value % 60);
  return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
}

// CSI sequences (colours, cursor moves), OSC sequences (titles, links) and lone escapes.
const ANSI = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]/g;

/** A log line as people read it: no terminal escape sequences, no carriage returns. */
export function stripAnsi(line: string): string {
  return line.replace(ANSI, "").replace(/\r/g, "");
}

export function jobLabel(job: Job): string {
  switch (job.job_type) {
    case "reset_build_env":
      return "Reset build environment";
    case "clean":
      return "Clean";
    case "upload":
      return "Upload";
    default:
      return "Compile";
  }
}

/** The newest finished jobs first. */
export function recentResults(jobs: Job[], count: number): Job[] {
  return jobs
    .filter((job) => TERMINAL.has(job.status))
    .sort((a, b) => ((a.finished_at ?? "") < (b.finished_at ?? "") ? 1 : -1))
    .slice(0, count);
}
