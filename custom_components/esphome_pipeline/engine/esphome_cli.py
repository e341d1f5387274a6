"""The ESPHome CLI as the engine sees it: its command line, argv per job, environment, checks.

Owns: turning a job into the real CLI's argv (`compile`, `upload --device`, `clean`,
`clean-all`), the child environment, validation of configuration names and upload ports,
finding an installed CLI, and probing it with `version`. Running processes belongs to
`runner.py`; this module only says what to run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
import ipaddress
import os
from pathlib import Path
import re
import shlex
import shutil
import sys
from typing import Final, assert_never

from .errors import EngineError, InvalidConfigurationError, InvalidPortError, InvalidRequestError
from .models import Job, JobType
from .runner import JobProcess

DEFAULT_PORT: Final = "OTA"
VENV_ENV: Final = "ESPHOME_PIPELINE_VENV"
"""Environment variable naming a virtualenv that holds the ESPHome CLI."""

# Virtualenvs tried after PATH and the running interpreter's own bin folder, in order.
# `~/.venv-esphome` is where this project's set-up script and its docs put ESPHome;
# `/opt/esphome` is the usual system-wide install for a dedicated venv.
KNOWN_VENVS: Final = ("~/.venv-esphome", "/opt/esphome")

CONFIGURATION_NAME_MAX: Final = 255
PORT_MAX: Final = 255
_VERSION_RE: Final = re.compile(r"^Version:\s*(\S+)\s*$", re.MULTILINE)
_HOST_LABEL_RE: Final = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_COM_PORT_RE: Final = re.compile(r"^COM[1-9][0-9]{0,2}$", re.IGNORECASE)
_URL_PORT_RE: Final = re.compile(
    r"^(socket|rfc2217)://(?P<host>\[[^\]]+\]|[^:/\[\]]+):(?P<port>\d{1,5})$"
)
_SERIAL_PATH_RE: Final = re.compile(r"^/dev/[A-Za-z0-9._/+:@-]+$")


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
                f"Cannot parse the ESPHome command line {command_line!r}: {err}"
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
                    job.port or DEFAULT_PORT,
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


def validate_configuration_name(name: str) -> str:
    """Return `name` when it is a plain YAML file name in the config folder, else raise.

    A leaf name only: no folders, no hidden files, not `secrets.yaml`, no control characters.
    """
    problem: str | None = None
    if not isinstance(name, str) or not name:
        problem = "it is empty"
    elif len(name) > CONFIGURATION_NAME_MAX:
        problem = "it is too long"
    elif any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        problem = "it contains control characters"
    elif "/" in name or "\\" in name:
        problem = "it must be a file name in the configuration folder, not a path"
    elif name.startswith("."):
        problem = "hidden files are not configurations"
    elif not name.lower().endswith((".yaml", ".yml")) or name.rsplit(".", 1)[0] == "":
        problem = "it must be a .yaml or .yml file"
    elif name.lower() in {"secrets.yaml", "secrets.yml"}:
        problem = "secrets.yaml is not a device configuration"
    if problem is not None:
        raise InvalidConfigurationError(
            f"Invalid configuration name {name!r}: {problem}", configuration=str(name)
        )
    return name


def _is_host_name(value: str) -> bool:
    host = value.removesuffix(".")
    if not host or len(host) > 253:
        return False
    labels = host.split(".")
    # A name made only of digits and dots is a malformed IPv4 address, not a host name.
    if all(label.isdigit() for label in labels):
        return False
    return all(_HOST_LABEL_RE.match(label) for label in labels)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def validate_port(port: str) -> str:
    """Return the stripped port when it is OTA, a host/IP, a serial device or a serial URL."""
    value = port.strip() if isinstance(port, str) else ""
    if value.upper() == DEFAULT_PORT:
        # "ota" is no host anyone means: it is the OTA keyword typed in lower case.
        return DEFAULT_PORT
    valid = False
    if not value or len(value) > PORT_MAX:
        valid = False
    elif value == DEFAULT_PORT or _COM_PORT_RE.match(value):
        valid = True
    elif value.startswith("/"):
        valid = bool(_SERIAL_PATH_RE.match(value)) and ".." not in value.split("/")
    elif match := _URL_PORT_RE.match(value):
        host = match["host"]
        host = host[1:-1] if host.startswith("[") else host
        valid = (_is_ip(host) or _is_host_name(host)) and 0 < int(match["port"]) < 65536
    else:
        valid = _is_ip(value) or _is_host_name(value)
    if not valid:
        raise InvalidPortError(
            f"Invalid upload port {port!r}: use OTA, a host name or IP address, "
            "a serial device such as /dev/ttyUSB0 or COM3, or socket://host:port",
            port=str(port),
        )
    return value


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
    command = cli.command_line
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
            f"Cannot run {command}: {err}", command=command, reason=str(err)
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
