"""Where the ESPHome environments the integration installs live, and whether one still works.

Layout, under Home Assistant's configuration folder (the one place Home Assistant keeps across
its own updates, also on Home Assistant OS and Container):

    .esphome_pipeline/
        esphome-2026.10.0/                   a complete environment holding ESPHome 2026.10.0
        .esphome-2026.11.0.partial-k3x9/     an install in progress (or one that was cut off)
        .esphome-2026.10.0.old-p2m4/         a broken environment being replaced

Only a complete `esphome-<version>` folder is ever selected: an install works in a
`.partial-` folder and is renamed into place once it answers `esphome version`. The CLI is run
as `<environment>/bin/python -m esphome`, which keeps working after that rename (the
`bin/esphome` script of a pip-made environment names its old path in its first line).

Every function here touches the file system: run it in an executor. No Home Assistant import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import re
import shutil
import tempfile
from typing import Final

ROOT_DIR_NAME: Final = ".esphome_pipeline"
ENVIRONMENT_PREFIX: Final = "esphome-"
_PARTIAL_MARK: Final = ".partial-"
_OLD_MARK: Final = ".old-"
# A public PEP 440 version: digits and dots, optional pre, post and dev parts. It becomes a
# folder name and a pip requirement, so nothing else (no slash, no space, no marker) passes.
_VERSION_RE: Final = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")
_PYVENV_VERSION_RE: Final = re.compile(
    r"^\s*(?:version|version_info)\s*=\s*(\d+)\.(\d+)", re.MULTILINE
)


def is_valid_version(version: str) -> bool:
    """Return True when `version` is a plain release number such as `2026.10.0`."""
    return bool(_VERSION_RE.match(version))


@dataclass(frozen=True, slots=True)
class ManagedEnvironment:
    """One virtual environment holding one ESPHome version."""

    path: Path
    version: str

    @property
    def python(self) -> Path:
        """The environment's interpreter."""
        return self.path / "bin" / "python"

    @property
    def command(self) -> tuple[str, ...]:
        """The words that run this environment's ESPHome CLI."""
        return (str(self.python), "-m", "esphome")


def environment_for(root: Path, version: str) -> ManagedEnvironment:
    """Return where `version` lives under `root`; ValueError for a version that is not one."""
    if not is_valid_version(version):
        raise ValueError(f"Not an ESPHome version: {version!r}")
    return ManagedEnvironment(root / f"{ENVIRONMENT_PREFIX}{version}", version)


def make_staging_dir(root: Path, version: str) -> Path:
    """Create (and return) an empty folder next to the target to install `version` into."""
    root.mkdir(parents=True, exist_ok=True)
    prefix = f".{ENVIRONMENT_PREFIX}{version}{_PARTIAL_MARK}"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def environment_problem(env: ManagedEnvironment, python_version: tuple[int, int]) -> str | None:
    """Say why `env` cannot run here, or return None when nothing is visibly wrong.

    `python_version` is the (major, minor) of the interpreter Home Assistant runs on, the one
    the environment was made with. After a Home Assistant update its Python may be another
    one: the environment's interpreter is then gone, or its packages were built for the old.
    """
    if not env.path.is_dir():
        return f"{env.path} does not exist"
    try:
        config = (env.path / "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        return f"{env.path} is not a virtual environment (no pyvenv.cfg)"
    if not env.python.exists():
        # exists() follows the link: a venv's interpreter links to the one it was made from.
        return f"its Python interpreter is gone ({_link_text(env.python)})"
    match = _PYVENV_VERSION_RE.search(config)
    if match is None:
        return f"{env.path}/pyvenv.cfg names no Python version"
    made_with = (int(match[1]), int(match[2]))
    if made_with != python_version:
        return (
            f"it was made for Python {made_with[0]}.{made_with[1]}, and Home Assistant now "
            f"runs Python {python_version[0]}.{python_version[1]}"
        )
    return None


def _link_text(path: Path) -> str:
    try:
        return f"{path} -> {path.readlink()}"
    except OSError:
        return str(path)


def promote(staging: Path, target: Path) -> Path | None:
    """Rename `staging` to `target`. A `target` already there is moved aside first and
    returned, for the caller to remove once the new one answers."""
    displaced: Path | None = None
    if target.exists() or target.is_symlink():
        displaced = Path(tempfile.mkdtemp(prefix=f".{target.name}{_OLD_MARK}", dir=target.parent))
        # mkdtemp reserved a unique name; the old environment takes its place.
        displaced.rmdir()
        target.rename(displaced)
    staging.rename(target)
    return displaced


def remove_tree(path: Path) -> None:
    """Delete a folder and everything in it; a folder already gone is fine."""
    shutil.rmtree(path, ignore_errors=True)


def remove_leftovers(root: Path) -> list[Path]:
    """Delete what interrupted installs and replacements left behind; return what went."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for child in root.iterdir():
        name = child.name
        if name.startswith(f".{ENVIRONMENT_PREFIX}") and (
            _PARTIAL_MARK in name or _OLD_MARK in name
        ):
            remove_tree(child)
            removed.append(child)
    return removed


def installed_versions(root: Path) -> list[str]:
    """Versions with a complete environment folder under `root`, sorted by name."""
    if not root.is_dir():
        return []
    versions = [
        child.name.removeprefix(ENVIRONMENT_PREFIX)
        for child in root.iterdir()
        if child.name.startswith(ENVIRONMENT_PREFIX) and child.is_dir()
    ]
    return sorted(version for version in versions if is_valid_version(version))


def remove_unused(root: Path, in_use: set[str]) -> list[str]:
    """Delete every complete environment whose version is not in `in_use`; return those."""
    removed = [version for version in installed_versions(root) if version not in in_use]
    for version in removed:
        remove_tree(root / f"{ENVIRONMENT_PREFIX}{version}")
    return removed
