"""Buttons: install, cancel and clean per configuration; reset of the build environment on the hub.

A press calls the coordinator's request its description names (`press_fn`); the coordinator
reads the folder first, so an install is labelled with the file as it is now. A button whose
description has an `available_fn` is available only while it says so (Cancel: while one of the
configuration's jobs is queued or running).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import EsphomePipelineConfigEntry, PipelineCoordinator
from .entity import ConfigurationEntity, HubEntity, async_add_configuration_entities
from .helpers import engine_error_handler
from .snapshot import ConfigurationState

# A press only queues a job; the engine serialises the real work.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class ConfigurationButtonEntityDescription(ButtonEntityDescription):
    """A button of one configuration: what a press asks the coordinator for."""

    press_fn: Callable[[PipelineCoordinator, str], Awaitable[object]]
    available_fn: Callable[[ConfigurationState], bool] = lambda _state: True


@dataclass(frozen=True, kw_only=True)
class HubButtonEntityDescription(ButtonEntityDescription):
    """A button of the queue itself."""

    press_fn: Callable[[PipelineCoordinator], Awaitable[object]]


CONFIGURATION_BUTTONS: Final = (
    ConfigurationButtonEntityDescription(
        key="install",
        translation_key="install",
        # Over OTA, exactly as the `install` action without a port.
        press_fn=lambda coordinator, name: coordinator.async_install([name]),
    ),
    ConfigurationButtonEntityDescription(
        key="cancel",
        translation_key="cancel",
        press_fn=lambda coordinator, name: coordinator.async_cancel_configurations([name]),
        available_fn=lambda state: state.active,
    ),
    ConfigurationButtonEntityDescription(
        key="clean",
        translation_key="clean",
        entity_category=EntityCategory.CONFIG,
        press_fn=lambda coordinator, name: coordinator.async_clean([name]),
    ),
)

HUB_BUTTONS: Final = (
    # Cancels everything and removes all build files: rare and heavy, so disabled by default.
    HubButtonEntityDescription(
        key="reset_build_env",
        translation_key="reset_build_env",
        entity_category=EntityCategory.CONFIG,
        entity_registry_enabled_default=False,
        press_fn=lambda coordinator: coordinator.async_reset_build_env(),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EsphomePipelineConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the hub's reset button and the buttons of every configuration."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(HubButton(coordinator, description) for description in HUB_BUTTONS)
    await async_add_configuration_entities(
        coordinator,
        entry,
        async_add_entities,
        lambda coordinator, name: [
            ConfigurationButton(coordinator, name, description)
            for description in CONFIGURATION_BUTTONS
        ],
    )


class ConfigurationButton(ConfigurationEntity, ButtonEntity):
    """Queues a job for the configuration."""

    entity_description: ConfigurationButtonEntityDescription

    def __init__(
        self,
        coordinator: PipelineCoordinator,
        configuration: str,
        description: ConfigurationButtonEntityDescription,
    ) -> None:
        """Bind to the configuration."""
        super().__init__(coordinator, configuration, description)

    @property
    def available(self) -> bool:
        """Return True while the configuration exists and the button can do something."""
        state = self.state_of_configuration
        return (
            super().available and state is not None and self.entity_description.available_fn(state)
        )

    @engine_error_handler
    async def async_press(self) -> None:
        """Ask the coordinator for what the button does."""
        await self.entity_description.press_fn(self.coordinator, self.configuration)


class HubButton(HubEntity, ButtonEntity):
    """Queues a job for the whole queue."""

    entity_description: HubButtonEntityDescription

    def __init__(
        self, coordinator: PipelineCoordinator, description: HubButtonEntityDescription
    ) -> None:
        """Bind to the hub."""
        super().__init__(coordinator, description)

    @engine_error_handler
    async def async_press(self) -> None:
        """Queue the job."""
        await self.entity_description.press_fn(self.coordinator)
