"""The provisioning wiring of `__init__.py` and `update.py`, applied by patching until those
modules carry it themselves (they are being rewritten on another branch).

`provisioning_wiring()`: setup checks the CLI through `preflight.async_check_entry_cli` (the
installed version picks the CLI; one that does not run raises the "Reinstall ESPHome" repair),
and the update platform adds the hub's `esphome` entity when the integration installed the
entry's CLI. Once the modules carry the wiring, both patches change nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import current_entry
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from custom_components.esphome_pipeline import update as update_platform
from custom_components.esphome_pipeline.esphome_update import ManagedEsphomeUpdateEntity
from custom_components.esphome_pipeline.preflight import CheckedCli, async_check_entry_cli
from custom_components.esphome_pipeline.provision.manager import managed_esphome_version


@contextlib.contextmanager
def provisioning_wiring() -> Iterator[None]:
    """Apply the wiring lines for the duration of the block."""
    original_setup = update_platform.async_setup_entry
    platform_wired = hasattr(update_platform, "ManagedEsphomeUpdateEntity")

    async def check_cli(hass: HomeAssistant, command: str, **_ignored: Any) -> CheckedCli:
        # Stands in for `checked = await async_check_entry_cli(hass, entry)` in setup.
        entry = current_entry.get()
        assert entry is not None
        return await async_check_entry_cli(hass, entry)

    async def setup_update_platform(
        hass: HomeAssistant, entry: Any, async_add_entities: AddConfigEntryEntitiesCallback
    ) -> None:
        await original_setup(hass, entry, async_add_entities)
        if managed_esphome_version(entry) and not platform_wired:
            coordinator = entry.runtime_data.coordinator
            async_add_entities(
                [
                    ManagedEsphomeUpdateEntity(
                        entry,
                        queue=coordinator.engine,
                        installed_version=coordinator.esphome_version,
                    )
                ]
            )

    with (
        patch("custom_components.esphome_pipeline.async_check_cli", check_cli, create=True),
        patch.object(update_platform, "async_setup_entry", setup_update_platform),
    ):
        yield
