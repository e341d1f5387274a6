"""The hub's `esphome` update entity: the ESPHome the integration installed, and its upgrade.

Present only when the integration installed the entry's CLI (`managed_esphome_version`).
Installed = the version the CLI reports; latest = the newest release, asked through the
installer at most once a day (unknown while offline). Install (the latest, or a chosen
version):

1. builds the new version's environment beside the current one (the current one keeps
   serving jobs meanwhile), ending with `esphome version` answering;
2. waits until the entry's queue is idle: nothing running, nothing queued (the user may
   cancel jobs to get there sooner); never switches under a running job;
3. switches: the entry's data names the new version, and the update listener reloads it;
4. removes the environments no entry uses any more (the old one, unless another entry runs it).

A failure before the switch leaves everything as it was. The release link is ESPHome's
changelog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from homeassistant.components.update import UpdateEntity, UpdateEntityFeature
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import EntityCategory
from homeassistant.core import callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.event import async_track_time_interval

from .const import CONF_MANAGED_ESPHOME, DOMAIN
from .engine.events import JobEvent
from .engine.models import QueueStatus
from .provision.installer import InstallError
from .provision.layout import is_valid_version
from .provision.manager import async_get_provisioner, async_remove_unused_environments

ESPHOME_KEY: Final = "esphome"
"""The entity's contract key: unique id `<entry_id>_esphome`."""

CHANGELOG_URL: Final = "https://esphome.io/changelog/"
NEWEST_RECHECK: Final = timedelta(hours=1)
"""How often the entity asks the provisioner; the provisioner itself asks the index at most
once a day, so most of these answers come from its cache."""


class JobQueue(Protocol):
    """What the entity needs of the entry's engine (FirmwareEngine has it)."""

    def queue_status(self) -> QueueStatus:
        """What runs and how many jobs wait."""

    def subscribe(self, callback: Callable[[JobEvent], None]) -> Callable[[], None]:
        """Call `callback` for every job event; return the unsubscriber."""


async def async_wait_until_idle(queue: JobQueue, give_up: asyncio.Event) -> bool:
    """Return True once nothing runs or waits on `queue`, False when `give_up` is set first."""
    if queue.queue_status().idle:
        return True
    idle = asyncio.Event()

    def on_event(_event: JobEvent) -> None:
        if queue.queue_status().idle:
            idle.set()

    unsubscribe = queue.subscribe(on_event)
    waits = [asyncio.ensure_future(idle.wait()), asyncio.ensure_future(give_up.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        unsubscribe()
        for wait in waits:
            wait.cancel()
    return idle.is_set()


class ManagedEsphomeUpdateEntity(UpdateEntity):
    """The installed ESPHome versus its newest release, on the entry's hub device."""

    _attr_has_entity_name = True
    _attr_translation_key = ESPHOME_KEY
    _attr_entity_category = EntityCategory.CONFIG
    _attr_supported_features = (
        UpdateEntityFeature.INSTALL
        | UpdateEntityFeature.PROGRESS
        | UpdateEntityFeature.SPECIFIC_VERSION
    )
    _attr_title = "ESPHome"
    _attr_release_url = CHANGELOG_URL
    _attr_should_poll = False

    def __init__(self, entry: ConfigEntry, *, queue: JobQueue, installed_version: str) -> None:
        """Bind to the entry's hub device; `installed_version` is what its CLI reported."""
        self._entry = entry
        self._queue = queue
        self._managed = str(entry.data[CONF_MANAGED_ESPHOME])
        self._removed = asyncio.Event()
        self._attr_unique_id = f"{entry.entry_id}_{ESPHOME_KEY}"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, entry.entry_id)})
        self._attr_installed_version = installed_version

    async def async_added_to_hass(self) -> None:
        """Ask for the newest release now and then regularly."""
        self.async_on_remove(
            async_track_time_interval(self.hass, self._async_recheck, NEWEST_RECHECK)
        )
        newest_task = self.hass.async_create_background_task(
            self.async_refresh_newest(), f"{DOMAIN} newest ESPHome release"
        )

        @callback
        def cancel_newest_task() -> None:
            newest_task.cancel()

        self.async_on_remove(cancel_newest_task)

    async def async_will_remove_from_hass(self) -> None:
        """Stop an install that still waits for the queue (the entry is going away)."""
        self._removed.set()

    async def _async_recheck(self, _now: datetime) -> None:
        await self.async_refresh_newest()

    async def async_refresh_newest(self) -> None:
        """Ask the provisioner for the newest release and show it."""
        provisioner = async_get_provisioner(self.hass)
        newest = await provisioner.async_newest_release(provisioner.environment(self._managed))
        if newest != self._attr_latest_version:
            self._attr_latest_version = newest
            self.async_write_ha_state()

    async def async_install(self, version: str | None, backup: bool, **kwargs: Any) -> None:
        """Build `version` (default: the latest) beside the current one, wait for an idle
        queue, switch, then remove what is no longer used."""
        # Without `version` Home Assistant only calls this when a newer release is known.
        target = version or self.latest_version or ""
        if not is_valid_version(target):
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="esphome_version_invalid",
                translation_placeholders={"version": target},
            )
        if target == self._managed:
            return
        self._attr_in_progress = True
        self.async_write_ha_state()
        try:
            await async_get_provisioner(self.hass).async_install(target)
        except InstallError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="esphome_install_failed",
                translation_placeholders={"version": target, "error": err.details},
            ) from err
        if not await async_wait_until_idle(self._queue, self._removed):
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="esphome_update_interrupted",
                translation_placeholders={"version": target},
            )
        # The update listener reloads the entry: from now on its jobs run the new version.
        self.hass.config_entries.async_update_entry(
            self._entry, data={**self._entry.data, CONF_MANAGED_ESPHOME: target}
        )
        await async_remove_unused_environments(self.hass)
