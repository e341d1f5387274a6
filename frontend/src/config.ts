// The card's configuration: its checks, the visual editor's form, and its card picker entry.
import type { CardConfig } from "./types";

const DOMAIN = "esphome_pipeline";

/** Throw (Home Assistant shows the message) when a configuration cannot be used. */
export function checkConfig(config: CardConfig): void {
  if (!config || typeof config !== "object") {
    throw new Error("Invalid configuration");
  }
  if (config.history !== undefined && (typeof config.history !== "number" || config.history < 0)) {
    throw new Error("history must be a number of 0 or more");
  }
}

const LABELS: Record<string, string> = {
  title: "Title",
  entry_id: "ESPHome Pipeline entry (only needed with several)",
  history: "Recent results shown",
  show_log: "Show the log of the selected job",
};

/** The visual editor (`getConfigForm`): Home Assistant draws it from these selectors. */
export const CONFIG_FORM = {
  schema: [
    { name: "title", selector: { text: {} } },
    { name: "entry_id", selector: { config_entry: { integration: DOMAIN } } },
    { name: "history", selector: { number: { min: 0, max: 50, mode: "box" } } },
    { name: "show_log", selector: { boolean: {} } },
  ],
  computeLabel: (field: { name: string }): string => LABELS[field.name] ?? field.name,
};

interface CustomCardEntry {
  type: string;
  name: string;
  description: string;
  preview?: boolean;
  documentationURL?: string;
}

declare global {
  interface Window {
    customCards?: CustomCardEntry[];
  }
}

/** List the card in the dashboard's card picker (once, however often the module loads). */
export function addToCardPicker(type: string): void {
  window.customCards = window.customCards ?? [];
  if (!window.customCards.some((card) => card.type === type)) {
    window.customCards.push({
      type,
      name: "ESPHome Pipeline",
      description: "The fleet's firmware at a glance: lanes, queue, results, updates and live logs.",
      preview: false,
      documentationURL: "https://github.com/esphome-pipeline/esphome-pipeline/blob/main/docs/dashboard.md",
    });
  }
}
