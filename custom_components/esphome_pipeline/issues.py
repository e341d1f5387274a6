"""Repair issues: the ones a user can act on, created and cleared in one place.

Neither issue is fixable from a repair flow: the fix is editing a YAML file or installing
ESPHome (or entering its command in the options). Both clear themselves once the cause is gone.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN


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
        translation_placeholders={"command": command or "(auto-detect)", "error": error},
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
