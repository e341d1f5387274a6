"""Checks made before an entry is created and again at setup: the folder and the ESPHome CLI.

The config flow shows a failed check as a form error; setup turns it into `ConfigEntryNotReady`.
Both use the same checks so a folder or command accepted by the flow behaves the same at setup.

Which CLI an entry runs: the user's command when one is set; else the ESPHome the integration
installed for the entry (`managed`, a version under `<config>/.esphome_pipeline/`); else
whatever `detect_command_line` finds at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant

from .const import CONF_ESPHOME_COMMAND, CONF_MANAGED_ESPHOME, PROBE_TIMEOUT
from .engine.errors import EngineError
from .engine.esphome_cli import EsphomeCli, detect_command_line, probe_version
from .provision.manager import async_get_provisioner
from .repairs import async_clear_managed_esphome_broken, async_report_managed_esphome_broken


class PreflightError(Exception):
    """A check failed; `reason` is the translation key of the form error."""

    reason = "unknown"

    def __init__(self, detail: str = "") -> None:
        """Keep the detail (an English sentence or a path) for logs and placeholders."""
        super().__init__(detail or self.reason)
        self.detail = detail


class FolderNotAbsoluteError(PreflightError):
    """The folder is not an absolute path."""

    reason = "folder_not_absolute"


class FolderNotFoundError(PreflightError):
    """The folder does not exist."""

    reason = "folder_not_found"


class FolderUnreadableError(PreflightError):
    """The folder exists but cannot be listed or read."""

    reason = "folder_unreadable"


class CliNotFoundError(PreflightError):
    """No command was given and none could be detected."""

    reason = "cli_not_found"


class CliInvalidError(PreflightError):
    """The command line cannot be split into words (an unclosed quote, say)."""

    reason = "cli_invalid"


class CliFailedError(PreflightError):
    """The command did not answer `version` in time or failed."""

    reason = "cli_failed"


class ManagedEsphomeBrokenError(CliFailedError):
    """The ESPHome the integration installed does not run (Home Assistant's Python changed
    under it, say); a reinstall of the same `version` repairs it."""

    reason = "managed_esphome_broken"

    def __init__(self, detail: str, *, version: str) -> None:
        """Keep the version to reinstall next to the detail."""
        super().__init__(detail)
        self.version = version


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckedCli:
    """A command that answered `version`: the command line used and what it reported."""

    cli: EsphomeCli
    command_line: str
    version: str


async def async_check_config_dir(hass: HomeAssistant, config_dir: str) -> Path:
    """Return the resolved folder, or raise the PreflightError that says what is wrong."""
    return await hass.async_add_executor_job(check_config_dir, config_dir)


def check_config_dir(config_dir: str) -> Path:
    """Blocking part of `async_check_config_dir` (runs in an executor)."""
    path = Path(config_dir).expanduser()
    if not path.is_absolute():
        raise FolderNotAbsoluteError(config_dir)
    if not path.is_dir():
        raise FolderNotFoundError(config_dir)
    if not os.access(path, os.R_OK | os.X_OK):
        raise FolderUnreadableError(config_dir)
    return path.resolve()


async def async_check_cli(
    hass: HomeAssistant, command_line: str | None, *, managed: str | None = None
) -> CheckedCli:
    """Check the CLI an entry runs answers `version`: `command_line` when given, else the
    installed `managed` version, else a detected command."""
    if not command_line and managed:
        return await _async_check_managed(hass, managed)
    if not command_line:
        command_line = await hass.async_add_executor_job(detect_command_line)
        if not command_line:
            raise CliNotFoundError
    try:
        cli = EsphomeCli.from_command_line(command_line)
    except EngineError as err:
        raise CliInvalidError(str(err)) from err
    try:
        version = await probe_version(cli, timeout=PROBE_TIMEOUT)
    except (EngineError, OSError) as err:
        raise CliFailedError(str(err)) from err
    return CheckedCli(cli=cli, command_line=command_line, version=version)


async def async_check_entry_cli(hass: HomeAssistant, entry: ConfigEntry) -> CheckedCli:
    """The CLI check at setup: the entry's command, else the ESPHome installed for it, else
    a detected one. An installed ESPHome that does not run raises the fixable "Reinstall
    ESPHome" issue (and ManagedEsphomeBrokenError); a working check clears it."""
    try:
        checked = await async_check_cli(
            hass,
            entry.options.get(CONF_ESPHOME_COMMAND, ""),
            managed=entry.data.get(CONF_MANAGED_ESPHOME),
        )
    except ManagedEsphomeBrokenError as err:
        async_report_managed_esphome_broken(hass, entry.entry_id, err.version, err.detail)
        raise
    async_clear_managed_esphome_broken(hass, entry.entry_id)
    return checked


async def _async_check_managed(hass: HomeAssistant, version: str) -> CheckedCli:
    provisioner = async_get_provisioner(hass)
    try:
        env = provisioner.environment(version)
    except ValueError as err:
        raise ManagedEsphomeBrokenError(str(err), version=version) from err
    problem = await provisioner.async_problem(env)
    if problem is not None:
        raise ManagedEsphomeBrokenError(
            f"ESPHome {version} in {env.path} cannot run: {problem}", version=version
        )
    cli = EsphomeCli(env.command)
    try:
        reported = await probe_version(cli, timeout=PROBE_TIMEOUT)
    except (EngineError, OSError) as err:
        raise ManagedEsphomeBrokenError(str(err), version=version) from err
    return CheckedCli(cli=cli, command_line=cli.command_line, version=reported)
