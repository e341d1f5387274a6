// The card's look: Home Assistant's theme variables only, so light and dark themes both work.
import { css } from "lit";

export const cardStyles = css`
  :host {
    display: block;
  }
  ha-card {
    padding: 12px 16px 16px;
    color: var(--primary-text-color);
    overflow: hidden;
  }
  header {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    justify-content: space-between;
    gap: 8px;
    margin-bottom: 4px;
  }
  h1 {
    font-size: 1.25em;
    font-weight: 500;
    margin: 0;
  }
  h2 {
    display: flex;
    align-items: baseline;
    justify-content: space-between;
    gap: 8px;
    font-size: 0.95em;
    font-weight: 500;
    margin: 16px 0 6px;
    color: var(--secondary-text-color);
    text-transform: uppercase;
    letter-spacing: 0.04em;
  }
  h2 .meta {
    text-transform: none;
    letter-spacing: normal;
    font-weight: 400;
  }
  section {
    border-top: 1px solid var(--divider-color);
  }
  .row {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 4px 8px;
    padding: 6px 4px;
    border-radius: 6px;
    cursor: pointer;
  }
  .row:hover,
  .row.selected {
    background: var(--secondary-background-color);
  }
  .what {
    flex: 1 1 160px;
    min-width: 0;
  }
  .name {
    font-weight: 500;
    overflow-wrap: anywhere;
  }
  .detail {
    font-size: 0.85em;
    color: var(--secondary-text-color);
    overflow-wrap: anywhere;
  }
  .detail.error {
    color: var(--error-color);
  }
  .empty {
    padding: 4px;
    color: var(--secondary-text-color);
    font-size: 0.9em;
  }
  .bar {
    flex: 1 1 100%;
    height: 6px;
    border-radius: 3px;
    background: var(--divider-color);
    overflow: hidden;
  }
  .bar > div {
    height: 100%;
    background: var(--primary-color);
    transition: width 0.3s ease;
  }
  .bar.unknown > div {
    width: 30%;
    opacity: 0.6;
  }
  .status {
    font-size: 0.8em;
    font-weight: 500;
    padding: 2px 8px;
    border-radius: 10px;
    color: var(--text-primary-color, #fff);
    background: var(--secondary-text-color);
    white-space: nowrap;
  }
  .status.completed {
    background: var(--success-color, #43a047);
  }
  .status.failed {
    background: var(--error-color, #db4437);
  }
  .status.cancelled {
    background: var(--warning-color, #ffa600);
  }
  .status.running {
    background: var(--primary-color);
  }
  .duration {
    font-size: 0.85em;
    color: var(--secondary-text-color);
    white-space: nowrap;
  }
  button {
    font: inherit;
    font-size: 0.85em;
    font-weight: 500;
    padding: 4px 12px;
    min-height: 32px;
    border-radius: 16px;
    border: 1px solid var(--primary-color);
    background: transparent;
    color: var(--primary-color);
    cursor: pointer;
    white-space: nowrap;
  }
  button.primary {
    background: var(--primary-color);
    color: var(--text-primary-color, #fff);
  }
  button.danger {
    border-color: var(--error-color);
    color: var(--error-color);
  }
  button:disabled {
    opacity: 0.5;
    cursor: default;
  }
  .log {
    margin-top: 6px;
  }
  .log-head {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 8px;
    justify-content: space-between;
  }
  pre {
    margin: 6px 0 0;
    padding: 8px;
    max-height: 320px;
    overflow: auto;
    font-family: var(--code-font-family, monospace);
    font-size: 12px;
    line-height: 1.4;
    white-space: pre-wrap;
    overflow-wrap: anywhere;
    border-radius: 6px;
    background: var(--code-editor-background-color, var(--secondary-background-color));
    color: var(--primary-text-color);
  }
  .notice {
    padding: 8px;
    margin: 8px 0 0;
    border-radius: 6px;
    background: var(--secondary-background-color);
    color: var(--error-color);
    font-size: 0.9em;
  }
`;
