"""Auto-install on change (the `auto_install_on_change` option).

A configuration whose fingerprint differs from its installed one (or, when nothing was ever
installed, from the fingerprint first seen in this run: the baseline) and that auto-install
has not queued before is installed once the same fingerprint is still current
`AUTO_INSTALL_SETTLE` seconds later. Owns the settle timers and the baseline; what it queued is
recorded in the entry's store, so the same fingerprint is never queued twice, not even after a
restart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
import logging

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later

from .configurations import Configurations
from .const import AUTO_INSTALL_SETTLE
from .store import EntryStore

_LOGGER = logging.getLogger(__name__)


class AutoInstaller:
    """Installs a changed configuration once its fingerprint has settled."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        store: EntryStore,
        configurations: Configurations,
        install: Callable[[Sequence[str]], Awaitable[object]],
    ) -> None:
        """Watch `configurations`; `install` queues an install of the files as they are now."""
        self._hass = hass
        self._entry = entry
        self._store = store
        self._configurations = configurations
        self._install = install
        self._baseline: dict[str, str] = {}
        self._pending: dict[str, tuple[str, CALLBACK_TYPE]] = {}
        self._stopped = False

    @property
    def pending(self) -> Mapping[str, str]:
        """The fingerprint each configuration waits to settle on, by configuration."""
        return {name: fingerprint for name, (fingerprint, _) in self._pending.items()}

    @callback
    def check(self) -> None:
        """Start, keep or cancel each configuration's timer after a scan."""
        if self._stopped:
            return
        nodes = self._configurations.nodes
        for configuration in self._pending.keys() - nodes.keys():
            self._cancel(configuration)
        installed = self._store.installed
        queued = self._store.auto_installed
        for name, node in nodes.items():
            reference = installed.get(name) or self._baseline.setdefault(name, node.fingerprint)
            fingerprint = node.fingerprint
            if fingerprint in (reference, queued.get(name)):
                self._cancel(name)
                continue
            pending = self._pending.get(name)
            if pending is not None and pending[0] == fingerprint:
                continue
            self._cancel(name)
            cancel = async_call_later(
                self._hass, AUTO_INSTALL_SETTLE, partial(self._due, name, fingerprint)
            )
            self._pending[name] = (fingerprint, cancel)

    @callback
    def stop(self) -> None:
        """Cancel every timer; nothing is queued any more."""
        self._stopped = True
        for configuration in list(self._pending):
            self._cancel(configuration)

    @callback
    def _cancel(self, configuration: str) -> None:
        pending = self._pending.pop(configuration, None)
        if pending is not None:
            pending[1]()

    @callback
    def _due(self, configuration: str, fingerprint: str, _now: datetime) -> None:
        self._pending.pop(configuration, None)
        self._entry.async_create_task(
            self._hass, self._async_install(configuration, fingerprint), "auto-install"
        )

    async def _async_install(self, configuration: str, fingerprint: str) -> None:
        # Re-read the folder: the fingerprint must still be the one that started the timer.
        # If it moved on, this rescan has already started a timer for the new one.
        await self._configurations.async_rescan()
        node = self._configurations.nodes.get(configuration)
        if node is None or node.fingerprint != fingerprint or self._stopped:
            return
        self._store.set_auto_installed(configuration, fingerprint)
        await self._store.async_save()
        _LOGGER.info("Configuration %s changed: installing it", configuration)
        await self._install([configuration])
