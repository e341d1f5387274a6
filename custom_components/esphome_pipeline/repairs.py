"""The repair for the ESPHome the integration installed, when it stops working.

Typical cause: a Home Assistant update brought another Python, and the environment under
`<config>/.esphome_pipeline/` was made for the old one (its interpreter is gone, or its
packages were built for another version). Setup then raises the fixable issue
`managed_esphome_broken`; its fix flow, "Reinstall ESPHome", builds the same version again
(beside the broken one, which it replaces only once the new one answers `esphome version`),
then reloads every entry that runs that version. Setup clears the issue once the CLI works.
"""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant import data_entry_flow
from homeassistant.components.repairs import RepairsFlow
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
import voluptuous as vol

from .const import CONF_MANAGED_ESPHOME, DOMAIN
from .provision.installer import InstallError
from .provision.layout import ManagedEnvironment
from .provision.manager import async_get_provisioner

ISSUE_MANAGED_BROKEN = "managed_esphome_broken"


def managed_broken_issue_id(entry_id: str) -> str:
    """Return the id of an entry's "the installed ESPHome does not run" issue."""
    return f"{ISSUE_MANAGED_BROKEN}_{entry_id}"


@callback
def async_report_managed_esphome_broken(
    hass: HomeAssistant, entry_id: str, version: str, error: str
) -> None:
    """Raise (or refresh) the fixable issue for an entry whose installed ESPHome fails."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        managed_broken_issue_id(entry_id),
        is_fixable=True,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="managed_esphome_broken",
        translation_placeholders={"version": version, "error": error},
        data={"entry_id": entry_id, "version": version, "error": error},
    )


@callback
def async_clear_managed_esphome_broken(hass: HomeAssistant, entry_id: str) -> None:
    """Clear the issue (the installed ESPHome answers again, or the entry is gone)."""
    ir.async_delete_issue(hass, DOMAIN, managed_broken_issue_id(entry_id))


class ReinstallEsphomeFlow(RepairsFlow):
    """Confirm, reinstall the same version with progress, reload the entries that run it."""

    def __init__(self, version: str, cause: str) -> None:
        """Repair the environment of `version`, which failed with `cause`."""
        self._version = version
        self._cause = cause
        self._task: asyncio.Task[ManagedEnvironment] | None = None
        self._error = ""

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Start with the confirmation."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Ask before reinstalling; after a failure, show the installer's last lines."""
        if user_input is not None:
            return await self.async_step_reinstall()
        return self._confirm_form({})

    async def async_step_reinstall(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Reinstall in the background while the dialog shows progress."""
        if self._task is None:
            self._task = self.hass.async_create_task(
                async_get_provisioner(self.hass).async_install(self._version),
                f"{DOMAIN} reinstall ESPHome {self._version}",
            )
        if not self._task.done():
            return self.async_show_progress(
                step_id="reinstall",
                progress_action="reinstall_esphome",
                description_placeholders={"version": self._version},
                progress_task=self._task,
            )
        task, self._task = self._task, None
        try:
            task.result()
        except InstallError as err:
            self._error = err.markdown
            return self.async_show_progress_done(next_step_id="failed")
        return self.async_show_progress_done(next_step_id="done")

    async def async_step_failed(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Back to the confirmation, with the error; confirming tries again."""
        return self._confirm_form({"base": "install_failed"})

    async def async_step_done(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Reload every entry that runs this version; the fix is complete."""
        for entry in self.hass.config_entries.async_entries(DOMAIN):
            if entry.data.get(CONF_MANAGED_ESPHOME) == self._version:
                self.hass.config_entries.async_schedule_reload(entry.entry_id)
        return self.async_create_entry(data={})

    def _confirm_form(self, errors: dict[str, str]) -> data_entry_flow.FlowResult:
        return self.async_show_form(
            step_id="confirm",
            data_schema=vol.Schema({}),
            errors=errors,
            description_placeholders={
                "version": self._version,
                "cause": self._cause,
                "error": self._error,
            },
        )


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """Return the fix flow of a `managed_esphome_broken` issue."""
    data = data or {}
    return ReinstallEsphomeFlow(str(data.get("version", "")), str(data.get("error", "")))
