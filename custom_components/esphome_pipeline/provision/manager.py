"""The ESPHome environments the integration installs for Home Assistant (the HA side).

One `EsphomeProvisioner` per Home Assistant (`async_get_provisioner`), shared by every entry:
entries that run the same version share one environment under
`<config>/.esphome_pipeline/`. It installs a version (reusing a complete one that still works),
checks an environment's health, removes environments no entry uses any more, and answers
"which ESPHome release is the newest" at most once a day (kept in `.storage`, so a restart
does not ask again).

Installs and removals hold one lock, so two flows never build into the same place and a
removal never deletes what an install is about to select. File work runs in executors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta
import logging
from pathlib import Path
import sys
from typing import Any, Final, TypedDict

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from ..const import CONF_ESPHOME_COMMAND, CONF_MANAGED_ESPHOME, DOMAIN
from .installer import (
    Installer,
    InstallError,
    LineCallback,
    find_installer,
    install_into,
    newest_release,
    verify_environment,
)
from .layout import (
    ROOT_DIR_NAME,
    ManagedEnvironment,
    environment_for,
    environment_problem,
    make_staging_dir,
    promote,
    remove_leftovers,
    remove_tree,
    remove_unused,
)

_LOGGER = logging.getLogger(__name__)

PROVISIONER_KEY: HassKey[EsphomeProvisioner] = HassKey(f"{DOMAIN}_provisioner")
NEWEST_MAX_AGE: Final = timedelta(days=1)
"""How long an answer to "which release is the newest" is reused (a failed one too)."""
STORE_VERSION: Final = 1
STORE_KEY: Final = f"{DOMAIN}.esphome_releases"


class _NewestRecord(TypedDict):
    checked_at: str
    newest: str | None


@callback
def async_get_provisioner(hass: HomeAssistant) -> EsphomeProvisioner:
    """Return Home Assistant's provisioner, creating it on first use."""
    provisioner = hass.data.get(PROVISIONER_KEY)
    if provisioner is None:
        provisioner = hass.data[PROVISIONER_KEY] = EsphomeProvisioner(hass)
    return provisioner


@callback
def managed_esphome_version(entry: ConfigEntry) -> str | None:
    """The ESPHome version the integration installed and runs for `entry`, or None.

    None when nothing was installed for it, and when the user's own command is set (it wins).
    """
    if entry.options.get(CONF_ESPHOME_COMMAND):
        return None
    version = entry.data.get(CONF_MANAGED_ESPHOME)
    return str(version) if version else None


@callback
def versions_in_use(entries: Iterable[ConfigEntry]) -> set[str]:
    """Every version an entry was set up with (also while its own command overrides it)."""
    return {
        str(entry.data[CONF_MANAGED_ESPHOME])
        for entry in entries
        if entry.data.get(CONF_MANAGED_ESPHOME)
    }


class EsphomeProvisioner:
    """Installs, checks and removes the ESPHome environments of one Home Assistant."""

    def __init__(
        self,
        hass: HomeAssistant,
        *,
        python: str = sys.executable,
        python_version: tuple[int, int] = (sys.version_info.major, sys.version_info.minor),
        root: Path | None = None,
    ) -> None:
        """Build environments from `python` (default: the interpreter Home Assistant runs on)
        under `root` (default: `<config>/.esphome_pipeline`)."""
        self.hass = hass
        self.python = python
        self.python_version = python_version
        self.root = root or Path(hass.config.path(ROOT_DIR_NAME))
        self._lock = asyncio.Lock()
        self._newest_lock = asyncio.Lock()
        self._installer: Installer | None = None
        self._newest: tuple[datetime, str | None] | None = None
        self._store: Store[_NewestRecord] = Store(hass, STORE_VERSION, STORE_KEY)

    def environment(self, version: str) -> ManagedEnvironment:
        """Where `version` lives (ValueError for a string that is no version)."""
        return environment_for(self.root, version)

    async def async_problem(self, env: ManagedEnvironment) -> str | None:
        """Say why `env` cannot run with Home Assistant's Python now, or None."""
        return await self.hass.async_add_executor_job(environment_problem, env, self.python_version)

    async def async_installer(self) -> Installer:
        """The installer to use (uv when the interpreter has it), found once."""
        if self._installer is None:
            self._installer = await find_installer(self.python)
            _LOGGER.debug("ESPHome environments are made with %s", self._installer.name)
        return self._installer

    async def async_install(
        self, version: str, *, on_line: LineCallback | None = None
    ) -> ManagedEnvironment:
        """Return a working environment with ESPHome `version`, installing it when needed.

        A complete environment that answers `esphome version` is reused. Otherwise ESPHome
        is installed into a new folder beside it, which replaces it only once it answers;
        a broken one is removed after that. Raises InstallError (nothing is left selected);
        on cancellation the unfinished folder is removed as well.
        """
        try:
            env = self.environment(version)
        except ValueError as err:
            raise InstallError(str(err)) from err
        async with self._lock:
            try:
                return await self._async_install_locked(env, on_line)
            except OSError as err:
                # No space for the folder, a read-only config folder, ...
                raise InstallError(f"Could not install ESPHome {version}: {err}") from err

    async def _async_install_locked(
        self, env: ManagedEnvironment, on_line: LineCallback | None
    ) -> ManagedEnvironment:
        run = self.hass.async_add_executor_job
        for leftover in await run(remove_leftovers, self.root):
            _LOGGER.info("Removed %s, left by an unfinished ESPHome install", leftover)
        if await self.async_problem(env) is None:
            try:
                await verify_environment(env)
            except InstallError as err:
                _LOGGER.warning("Reinstalling ESPHome %s: %s", env.version, err.message)
            else:
                return env
        installer = await self.async_installer()
        staging = await run(make_staging_dir, self.root, env.version)
        _LOGGER.info("Installing ESPHome %s with %s into %s", env.version, installer.name, staging)
        try:
            await install_into(installer, staging, env.version, on_line=on_line)
            displaced = await run(promote, staging, env.path)
        except BaseException:
            await asyncio.shield(run(remove_tree, staging))
            raise
        if displaced is not None:
            await run(remove_tree, displaced)
        try:
            await verify_environment(env)
        except InstallError:
            await asyncio.shield(run(remove_tree, env.path))
            raise
        _LOGGER.info("ESPHome %s is installed in %s", env.version, env.path)
        return env

    async def async_remove_unused(self, in_use: set[str]) -> list[str]:
        """Remove every environment whose version is not in `in_use`; return those versions."""
        async with self._lock:
            removed = await self.hass.async_add_executor_job(remove_unused, self.root, in_use)
        for version in removed:
            _LOGGER.info("Removed ESPHome %s: no entry uses it any more", version)
        return removed

    async def async_newest_release(self, env: ManagedEnvironment) -> str | None:
        """The newest ESPHome release, asked through `env`'s installer at most once a day.

        None when unknown (offline, say); that answer is kept for a day as well.
        """
        async with self._newest_lock:
            now = dt_util.utcnow()
            if self._newest is None:
                self._newest = self._from_record(await self._store.async_load())
            if self._newest is not None and now - self._newest[0] < NEWEST_MAX_AGE:
                return self._newest[1]
            newest = await newest_release(await self.async_installer(), env.python)
            self._newest = (now, newest)
            await self._store.async_save({"checked_at": now.isoformat(), "newest": newest})
            return newest

    @staticmethod
    def _from_record(record: Any) -> tuple[datetime, str | None] | None:
        if not isinstance(record, dict):
            return None
        checked_at = dt_util.parse_datetime(str(record.get("checked_at", "")))
        if checked_at is None:
            return None
        newest = record.get("newest")
        return checked_at, (str(newest) if newest else None)


async def async_remove_unused_environments(hass: HomeAssistant) -> list[str]:
    """Remove the environments no entry of this integration uses; return their versions."""
    in_use = versions_in_use(hass.config_entries.async_entries(DOMAIN))
    return await async_get_provisioner(hass).async_remove_unused(in_use)
