"""Base entities: one per configuration device and one for the entry's hub device.

Entities of a configuration appear when its file appears (`async_add_configuration_entities`
adds them on every snapshot that brings a new configuration) and go away with its device.
They are available while the engine's lanes run and the configuration exists. Each entity
writes state when its own configuration's state changes (hub entities: the queue status), or
on the rare pushes that concern every entity (see the coordinator).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .configurations import device_identifier
from .const import DOMAIN
from .coordinator import PipelineCoordinator
from .snapshot import ConfigurationState

CONFIGURATIONS_PER_ADD: Final = 25
"""Configurations whose entities are added in one loop iteration at setup."""


class PipelineEntity(CoordinatorEntity[PipelineCoordinator]):
    """Common base: named by translation, available while the engine runs."""

    _attr_has_entity_name = True

    @property
    def available(self) -> bool:
        """Return True while the lanes run."""
        return super().available and self.coordinator.data.engine_running


def hub_device_info(coordinator: PipelineCoordinator) -> DeviceInfo:
    """Return the entry's hub device: the queue, parent of every configuration device."""
    entry = coordinator.config_entry
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="ESPHome Pipeline",
        model="Firmware job queue",
        sw_version=f"ESPHome {coordinator.esphome_version}",
        entry_type=DeviceEntryType.SERVICE,
    )


class HubEntity(PipelineEntity):
    """An entity of the entry's hub device (the queue itself)."""

    def __init__(self, coordinator: PipelineCoordinator, description: EntityDescription) -> None:
        """Bind to the hub device; the description's key names the entity."""
        super().__init__(coordinator)
        entry = coordinator.config_entry
        self.entity_description = description
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = hub_device_info(coordinator)

    async def async_added_to_hass(self) -> None:
        """Also write state when the queue status changes (coalesced by the coordinator)."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.coordinator.listeners.add_queue_listener(self._handle_coordinator_update)
        )


class ConfigurationEntity(PipelineEntity):
    """An entity of one configuration's device."""

    def __init__(
        self,
        coordinator: PipelineCoordinator,
        configuration: str,
        description: EntityDescription,
    ) -> None:
        """Bind to the configuration's device; the description's key names the entity."""
        super().__init__(coordinator)
        entry_id = coordinator.config_entry.entry_id
        node = coordinator.data.configurations[configuration].node
        self.configuration = configuration
        self.entity_description = description
        self._attr_unique_id = f"{entry_id}_{configuration}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={device_identifier(entry_id, configuration)},
            name=node.display_name,
            manufacturer="ESPHome",
            model=node.platform,
            via_device=(DOMAIN, entry_id),
        )

    async def async_added_to_hass(self) -> None:
        """Also write state when this configuration's state changes, and only then.

        The coordinator's general listener (registered by the base class) fires only when
        configurations come or go or the engine starts or ends; a job change reaches the
        entities of its own configuration alone.
        """
        await super().async_added_to_hass()
        self.async_on_remove(
            self.coordinator.listeners.add_configuration_listener(
                self.configuration, self._handle_coordinator_update
            )
        )

    @property
    def state_of_configuration(self) -> ConfigurationState | None:
        """Return this configuration's part of the snapshot (None once its file is gone)."""
        return self.coordinator.data.configurations.get(self.configuration)

    @property
    def available(self) -> bool:
        """Return True while the engine runs and the configuration exists."""
        return super().available and self.state_of_configuration is not None


async def async_add_configuration_entities(
    coordinator: PipelineCoordinator,
    entry: ConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    factory: Callable[[PipelineCoordinator, str], Iterable[Entity]],
) -> None:
    """Add `factory`'s entities for every configuration now and for each new one later.

    The first ones are added in slices of `CONFIGURATIONS_PER_ADD` configurations with a
    yield to the loop in between: adding the entities of 500 configurations in one step would
    hold the loop for the whole of it.
    """
    known: set[str] = set()

    @callback
    def add(names: list[str]) -> None:
        known.update(names)
        async_add_entities([entity for name in names for entity in factory(coordinator, name)])

    @callback
    def add_new() -> None:
        current = set(coordinator.data.configurations)
        # Forget removed ones, so a file that comes back gets its entities again.
        known.intersection_update(current)
        if new := sorted(current - known):
            add(new)

    first = sorted(coordinator.data.configurations)
    for start in range(0, len(first), CONFIGURATIONS_PER_ADD):
        if start:
            await asyncio.sleep(0)
        add(first[start : start + CONFIGURATIONS_PER_ADD])
    add_new()  # the configurations a scan brought while this yielded
    entry.async_on_unload(coordinator.async_add_listener(add_new))
