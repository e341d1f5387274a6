"""The entry's persistent state on Home Assistant's `Store`: the engine's jobs and our labels.

One store per config entry (key `esphome_pipeline.<entry_id>`), versioned, with a migration
hook. It is the engine's `JobStore` (`load`/`save` of its jobs and build records) and keeps the two
fingerprint maps of the Home Assistant layer: what each configuration last installed
successfully, and which fingerprint auto-install already queued (so it never queues it twice).
Every change writes the whole document; `Store` serialises the writes.

Loading never fails on the file's content. A file that is not JSON is Home Assistant's case
(`Store` moves it aside and raises its own repair issue). Valid JSON of the wrong shape is
ours: an envelope `Store` cannot read is salvaged from the raw file; each section is checked
on its own, a fingerprint map keeping its readable entries; the job list goes to the engine
as stored, whose restore checks every entry and reports what it drops.
"""

from __future__ import annotations

from collections.abc import Mapping
import logging
from types import MappingProxyType
from typing import Any, Final, override

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.storage import Store
from homeassistant.util import json as json_util

from .const import DOMAIN
from .engine.input_rules import is_configuration_file_name
from .engine.persistence import BUILDS_KEY, JOBS_KEY, split_stored, stored_state

_LOGGER = logging.getLogger(__name__)

STORAGE_VERSION: Final = 1
STORAGE_MINOR_VERSION: Final = 1

_JOBS: Final = JOBS_KEY
_BUILDS: Final = BUILDS_KEY
_INSTALLED: Final = "installed"
_AUTO_INSTALLED: Final = "auto_installed"
_INSTALLED_BUILDS: Final = "installed_builds"


class _VersionedStore(Store[dict[str, Any]]):
    """`Store` with the migration hook; version 1.1 is the first layout."""

    @override
    async def _async_migrate_func(
        self, old_major_version: int, old_minor_version: int, old_data: Any
    ) -> dict[str, Any]:
        # 1.0 was never released; it lacked the auto-install map. Later layouts migrate here.
        return _normalised(old_data)


class EntryStore:
    """Persistent state of one entry; also the engine's JobStore."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Bind to the entry's storage key; nothing is read until `async_load`."""
        self._store = _VersionedStore(
            hass,
            STORAGE_VERSION,
            storage_key(entry_id),
            minor_version=STORAGE_MINOR_VERSION,
        )
        self._data: dict[str, Any] = _normalised({})

    async def async_load(self) -> None:
        """Read the stored document (once, before the engine loads); never fails on content."""
        try:
            data = await self._store.async_load()
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            # Valid JSON, but not the envelope `Store` writes (not an object, no version or
            # data): `Store` gives up; what is readable of it is still ours to keep.
            _LOGGER.warning(
                "The stored state %s is not in Home Assistant's storage layout (%s: %s); "
                "keeping what can be read of it",
                self._store.path,
                type(err).__name__,
                err,
            )
            data = await self._store.hass.async_add_executor_job(_salvaged, self._store.path)
        self._data = _normalised(data)

    async def async_remove(self) -> None:
        """Delete the stored document (the entry is being removed)."""
        await self._store.async_remove()

    # JobStore protocol (engine/persistence.py)

    async def load(self) -> dict[str, Any] | None:
        """Return the engine's stored state (jobs and build records), or None if empty.

        The jobs are returned as stored, whatever they are: the engine's restore checks every
        part and reports what it cannot use.
        """
        jobs, builds = self._data[_JOBS], self._data[_BUILDS]
        if jobs == [] and builds is None:
            return None
        return stored_state(list(jobs) if isinstance(jobs, list) else jobs, builds)

    async def save(self, state: dict[str, Any]) -> None:
        """Replace the engine's stored state."""
        jobs, builds = split_stored(state)
        self._data[_JOBS] = jobs
        self._data[_BUILDS] = builds
        await self._store.async_save(self._document())

    # Fingerprint maps of the Home Assistant layer

    @property
    def installed(self) -> dict[str, str]:
        """Fingerprint of the last successful install per configuration (read-only view)."""
        return dict(self._data[_INSTALLED])

    @property
    def auto_installed(self) -> dict[str, str]:
        """Fingerprint auto-install last queued per configuration (read-only view)."""
        return dict(self._data[_AUTO_INSTALLED])

    @property
    def installed_view(self) -> Mapping[str, str]:
        """The same map as `installed`, read-only and without a copy (read it, keep nothing)."""
        return MappingProxyType(self._data[_INSTALLED])

    def set_installed(self, configuration: str, fingerprint: str) -> None:
        """Record a successful install (in memory at once; `async_save` writes it)."""
        self._data[_INSTALLED][configuration] = fingerprint

    @property
    def installed_builds(self) -> dict[str, dict[str, Any]]:
        """What each configuration's installed build was made of (release.py), read-only view."""
        return dict(self._data[_INSTALLED_BUILDS])

    @property
    def installed_builds_view(self) -> Mapping[str, Mapping[str, Any]]:
        """The same map as `installed_builds`, read-only and without a copy (read, keep nothing)."""
        return MappingProxyType(self._data[_INSTALLED_BUILDS])

    def set_installed_build(self, configuration: str, build: dict[str, Any]) -> None:
        """Record the installed build's details (`async_save` writes them)."""
        self._data[_INSTALLED_BUILDS][configuration] = build

    def set_auto_installed(self, configuration: str, fingerprint: str) -> None:
        """Record that auto-install queued this fingerprint (`async_save` writes it)."""
        self._data[_AUTO_INSTALLED][configuration] = fingerprint

    async def async_save(self) -> None:
        """Write the whole document."""
        await self._store.async_save(self._document())

    def _document(self) -> dict[str, Any]:
        jobs = self._data[_JOBS]
        return {
            _JOBS: list(jobs) if isinstance(jobs, list) else jobs,
            _BUILDS: self._data[_BUILDS],
            _INSTALLED: dict(self._data[_INSTALLED]),
            _AUTO_INSTALLED: dict(self._data[_AUTO_INSTALLED]),
            _INSTALLED_BUILDS: dict(self._data[_INSTALLED_BUILDS]),
        }


def storage_key(entry_id: str) -> str:
    """Return the storage key of an entry."""
    return f"{DOMAIN}.{entry_id}"


def _salvaged(path: str) -> Any:
    """Return the data part of a stored file `Store` could not read, or None. Blocking."""
    try:
        raw = json_util.load_json(path, default=None)
    except HomeAssistantError:
        return None
    if isinstance(raw, dict):
        # The envelope lost its version: its data may be intact. No envelope: the data itself.
        return raw.get("data", raw)
    return None


def _normalised(data: object) -> dict[str, Any]:
    """Return a document whose every section is usable, keeping all that can be read.

    `jobs` stays as stored (None becomes []): the engine's restore judges each entry. A
    fingerprint map keeps the entries whose key is a configuration file name and whose value
    is text; anything else is dropped, with one warning saying how much.
    """
    problems: list[str] = []
    if data is not None and not isinstance(data, dict):
        problems.append(f"the document is {type(data).__name__}, not an object")
    document: dict[Any, Any] = data if isinstance(data, dict) else {}
    jobs = document.get(_JOBS)
    normalised = {
        _JOBS: [] if jobs is None else jobs,
        _BUILDS: document.get(_BUILDS),
        _INSTALLED: _fingerprints(document.get(_INSTALLED), _INSTALLED, problems),
        _AUTO_INSTALLED: _fingerprints(document.get(_AUTO_INSTALLED), _AUTO_INSTALLED, problems),
        _INSTALLED_BUILDS: _builds(document.get(_INSTALLED_BUILDS), problems),
    }
    if problems:
        _LOGGER.warning("Parts of the stored state were unreadable: %s", "; ".join(problems))
    return normalised


def _fingerprints(value: object, section: str, problems: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"'{section}' is not an object")
        return {}
    kept = {
        key: fingerprint
        for key, fingerprint in value.items()
        if is_configuration_file_name(key) and isinstance(fingerprint, str) and fingerprint
    }
    if len(kept) < len(value):
        problems.append(f"{len(value) - len(kept)} of {len(value)} '{section}' entries")
    return kept


def _builds(value: object, problems: list[str]) -> dict[str, dict[str, Any]]:
    """Installed build details: objects under configuration names (release.py reads them
    field by field, tolerating anything missing)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"'{_INSTALLED_BUILDS}' is not an object")
        return {}
    kept = {
        key: build
        for key, build in value.items()
        if is_configuration_file_name(key) and isinstance(build, dict)
    }
    if len(kept) < len(value):
        problems.append(f"{len(value) - len(kept)} of {len(value)} '{_INSTALLED_BUILDS}' entries")
    return kept
