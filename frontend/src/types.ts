// The shapes the integration's WebSocket API sends (websocket_api.py) and the card's config.
import type { Connection } from "home-assistant-js-websocket";

export type JobStatus = "queued" | "running" | "completed" | "failed" | "cancelled";

/** A job's public form (`Job.public_dict()` on the Python side). */
export interface Job {
  job_id: string;
  configuration: string;
  job_type: "compile" | "upload" | "clean" | "reset_build_env";
  status: JobStatus;
  lane: "compile" | "upload" | "remote";
  depends_on: string | null;
  held: boolean;
  source: "local" | "remote";
  peer: string | null;
  port: string | null;
  progress: number | null;
  skipped: string | null;
  exit_code: number | null;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface ConfigurationInfo {
  configuration: string;
  name: string;
  installed: string | null;
  latest: string;
  update_available: boolean;
}

export interface Peer {
  label: string;
}

export interface JobsSnapshot {
  event: "snapshot";
  entry_id: string;
  title: string;
  running: boolean;
  lanes: { compile: { workers: number }; upload: { slots: number } };
  peers: Peer[];
  jobs: Job[];
  configurations: ConfigurationInfo[];
}

export type JobsEvent =
  | JobsSnapshot
  | { event: "jobs"; jobs: Job[] }
  | { event: "configurations"; configurations: ConfigurationInfo[] }
  | { event: "ended" };

export type LogEvent =
  | { event: "log"; job: Job; lines: string[]; elided: number }
  | { event: "lines"; lines: string[]; dropped: number }
  | { event: "job"; job: Job }
  | { event: "result"; job: Job }
  | { event: "ended" };

export interface InstallResult {
  jobs: { configuration: string; compile_job_id: string; upload_job_id: string }[];
}

/** The part of Home Assistant's `hass` object the card reads. */
export interface HomeAssistant {
  connection: Connection;
  user?: { is_admin: boolean; name?: string };
}

export interface CardConfig {
  type: string;
  title?: string;
  entry_id?: string;
  history?: number;
  show_log?: boolean;
}
