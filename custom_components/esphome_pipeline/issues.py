"""Repair issues: the ones a user can act on, created and cleared in one place.

The unreadable-configuration and CLI issues are not fixable from a repair flow: the fix is
editing a YAML file or installing ESPHome (or entering its command in the options); both clear
themselves once the cause is gone. The dropped-jobs issue reports something that already
happened (stored jobs that could not be read were dropped at start): it stays, across
restarts, until the user acknowledges it in its repair flow (Home Assistant's confirm step).
"""

from __future__ import annotations

from collections.abc import Mapping

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN
from .engine.errors import shown


def cli_issue_id(entry_id: str) -> str:
    """Return the id of an entry's "ESPHome CLI cannot be run" issue."""
    return f"cli_unavailable_{entry_id}"


def unreadable_issue_id(entry_id: str, configuration: str) -> str:
    """Return the id of the issue for one unreadable configuration."""
    return f"unreadable_{entry_id}_{configuration}"


def async_report_cli_unavailable(
    hass: HomeAssistant, entry_id: str, command: str, error: str
) -> None:
    """Raise (or refresh) the issue that the ESPHome CLI does not answer."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        cli_issue_id(entry_id),
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="cli_unavailable",
        translation_placeholders={
            "command": shown(command) if command else "(auto-detect)",
            "error": error,
        },
    )


def async_clear_cli_unavailable(hass: HomeAssistant, entry_id: str) -> None:
    """Clear the CLI issue (the CLI answered)."""
    ir.async_delete_issue(hass, DOMAIN, cli_issue_id(entry_id))


def async_report_unreadable(
    hass: HomeAssistant, entry_id: str, config_dir: str, configuration: str, error: str
) -> None:
    """Raise (or refresh) the issue for a configuration that cannot be parsed."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        unreadable_issue_id(entry_id, configuration),
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="unreadable_configuration",
        translation_placeholders={
            "configuration": configuration,
            "config_dir": config_dir,
            "error": error,
        },
    )


def async_clear_unreadable(hass: HomeAssistant, entry_id: str, configuration: str) -> None:
    """Clear the issue of one configuration (it parses again, or is gone)."""
    ir.async_delete_issue(hass, DOMAIN, unreadable_issue_id(entry_id, configuration))


def dropped_jobs_issue_id(entry_id: str) -> str:
    """Return the id of an entry's "stored jobs were dropped" issue."""
    return f"dropped_jobs_{entry_id}"


def async_report_dropped_jobs(
    hass: HomeAssistant, entry_id: str, count: int, reasons: Mapping[str, int]
) -> None:
    """Raise (or replace) the issue that `count` stored jobs could not be read and were dropped.

    `reasons` maps each reason to how many entries it dropped (the engine's `DroppedJobs`).
    """
    ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    ir.async_create_issue(
        hass,
        DOMAIN,
        dropped_jobs_issue_id(entry_id),
        is_fixable=True,
        is_persistent=True,
        severity=ir.IssueSeverity.WARNING,
        translation_key="dropped_jobs",
        translation_placeholders={
            "count": str(count),
            "reasons": "\n".join(f"- {shown(reason)} ({number})" for reason, number in ordered),
        },
    )


def async_clear_dropped_jobs(hass: HomeAssistant, entry_id: str) -> None:
    """Clear the dropped-jobs issue (the entry is removed)."""
    ir.async_delete_issue(hass, DOMAIN, dropped_jobs_issue_id(entry_id))
