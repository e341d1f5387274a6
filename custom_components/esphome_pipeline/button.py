"""Buttons: install and clean per configuration; reset of the build environment on the hub."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import EsphomePipelineConfigEntry, PipelineCoordinator
from .entity import ConfigurationEntity, HubEntity, async_add_configuration_entities
from .helpers import engine_errors

# A press only queues a job; the engine serialises the real work.
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EsphomePipelineConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the hub's reset button and install/clean per configuration."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities([ResetBuildEnvButton(coordinator)])
    async_add_configuration_entities(
        coordinator,
        entry,
        async_add_entities,
        lambda coordinator, name: [
            InstallButton(coordinator, name, "install"),
            CleanButton(coordinator, name, "clean"),
        ],
    )


class InstallButton(ConfigurationEntity, ButtonEntity):
    """Queue an install chain over OTA."""

    async def async_press(self) -> None:
        """Queue the install."""
        with engine_errors():
            await self.coordinator.async_install([self.configuration])


class CleanButton(ConfigurationEntity, ButtonEntity):
    """Queue a clean of the configuration's build files."""

    _attr_entity_category = EntityCategory.CONFIG

    async def async_press(self) -> None:
        """Queue the clean."""
        with engine_errors():
            await self.coordinator.async_clean([self.configuration])


class ResetBuildEnvButton(HubEntity, ButtonEntity):
    """Cancel everything and remove all build files; rare and heavy, so disabled by default."""

    _attr_entity_category = EntityCategory.CONFIG
    _attr_entity_registry_enabled_default = False

    def __init__(self, coordinator: PipelineCoordinator) -> None:
        """Bind to the hub."""
        super().__init__(coordinator, "reset_build_env")

    async def async_press(self) -> None:
        """Queue the reset."""
        with engine_errors():
            await self.coordinator.async_reset_build_env()
