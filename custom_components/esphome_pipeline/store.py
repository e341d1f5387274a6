"""The entry's persistent state on Home Assistant's `Store`: the engine's jobs and our labels.

One store per config entry (key `esphome_pipeline.<entry_id>`), versioned, with a migration
hook. It is the engine's `JobStore` (`load`/`save` of its jobs and build records) and keeps the two
fingerprint maps of the Home Assistant layer: what each configuration last installed
successfully, and which fingerprint auto-install already queued (so it never queues it twice).
Every change writes the whole document; `Store` serialises the writes.
"""

from __future__ import annotations

from typing import Any, Final, override

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from .const import DOMAIN
from .engine.persistence import BUILDS_KEY, JOBS_KEY, split_stored, stored_state

STORAGE_VERSION: Final = 1
STORAGE_MINOR_VERSION: Final = 1

_JOBS: Final = JOBS_KEY
_BUILDS: Final = BUILDS_KEY
_INSTALLED: Final = "installed"
_AUTO_INSTALLED: Final = "auto_installed"


class _VersionedStore(Store[dict[str, Any]]):
    """`Store` with the migration hook; version 1.1 is the first layout."""

    @override
    async def _async_migrate_func(
        self, old_major_version: int, old_minor_version: int, old_data: dict[str, Any]
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
        """Read the stored document (once, before the engine loads)."""
        self._data = _normalised(await self._store.async_load() or {})

    async def async_remove(self) -> None:
        """Delete the stored document (the entry is being removed)."""
        await self._store.async_remove()

    # JobStore protocol (engine/persistence.py)

    async def load(self) -> dict[str, Any] | None:
        """Return the engine's stored state (jobs and build records), or None if empty."""
        jobs, builds = self._data[_JOBS], self._data[_BUILDS]
        if not jobs and builds is None:
            return None
        return stored_state(list(jobs), builds)

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

    def set_installed(self, configuration: str, fingerprint: str) -> None:
        """Record a successful install (in memory at once; `async_save` writes it)."""
        self._data[_INSTALLED][configuration] = fingerprint

    def set_auto_installed(self, configuration: str, fingerprint: str) -> None:
        """Record that auto-install queued this fingerprint (`async_save` writes it)."""
        self._data[_AUTO_INSTALLED][configuration] = fingerprint

    async def async_save(self) -> None:
        """Write the whole document."""
        await self._store.async_save(self._document())

    def _document(self) -> dict[str, Any]:
        return {
            _JOBS: list(self._data[_JOBS]),
            _BUILDS: self._data[_BUILDS],
            _INSTALLED: dict(self._data[_INSTALLED]),
            _AUTO_INSTALLED: dict(self._data[_AUTO_INSTALLED]),
        }


def storage_key(entry_id: str) -> str:
    """Return the storage key of an entry."""
    return f"{DOMAIN}.{entry_id}"


def _normalised(data: dict[str, Any]) -> dict[str, Any]:
    def mapping(value: Any) -> dict[str, str]:
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    jobs = data.get(_JOBS)
    builds = data.get(_BUILDS)
    return {
        _JOBS: list(jobs) if isinstance(jobs, list) else [],
        _BUILDS: builds if isinstance(builds, dict) else None,
        _INSTALLED: mapping(data.get(_INSTALLED)),
        _AUTO_INSTALLED: mapping(data.get(_AUTO_INSTALLED)),
    }
