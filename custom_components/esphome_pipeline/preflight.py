"""Checks made before an entry is created and again at setup: the folder and the ESPHome CLI.

The config flow shows a failed check as a form error; setup turns it into `ConfigEntryNotReady`.
Both use the same checks so a folder or command accepted by the flow behaves the same at setup.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path

from homeassistant.core import HomeAssistant

from .const import PROBE_TIMEOUT
from .engine.errors import EngineError
from .engine.esphome_cli import EsphomeCli, detect_command_line, probe_version


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


async def async_check_cli(hass: HomeAssistant, command_line: str | None) -> CheckedCli:
    """Detect the command when none is given, then check that it answers `version`."""
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
