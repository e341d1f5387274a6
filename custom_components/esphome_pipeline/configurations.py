"""The configurations of an entry's folder and what follows from them in Home Assistant.

Owns: scanning the folder (in an executor, one scan at a time), the configurations found and
the files that failed to parse, the configuration devices following the files (renamed with
their node, removed with their file, also for files deleted while the entry was not loaded),
the repair issue of each unreadable file, each configuration's current fingerprint, and the
port an upload really goes to.

A known configuration saved with a typo keeps its device (and the user's entity settings) with
its last readable facts; its repair issue says what is wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from functools import partial
import logging
from pathlib import Path
from typing import Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN, PORT_OTA
from .discovery import ScanResult, scan_config_dir
from .engine.fingerprint import Fingerprinter, NodeInfo
from .engine.input_rules import check_configuration_file, check_serial_port
from .helpers import invalid_input
from .issues import async_clear_unreadable, async_report_unreadable

_LOGGER = logging.getLogger(__name__)

HOST_PLATFORM: Final = "host"
HOST_PLATFORM_PORT: Final = "127.0.0.1"
"""ESPHome cannot resolve `OTA` for a `host:` node (its config has no address); the host
program runs on this machine, so an OTA install of a host node goes to the loopback address."""


def device_identifier(entry_id: str, configuration: str) -> tuple[str, str]:
    """Return the device registry identifier of a configuration device."""
    return (DOMAIN, f"{entry_id}_{configuration}")


def configuration_of_device(entry_id: str, device: dr.DeviceEntry) -> str | None:
    """Return the configuration a device of this entry stands for (None for the hub)."""
    prefix = device_identifier(entry_id, "")[1]
    return next(
        (
            value.removeprefix(prefix)
            for domain, value in device.identifiers
            if domain == DOMAIN and value.startswith(prefix) and value != prefix
        ),
        None,
    )


class Configurations:
    """The configurations of one entry's folder, kept in step with the files."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        config_dir: Path,
        *,
        esphome_version: str,
        on_change: Callable[[], None],
        fingerprinter: Fingerprinter | None = None,
    ) -> None:
        """Bind to the folder; `on_change` is called after every applied scan.

        `fingerprinter` is the entry's one reader of fingerprints (shared with the skip checks).
        """
        self._hass = hass
        self._entry = entry
        self._config_dir = config_dir
        self._esphome_version = esphome_version
        self._fingerprinter = fingerprinter
        self._on_change = on_change
        self._nodes: dict[str, NodeInfo] = {}
        self._unreadable: dict[str, str] = {}
        self._scan_lock = asyncio.Lock()
        self._scan_failing = False

    @property
    def nodes(self) -> Mapping[str, NodeInfo]:
        """The configurations of the last scan."""
        return self._nodes

    @property
    def unreadable(self) -> Mapping[str, str]:
        """Configurations the last scan could not parse, with the reason."""
        return self._unreadable

    def fingerprints(self, configurations: Sequence[str]) -> dict[str, str]:
        """Return the current fingerprint of each known configuration."""
        return {
            name: self._nodes[name].fingerprint for name in configurations if name in self._nodes
        }

    def effective_port(self, configuration: str, port: str) -> str:
        """Return the port to pass to ESPHome: OTA of a `host:` node goes to 127.0.0.1."""
        node = self._nodes.get(configuration)
        if port == PORT_OTA and node is not None and node.platform == HOST_PLATFORM:
            return HOST_PLATFORM_PORT
        return port

    async def async_by_port(self, configurations: Sequence[str], port: str) -> dict[str, list[str]]:
        """Check `port` (a serial device must be a TTY: checked off the loop), then group the
        configurations by the port each is really reached on (`effective_port`)."""
        port = await self._hass.async_add_executor_job(check_serial_port, port)
        groups: dict[str, list[str]] = {}
        for name in configurations:
            groups.setdefault(self.effective_port(name, port), []).append(name)
        return groups

    async def async_targets(self, configurations: Sequence[str]) -> list[str]:
        """Rescan, then return the named configurations once each, in order.

        Raises a translated `ServiceValidationError` for a name the folder does not hold, and
        the engine's `InvalidConfigurationError` for a file that is no longer a regular file
        inside the folder (checked again now, not only at the last scan: it is what ESPHome
        will open).
        """
        await self.async_rescan()
        for name in configurations:
            if name not in self.nodes:
                raise invalid_input("unknown_configuration", configuration=name)
        names = list(dict.fromkeys(configurations))
        await self._hass.async_add_executor_job(self._check_files, names)
        return names

    def _check_files(self, names: list[str]) -> None:
        for name in names:
            check_configuration_file(self._config_dir, name)

    async def async_rescan(self) -> None:
        """Scan the folder now and apply the result (devices, issues, then `on_change`)."""
        async with self._scan_lock:
            try:
                result = await self._hass.async_add_executor_job(
                    partial(
                        scan_config_dir,
                        self._config_dir,
                        esphome_version=self._esphome_version,
                        fingerprinter=self._fingerprinter,
                    )
                )
            except OSError as err:
                # The folder vanished or became unreadable: keep what we know, say it once.
                if not self._scan_failing:
                    _LOGGER.warning("Cannot scan %s: %s", self._config_dir, err)
                self._scan_failing = True
                return
            if self._scan_failing:
                _LOGGER.info("%s can be scanned again", self._config_dir)
                self._scan_failing = False
            self._apply(result)

    @callback
    def _apply(self, result: ScanResult) -> None:
        entry_id = self._entry.entry_id
        for configuration in self._unreadable.keys() - result.unreadable.keys():
            async_clear_unreadable(self._hass, entry_id, configuration)
        for configuration, error in result.unreadable.items():
            if self._unreadable.get(configuration) != error:
                async_report_unreadable(
                    self._hass, entry_id, str(self._config_dir), configuration, error
                )
        self._unreadable = dict(result.unreadable)
        nodes = dict(result.nodes)
        for configuration in result.unreadable.keys() & self._nodes.keys():
            nodes[configuration] = self._nodes[configuration]

        registry = dr.async_get(self._hass)
        for configuration in self._nodes.keys() - nodes.keys():
            device = registry.async_get_device({device_identifier(entry_id, configuration)})
            if device is not None:
                registry.async_update_device(device.id, remove_config_entry_id=entry_id)
        for configuration, node in nodes.items():
            old = self._nodes.get(configuration)
            if old is not None and old.display_name != node.display_name:
                device = registry.async_get_device({device_identifier(entry_id, configuration)})
                if device is not None:
                    registry.async_update_device(device.id, name=node.display_name)
        self._nodes = nodes
        self._on_change()

    @callback
    def remove_stale_devices(self) -> None:
        """Remove devices of configurations deleted while the entry was not loaded."""
        entry_id = self._entry.entry_id
        current = {device_identifier(entry_id, name) for name in self._nodes}
        registry = dr.async_get(self._hass)
        for device in dr.async_entries_for_config_entry(registry, entry_id):
            ours = {item for item in device.identifiers if item[0] == DOMAIN}
            if (DOMAIN, entry_id) in ours or ours & current:
                continue
            registry.async_update_device(device.id, remove_config_entry_id=entry_id)

    @callback
    def clear_issues(self) -> None:
        """Clear the issues of unreadable files (nothing watches the files once unloaded)."""
        for configuration in self._unreadable:
            async_clear_unreadable(self._hass, self._entry.entry_id, configuration)
