"""The `firmware` update entity of each configuration.

`latest_version` says what the configuration would build now ("2026.10.0 · 1a2b3c4": the
ESPHome version and the fingerprint's start), `installed_version` what its last successful
install built (ESPHome version, build time, hash), or "Not installed yet": a device ESPHome
Pipeline never installed is offered Install from the first minute and is listed under
Settings → Updates. The release summary says what changed since the installed build
(release.py). When the device said it runs another build (device_truth.py), installed is what
it runs (ESPHome version and build time, no hash) and the summary says so. Install queues an
install chain over OTA, exactly as the `install` action does.
`update_percentage` = compile progress x 0.8 + upload progress x 0.2 (snapshot.COMPILE_SHARE).
The entity picture is the integration's icon, served by the integration itself (no internet).
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
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import EsphomePipelineConfigEntry, PipelineCoordinator
from .device_runs import RunningBuild
from .engine.state import HELD_DEVICE_OFFLINE
from .entity import ConfigurationEntity, async_add_configuration_entities
from .esphome_update import ManagedEsphomeUpdateEntity
from .helpers import engine_error_handler
from .provision.manager import managed_esphome_version
from .release import (
    async_read_inputs,
    installed_version,
    latest_version,
    other_build_summary,
    release_summary,
    running_version,
    same_build,
)
from .static import ICON_URL

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
    """Add a firmware entity per configuration, and ESPHome's own when we installed it."""
    coordinator = entry.runtime_data.coordinator
    await async_add_configuration_entities(
        coordinator,
        entry,
        async_add_entities,
        lambda coordinator, name: [FirmwareUpdateEntity(coordinator, name)],
    )
    if managed_esphome_version(entry):
        async_add_entities(
            [
                ManagedEsphomeUpdateEntity(
                    entry, queue=coordinator, installed_version=coordinator.esphome_version
                )
            ]
        )


class FirmwareUpdateEntity(ConfigurationEntity, UpdateEntity):
    """Installed build versus the build the configuration would produce now."""

    _attr_supported_features = UpdateEntityFeature.INSTALL | UpdateEntityFeature.PROGRESS
    _attr_title = "ESPHome firmware"

    def __init__(self, coordinator: PipelineCoordinator, configuration: str) -> None:
        """Bind to the configuration."""
        super().__init__(coordinator, configuration, FIRMWARE)
        self._summary: str | None = None
        self._summary_of: tuple[str, str | None, RunningBuild | None] | None = None

    def _other_build(self) -> RunningBuild | None:
        """What the device said it runs, when that is a build we cannot name."""
        running = self.coordinator.devices.answer(self.configuration)
        return running if running is not None and running.fingerprint is None else None

    @property
    def installed_version(self) -> str | None:
        """Return what the device runs: the last install's build, or another build it named."""
        state = self.state_of_configuration
        if state is None:
            return None
        if (other := self._other_build()) is not None:
            return running_version(other)
        return installed_version(state.installed, state.installed_build)

    @property
    def latest_version(self) -> str | None:
        """Return what the configuration would build now."""
        state = self.state_of_configuration
        if state is None:
            return None
        return latest_version(self.coordinator.esphome_version, state.node.fingerprint)

    @property
    def entity_picture(self) -> str | None:
        """Return the integration's icon, served by the integration itself (works offline)."""
        return ICON_URL

    @property
    def release_summary(self) -> str | None:
        """Return what changed since the installed build (None when it is current).

        While the install waits for its offline device, that comes first.
        """
        state = self.state_of_configuration
        upload = None if state is None else state.upload
        if upload is not None and upload.waiting and upload.held_reason == HELD_DEVICE_OFFLINE:
            waiting = f"waiting: {upload.held_reason}"
            return waiting if self._summary is None else f"{waiting}\n\n{self._summary}"
        return self._summary

    async def async_added_to_hass(self) -> None:
        """Work out the first release summary; follow what the device says it runs."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.coordinator.devices.listen(self.configuration, self._handle_coordinator_update)
        )
        self._refresh_summary()

    @callback
    def _handle_coordinator_update(self) -> None:
        self._refresh_summary()
        super()._handle_coordinator_update()

    def _refresh_summary(self) -> None:
        """Recompute the summary when the current or the installed build changed."""
        state = self.state_of_configuration
        if state is None:
            return
        other = self._other_build()
        key = (state.node.fingerprint, state.installed, other)
        if key == self._summary_of:
            return
        self._summary_of = key
        if other is not None:
            self._summary = other_build_summary(other, self.coordinator.esphome_version)
            return
        # At once what needs no file: "never installed", or nothing changed.
        self._summary = release_summary(
            fingerprint=state.node.fingerprint,
            installed=state.installed,
            build=state.installed_build,
            current=None,
        )
        if state.installed is not None and state.installed != state.node.fingerprint:
            self.coordinator.config_entry.async_create_task(
                self.hass, self._async_summarise(key), "firmware release summary"
            )

    async def _async_summarise(self, key: tuple[str, str | None, RunningBuild | None]) -> None:
        """Compare the installed build's inputs with the files as they are now."""
        current = await async_read_inputs(
            self.hass,
            self.coordinator.config_dir,
            self.configuration,
            self.coordinator.esphome_version,
        )
        state = self.state_of_configuration
        if state is None or self._summary_of != key:
            return  # the configuration changed again meanwhile: a newer run covers it
        self._summary = release_summary(
            fingerprint=state.node.fingerprint,
            installed=state.installed,
            build=state.installed_build,
            current=current,
        )
        self.async_write_ha_state()

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
        """Builds are not ordered: any other build (or none installed) is an update."""
        return not same_build(latest_version, installed_version)

    @engine_error_handler
    async def async_install(self, version: str | None, backup: bool, **kwargs: Any) -> None:
        """Queue an install chain over OTA, labelled with the file as it is now."""
        await self.coordinator.async_install([self.configuration])
