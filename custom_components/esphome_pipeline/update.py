"""The `firmware` update entity of each configuration.

`latest_version` is the configuration's current fingerprint (what it would build now),
`installed_version` the fingerprint of its last successful install, so an edited
configuration shows "update available". Install queues an install chain over OTA, exactly as
the `install` action does. `update_percentage` = compile progress x 0.8 + upload progress
x 0.2 (see snapshot.COMPILE_SHARE). Every value comes from the configuration's state in the
snapshot; there is one firmware entity per configuration, so its description holds only the
static parts.
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.components.update import (
    UpdateDeviceClass,
    UpdateEntity,
    UpdateEntityDescription,
    UpdateEntityFeature,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import EsphomePipelineConfigEntry, PipelineCoordinator
from .entity import ConfigurationEntity, async_add_configuration_entities
from .helpers import engine_error_handler

# Installing only queues a job; the engine serialises the real work.
PARALLEL_UPDATES = 0

FIRMWARE: Final = UpdateEntityDescription(
    key="firmware",
    translation_key="firmware",
    device_class=UpdateDeviceClass.FIRMWARE,
    entity_category=EntityCategory.CONFIG,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EsphomePipelineConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a firmware entity per configuration."""
    await async_add_configuration_entities(
        entry.runtime_data.coordinator,
        entry,
        async_add_entities,
        lambda coordinator, name: [FirmwareUpdateEntity(coordinator, name)],
    )


class FirmwareUpdateEntity(ConfigurationEntity, UpdateEntity):
    """Installed build versus the build the configuration would produce now."""

    _attr_supported_features = UpdateEntityFeature.INSTALL | UpdateEntityFeature.PROGRESS
    _attr_title = "ESPHome firmware"

    def __init__(self, coordinator: PipelineCoordinator, configuration: str) -> None:
        """Bind to the configuration."""
        super().__init__(coordinator, configuration, FIRMWARE)

    @property
    def installed_version(self) -> str | None:
        """Return the fingerprint of the last successful install, if any."""
        state = self.state_of_configuration
        return None if state is None else state.installed

    @property
    def latest_version(self) -> str | None:
        """Return the fingerprint of the current configuration."""
        state = self.state_of_configuration
        return None if state is None else state.node.fingerprint

    @property
    def in_progress(self) -> bool:
        """Return True while this configuration's install chain is active."""
        state = self.state_of_configuration
        return state is not None and state.install_in_progress

    @property
    def update_percentage(self) -> int | None:
        """Return the chain's combined percentage (None while unknown)."""
        state = self.state_of_configuration
        return None if state is None else state.install_percentage

    def version_is_newer(self, latest_version: str, installed_version: str) -> bool:
        """Fingerprints are not ordered: any difference means the configuration changed."""
        return latest_version != installed_version

    @engine_error_handler
    async def async_install(self, version: str | None, backup: bool, **kwargs: Any) -> None:
        """Queue an install chain over OTA, labelled with the file as it is now."""
        await self.coordinator.async_install([self.configuration])
