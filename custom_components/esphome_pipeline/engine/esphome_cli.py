"""The ESPHome CLI as the engine sees it: its command line, argv per job, environment, checks.

Owns: turning a job into the real CLI's argv (`compile`, `upload --device`, `clean`,
`clean-all`), the child environment, finding an installed CLI, and probing it with `version`.
Running processes belongs to `runner.py`; this module only says what to run. The rules for
configuration names and upload ports live in `input_rules.py` (imported here under their old
names too, for callers that import them from this module).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
import os
from pathlib import Path
import re
import shlex
import shutil
import sys
from typing import Final, assert_never

from .errors import EngineError, InvalidRequestError, shown

# Re-exported: the engine and the actions import these two from here.
from .input_rules import (
    OTA_PORT,
    validate_configuration_name as validate_configuration_name,  # noqa: PLC0414
    validate_port as validate_port,  # noqa: PLC0414
)
from .models import Job, JobType
from .runner import JobProcess

VENV_ENV: Final = "ESPHOME_PIPELINE_VENV"
"""Environment variable naming a virtualenv that holds the ESPHome CLI."""

# Virtualenvs tried after PATH and the running interpreter's own bin folder, in order.
# `~/.venv-esphome` is where this project's set-up script and its docs put ESPHome;
# `/opt/esphome` is the usual system-wide install for a dedicated venv.
KNOWN_VENVS: Final = ("~/.venv-esphome", "/opt/esphome")

_VERSION_RE: Final = re.compile(r"^Version:\s*(\S+)\s*$", re.MULTILINE)


class EsphomeCliError(EngineError):
    """The ESPHome CLI could not be run or did not answer `version` as expected."""

    translation_key = "cli_not_working"

    def __init__(self, message: str, *, command: str, reason: str) -> None:
        """Keep the command line and the reason as translation placeholders."""
        super().__init__(message, command=command, reason=reason)


@dataclass(frozen=True, slots=True)
class EsphomeCli:
    """How to run the ESPHome CLI: the words of its command line (`esphome`, or a venv path)."""

    command: tuple[str, ...]

    @classmethod
    def from_command_line(cls, command_line: str) -> EsphomeCli:
        """Split a command line the way a shell splits words (no shell ever runs it)."""
        try:
            words = shlex.split(command_line)
        except ValueError as err:
            raise InvalidRequestError(
                f"Cannot parse the ESPHome command line '{shown(command_line)}': {err}"
            ) from err
        if not words:
            raise InvalidRequestError("The ESPHome command line is empty")
        return cls(tuple(words))

    @property
    def command_line(self) -> str:
        """Return the command as one shell-quoted line (for logs, options and messages)."""
        return shlex.join(self.command)

    def argv(self, job: Job, config_dir: Path) -> list[str]:
        """Return the argv that does `job`; only subcommands and options the real CLI accepts."""
        match job.job_type:
            case JobType.COMPILE:
                return [*self.command, "compile", str(config_dir / job.configuration)]
            case JobType.UPLOAD:
                return [
                    *self.command,
                    "upload",
                    str(config_dir / job.configuration),
                    "--device",
                    job.port or OTA_PORT,
                ]
            case JobType.CLEAN:
                return [*self.command, "clean", str(config_dir / job.configuration)]
            case JobType.RESET_BUILD_ENV:
                return [*self.command, "clean-all", str(config_dir)]
            case _:  # pragma: no cover - every JobType is handled above
                assert_never(job.job_type)

    def version_argv(self) -> list[str]:
        """Return the argv of `esphome version`."""
        return [*self.command, "version"]

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return the child environment: `base` (default os.environ) plus output settings.

        Unbuffered UTF-8 output lets progress lines arrive as they happen. ESPHome already
        drops colours when its output is not a terminal; NO_COLOR and PLATFORMIO_DISABLE_COLOR
        ask the tools it starts for the same (LineSplitter strips any escape that gets through).
        """
        env = dict(os.environ if base is None else base)
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "PYTHONUTF8": "1",
                "PYTHONIOENCODING": "utf-8",
                "NO_COLOR": "1",
                "PLATFORMIO_DISABLE_COLOR": "true",
            }
        )
        return env


async def probe_version(
    cli: EsphomeCli,
    *,
    timeout: float = 15.0,  # noqa: ASYNC109 - a probe with a deadline is its whole point
    cwd: Path | None = None,
) -> str:
    """Run `<command> version` in `cwd` (default: home) and return the version it prints.

    Raises EsphomeCliError when the CLI cannot start, times out (its process tree is killed),
    exits non-zero or prints no `Version:` line.
    """
    command = shown(cli.command_line)
    lines: list[str] = []

    def collect(text: str, replaces_previous: bool) -> None:
        if replaces_previous and lines:
            lines[-1] = text
        else:
            lines.append(text)

    try:
        process = await JobProcess.start(
            cli.version_argv(), cwd=cwd or Path.home(), env=cli.environment()
        )
    except OSError as err:
        raise EsphomeCliError(
            f"Cannot run {shown(command)}: {err}", command=command, reason=str(err)
        ) from err
    try:
        async with asyncio.timeout(timeout):
            exit_code = await process.stream(collect)
    except TimeoutError as err:
        await process.terminate()
        reason = f"no answer within {timeout:g} seconds"
        raise EsphomeCliError(
            f"{command} version: {reason}", command=command, reason=reason
        ) from err
    except BaseException:
        await asyncio.shield(process.terminate())
        raise
    output = "\n".join(lines)
    if exit_code != 0:
        reason = f"exit code {exit_code}: {output[-500:].strip()}"
        raise EsphomeCliError(
            f"{command} version failed ({reason})", command=command, reason=reason
        )
    match = _VERSION_RE.search(output)
    if match is None:
        reason = f"unexpected output {output[-200:].strip()!r}"
        raise EsphomeCliError(f"{command} version: {reason}", command=command, reason=reason)
    return match[1]


def detect_command_line() -> str | None:
    """Find an installed ESPHome CLI and return its shell-quoted command line, or None.

    Blocking (it looks at the file system): run it in an executor. Tried in order: `esphome`
    on PATH; `esphome` beside the running interpreter (same virtualenv); `$ESPHOME_PIPELINE_VENV`
    then each of KNOWN_VENVS as `<venv>/bin/esphome`.
    """
    on_path = shutil.which("esphome")
    if on_path:
        return shlex.quote(on_path)
    candidates = [Path(sys.executable).parent / "esphome"]
    venvs = [os.environ.get(VENV_ENV, ""), *KNOWN_VENVS]
    candidates += [Path(venv).expanduser() / "bin" / "esphome" for venv in venvs if venv]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return shlex.quote(str(candidate))
    return None
