"""Installing ESPHome into a new virtual environment, and asking which release is the newest.

Two installers, chosen by what the interpreter offers: `uv` (`<python> -m uv`, a dependency of
Home Assistant itself, so present on every installation) and otherwise the standard `venv`
module with `pip`. Whichever is used also answers "which release is the newest", so the
user's own index settings (pip.conf, `PIP_*` or `UV_*` variables) apply to both questions and
no index address is written here.

Each step is a real process run through the engine's `JobProcess` (own session, merged output,
the whole tree stopped on cancel or timeout). Failures raise `InstallError` carrying the
installer's own last lines. Pure asyncio, no Home Assistant import.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
import logging
import os
from pathlib import Path
import re
from typing import Final

from ..engine.errors import EngineError
from ..engine.esphome_cli import EsphomeCli, probe_version
from ..engine.runner import JobProcess
from .layout import ManagedEnvironment

_LOGGER = logging.getLogger(__name__)

INSTALL_TIMEOUT: Final = 1800.0
"""Seconds a whole install may take: ESPHome pulls in about 60 packages, and on a small machine
without ready-made wheels some of them are built from source."""

RELEASE_QUERY_TIMEOUT: Final = 120.0
"""Seconds the "newest release" question may take before the answer counts as unknown."""

FIND_UV_TIMEOUT: Final = 30.0
VERIFY_TIMEOUT: Final = 60.0
"""Seconds a fresh environment gets to answer `esphome version` (the first run compiles its
bytecode, much slower than later ones)."""

TAIL_LINES: Final = 15
"""Lines of the installer's output kept for an error message."""

PACKAGE: Final = "esphome"
# Home Assistant installs its own requirements with this strategy, so that its extra wheel
# index (set in its container images) can serve a package without hiding the main index.
UV_INDEX_STRATEGY: Final = ("--index-strategy", "unsafe-first-match")
_PIP_NEWEST_RE: Final = re.compile(rf"^{PACKAGE} \(([^)\s]+)\)\s*$", re.MULTILINE)
_UV_NEWEST_RE: Final = re.compile(rf"^\s*\+ {PACKAGE}==(\S+)\s*$", re.MULTILINE)

type LineCallback = Callable[[str], None]


class InstallError(Exception):
    """An install did not end with a working ESPHome; `tail` holds the installer's last lines."""

    def __init__(self, message: str, tail: Sequence[str] = ()) -> None:
        """Keep a one-line message and the last lines of output."""
        super().__init__(message)
        self.message = message
        self.tail = tuple(tail)

    @property
    def details(self) -> str:
        """The message followed by the installer's last lines (what a user is shown)."""
        return "\n".join((self.message, *self.tail))

    @property
    def markdown(self) -> str:
        """`details` as a code block, to append to a form's description."""
        return f"\n\n```\n{self.details}\n```"


@dataclass(frozen=True, slots=True)
class Installer:
    """How environments are made: from `python`, with `uv` when it is given, else venv + pip."""

    python: str
    uv: tuple[str, ...] | None

    @property
    def name(self) -> str:
        """`uv` or `pip`, for logs."""
        return "uv" if self.uv else "pip"

    def create_argv(self, target: Path) -> list[str]:
        """The command that makes an empty virtual environment at `target`."""
        if self.uv:
            # Relocatable: its scripts keep working once the folder is renamed into place.
            return [*self.uv, "venv", "--python", self.python, "--relocatable", str(target)]
        return [self.python, "-m", "venv", str(target)]

    def install_argv(self, env_python: Path, version: str) -> list[str]:
        """The command that installs ESPHome `version` into the environment of `env_python`."""
        requirement = f"{PACKAGE}=={version}"
        if self.uv:
            return [
                *self.uv,
                "pip",
                "install",
                *UV_INDEX_STRATEGY,
                "--python",
                str(env_python),
                requirement,
            ]
        return [
            str(env_python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            requirement,
        ]

    def newest_argv(self, env_python: Path) -> list[str]:
        """The command that names the newest ESPHome release this environment can install."""
        if self.uv:
            # A dry run of a reinstall of ESPHome alone resolves one package and always names
            # the version it would pick.
            return [
                *self.uv,
                "pip",
                "install",
                "--dry-run",
                "--no-deps",
                "--reinstall",
                *UV_INDEX_STRATEGY,
                "--python",
                str(env_python),
                PACKAGE,
            ]
        return [
            str(env_python),
            "-m",
            "pip",
            "index",
            "versions",
            PACKAGE,
            "--disable-pip-version-check",
        ]

    def parse_newest(self, output: str) -> str | None:
        """Read the version out of `newest_argv`'s output."""
        match = (_UV_NEWEST_RE if self.uv else _PIP_NEWEST_RE).search(output)
        return None if match is None else match[1]


def installer_environment() -> dict[str, str]:
    """The child environment: the user's own settings plus plain, unbuffered output."""
    env = dict(os.environ)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "PYTHONUTF8": "1",
            "NO_COLOR": "1",
            "PIP_NO_INPUT": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
    )
    return env


async def find_installer(python: str) -> Installer:
    """Return the uv installer when `<python> -m uv` answers, else venv + pip."""
    uv = (python, "-m", "uv")
    try:
        await _run([*uv, "--version"], what="find uv", cwd=Path.home(), timeout=FIND_UV_TIMEOUT)
    except InstallError as err:
        _LOGGER.debug("uv is not available, using venv and pip: %s", err.details)
        return Installer(python, None)
    return Installer(python, uv)


async def install_into(
    installer: Installer,
    staging: Path,
    version: str,
    *,
    timeout: float = INSTALL_TIMEOUT,  # noqa: ASYNC109 - one deadline over every step
    on_line: LineCallback | None = None,
) -> ManagedEnvironment:
    """Make an environment in the empty folder `staging` and install ESPHome `version` there.

    Returns the environment once `esphome version` answers with `version`; raises
    InstallError otherwise. The caller removes `staging` after a failure.
    """
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    env = ManagedEnvironment(staging, version)
    steps = (
        ("create the virtual environment", installer.create_argv(staging)),
        (f"install ESPHome {version}", installer.install_argv(env.python, version)),
    )
    try:
        async with asyncio.timeout(timeout):
            for what, argv in steps:
                await _run(argv, what=what, cwd=staging.parent, tail=tail, on_line=on_line)
    except TimeoutError as err:
        raise InstallError(f"The install did not end within {timeout:g} seconds", tail) from err
    await verify_environment(env)
    return env


async def verify_environment(
    env: ManagedEnvironment,
    *,
    timeout: float = VERIFY_TIMEOUT,  # noqa: ASYNC109 - passed on to the probe
) -> str:
    """Return the version `esphome version` reports in `env`; InstallError unless it is
    `env.version`."""
    try:
        reported = await probe_version(EsphomeCli(env.command), timeout=timeout, cwd=env.path)
    except (EngineError, OSError) as err:
        raise InstallError(
            f"ESPHome {env.version} does not answer `esphome version`: {err}"
        ) from err
    if reported != env.version:
        raise InstallError(f"The environment reports ESPHome {reported}, not {env.version}")
    return reported


async def newest_release(
    installer: Installer,
    env_python: Path,
    *,
    timeout: float = RELEASE_QUERY_TIMEOUT,  # noqa: ASYNC109 - the question has a deadline
) -> str | None:
    """Return the newest ESPHome release the installer finds, or None when it cannot say
    (offline, an index that does not answer, output it does not recognise)."""
    tail: deque[str] = deque(maxlen=200)
    try:
        await _run(
            installer.newest_argv(env_python),
            what="ask for the newest ESPHome release",
            cwd=env_python.parent,
            tail=tail,
            timeout=timeout,
        )
    except InstallError as err:
        _LOGGER.debug("The newest ESPHome release is unknown: %s", err.details)
        return None
    newest = installer.parse_newest("\n".join(tail))
    if newest is None:
        _LOGGER.debug("No ESPHome version in the installer's answer: %s", list(tail)[-5:])
    return newest


async def _run(
    argv: Sequence[str],
    *,
    what: str,
    cwd: Path,
    tail: deque[str] | None = None,
    on_line: LineCallback | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 - each caller chooses its deadline
) -> None:
    """Run one step; InstallError (with the output's last lines) unless it exits 0."""
    lines: deque[str] = deque(maxlen=TAIL_LINES) if tail is None else tail

    def collect(text: str, replaces_previous: bool) -> None:
        if replaces_previous and lines:
            lines[-1] = text
        elif text.strip():
            lines.append(text)
        if on_line is not None:
            on_line(text)

    try:
        process = await JobProcess.start(argv, cwd=cwd, env=installer_environment())
    except OSError as err:
        raise InstallError(f"Could not {what}: {err}", lines) from err
    try:
        async with asyncio.timeout(timeout):
            exit_code = await process.stream(collect)
    except TimeoutError as err:
        await process.terminate()
        raise InstallError(f"Could not {what} within {timeout:g} seconds", lines) from err
    except BaseException:
        # Cancelled (the flow was closed, Home Assistant stops): the installer goes too.
        await asyncio.shield(process.terminate())
        raise
    if exit_code != 0:
        raise InstallError(f"Could not {what} (exit code {exit_code})", lines)
