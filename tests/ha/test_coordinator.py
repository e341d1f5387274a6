"""Devices following the files, repair issues, rescans and progress pushes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from unittest.mock import patch

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.esphome_pipeline.const import DOMAIN, RESCAN_INTERVAL
from custom_components.esphome_pipeline.engine.events import EventKind, JobEvent
from custom_components.esphome_pipeline.push import PROGRESS_INTERVAL
from tests.fakes import FakeEsphome

from .conftest import coordinator_of, engine_of, setup_entry, wait_for_status


def _device(
    hass: HomeAssistant, entry: MockConfigEntry, configuration: str
) -> dr.DeviceEntry | None:
    return dr.async_get(hass).async_get_device({(DOMAIN, f"{entry.entry_id}_{configuration}")})


async def test_devices_follow_files(
    hass: HomeAssistant,
    fake: FakeEsphome,
    entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
) -> None:
    """New files add devices, renamed nodes rename them, removed files remove them."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    assert _device(hass, entry, "garage.yaml") is None

    fake.add_config("garage", friendly_name="Garage Door")
    created = asyncio.Event()

    @callback
    def on_device(event: Event[dr.EventDeviceRegistryUpdatedData]) -> None:
        if event.data["action"] == "create":
            created.set()

    hass.bus.async_listen(dr.EVENT_DEVICE_REGISTRY_UPDATED, on_device)
    # The coordinator's own refresh (a background task): due within a second after the interval.
    async_fire_time_changed(hass, dt_util.utcnow() + RESCAN_INTERVAL + timedelta(seconds=1))
    async with asyncio.timeout(30):
        await created.wait()
    await hass.async_block_till_done()
    garage = _device(hass, entry, "garage.yaml")
    assert garage is not None
    assert garage.name == "Garage Door"
    assert hass.states.get("update.garage_door_firmware") is not None

    fake.add_config("garage", friendly_name="Big Garage Door")
    await coordinator_of(entry).async_rescan()
    await hass.async_block_till_done()
    garage = _device(hass, entry, "garage.yaml")
    assert garage is not None
    assert garage.name == "Big Garage Door"

    (fake.config_dir / "garage.yaml").unlink()
    await coordinator_of(entry).async_rescan()
    await hass.async_block_till_done()
    assert _device(hass, entry, "garage.yaml") is None
    assert entity_registry.async_get("update.garage_door_firmware") is None
    assert hass.states.get("update.garage_door_firmware") is None

    # The file comes back: so do its device and entities.
    fake.add_config("garage", friendly_name="Garage Door")
    await coordinator_of(entry).async_rescan()
    await hass.async_block_till_done()
    assert _device(hass, entry, "garage.yaml") is not None
    assert hass.states.get("update.garage_door_firmware").state != "unavailable"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_check_for_updates_reads_the_folder(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """`homeassistant.update_entity` (what Settings -> Updates "Check for updates" calls)
    rescans at once: an edited name shows without waiting for the next periodic scan."""
    assert await async_setup_component(hass, "homeassistant", {})
    fake.add_config("garage", friendly_name="Garage Door")
    await setup_entry(hass, entry)
    fake.add_config("garage", friendly_name="Big Garage Door")
    await hass.services.async_call(
        "homeassistant",
        "update_entity",
        {"entity_id": "update.garage_door_firmware"},
        blocking=True,
    )
    await hass.async_block_till_done()
    garage = _device(hass, entry, "garage.yaml")
    assert garage is not None
    assert garage.name == "Big Garage Door"
    assert hass.states.get("update.garage_door_firmware").state != "unavailable"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unreadable_configuration_issue(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """A file that fails to parse raises an issue (and is skipped); fixing it clears the issue."""
    fake.add_config("kitchen")
    (fake.config_dir / "broken.yaml").write_text("esphome: [\n")
    await setup_entry(hass, entry)
    issue_id = f"unreadable_{entry.entry_id}_broken.yaml"
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "unreadable_configuration"
    assert issue.is_fixable is False
    assert _device(hass, entry, "broken.yaml") is None

    fake.add_config("broken")
    await coordinator_of(entry).async_rescan()
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    assert _device(hass, entry, "broken.yaml") is not None

    # A typo in a known configuration keeps its device (and entity settings) meanwhile.
    (fake.config_dir / "broken.yaml").write_text("esphome: [\n")
    await coordinator_of(entry).async_rescan()
    await coordinator_of(entry).async_rescan()  # same error: raised once, not refreshed
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None
    assert _device(hass, entry, "broken.yaml") is not None
    assert hass.states.get("update.broken_firmware").state != "unavailable"
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_folder_vanishing_keeps_state(
    hass: HomeAssistant,
    fake: FakeEsphome,
    entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A scan that cannot list the folder keeps the devices and logs a warning."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    with patch(
        "custom_components.esphome_pipeline.configurations.scan_config_dir",
        side_effect=PermissionError("denied"),
    ):
        await coordinator_of(entry).async_rescan()
        await coordinator_of(entry).async_rescan()
    assert caplog.text.count("Cannot scan") == 1  # said once, not at every scan
    assert _device(hass, entry, "kitchen.yaml") is not None
    await coordinator_of(entry).async_rescan()
    assert "can be scanned again" in caplog.text
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_remove_config_entry_device(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """A device can be removed by the user only once its file is gone; never the hub."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    from custom_components.esphome_pipeline import async_remove_config_entry_device

    kitchen = _device(hass, entry, "kitchen.yaml")
    hub = dr.async_get(hass).async_get_device({(DOMAIN, entry.entry_id)})
    assert kitchen is not None
    assert hub is not None
    assert not await async_remove_config_entry_device(hass, entry, kitchen)
    assert not await async_remove_config_entry_device(hass, entry, hub)
    (fake.config_dir / "kitchen.yaml").unlink()
    with patch.object(coordinator_of(entry)._configurations, "_apply"):
        await coordinator_of(entry).async_rescan()
    coordinator_of(entry)._configurations._nodes.clear()
    assert await async_remove_config_entry_device(hass, entry, kitchen)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_progress_pushes_only_changes(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """Output pushes nothing; a changed progress pushes its own configuration, rate limited."""
    fake.add_config("kitchen")
    fake.add_config("garage")
    fake.behave("default", "compile", wait_for_file="go")
    await setup_entry(hass, entry)
    coordinator = coordinator_of(entry)
    job = (await engine_of(entry).compile(["kitchen.yaml"]))[0]
    await hass.async_block_till_done()
    heard: dict[str, list[None]] = {"kitchen": [], "garage": [], "queue": [], "all": []}
    unsubscribers = [
        coordinator.listeners.add_configuration_listener(
            "kitchen.yaml", lambda: heard["kitchen"].append(None)
        ),
        coordinator.listeners.add_configuration_listener(
            "garage.yaml", lambda: heard["garage"].append(None)
        ),
        coordinator.listeners.add_queue_listener(lambda: heard["queue"].append(None)),
        coordinator.async_add_listener(lambda: heard["all"].append(None)),
    ]

    coordinator._on_job_event(JobEvent(EventKind.OUTPUT, job, "line"))
    coordinator._on_job_event(JobEvent(EventKind.PROGRESS, job))  # unchanged (None)
    await hass.async_block_till_done()
    assert heard["kitchen"] == []
    job.progress = 42
    coordinator._on_job_event(JobEvent(EventKind.PROGRESS, job))  # the first: at once
    await hass.async_block_till_done()
    assert len(heard["kitchen"]) == 1
    job.progress = 50
    coordinator._on_job_event(JobEvent(EventKind.PROGRESS, job))
    job.progress = 60
    coordinator._on_job_event(JobEvent(EventKind.PROGRESS, job))  # within the interval
    await hass.async_block_till_done()
    assert len(heard["kitchen"]) == 1
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=PROGRESS_INTERVAL * 2))
    await hass.async_block_till_done()
    assert len(heard["kitchen"]) == 2  # one push, with the newest value
    compile_view = coordinator.data.configurations["kitchen.yaml"].compile
    assert compile_view is not None
    assert compile_view.progress == 60
    # Progress is no queue change, and no other configuration's entities hear of it.
    assert heard["garage"] == heard["queue"] == heard["all"] == []
    for unsubscribe in unsubscribers:
        unsubscribe()
    unsubscribers[0]()  # removing twice is harmless
    job.progress = None
    fake.release("go")
    await wait_for_status(hass, entry, job.job_id, "completed")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_plain_upload_records_last_build(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, tmp_path: Path
) -> None:
    """An upload without a label installs the fingerprint of the last completed compile."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    coordinator = coordinator_of(entry)
    compile_job = (await coordinator.async_compile(["kitchen.yaml"], force=False))[0]
    await wait_for_status(hass, entry, compile_job.job_id, "completed")
    upload_job = (await coordinator.async_upload(["kitchen.yaml"], port="OTA"))[0]
    assert upload_job.fingerprint is None
    await wait_for_status(hass, entry, upload_job.job_id, "completed")
    await hass.async_block_till_done()
    fingerprint = coordinator.nodes["kitchen.yaml"].fingerprint
    assert coordinator.store.installed == {"kitchen.yaml": fingerprint}

    # After a reload the last build is still known from the restored history.
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    coordinator = coordinator_of(entry)
    upload_job = (await coordinator.async_upload(["kitchen.yaml"], port="OTA"))[0]
    await wait_for_status(hass, entry, upload_job.job_id, "completed")
    await hass.async_block_till_done()
    assert coordinator.store.installed == {"kitchen.yaml": fingerprint}
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_rescan_timer_stops_on_unload(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """After unload the timer no longer scans."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    assert await hass.config_entries.async_unload(entry.entry_id)
    with patch("custom_components.esphome_pipeline.configurations.scan_config_dir") as scan:
        async_fire_time_changed(hass, dt_util.utcnow() + RESCAN_INTERVAL + timedelta(seconds=1))
        await hass.async_block_till_done()
    scan.assert_not_called()


async def test_file_deleted_while_unloaded(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """A configuration deleted while the entry was unloaded loses its device at setup."""
    fake.add_config("kitchen")
    fake.add_config("garage")
    await setup_entry(hass, entry)
    assert await hass.config_entries.async_unload(entry.entry_id)
    (fake.config_dir / "garage.yaml").unlink()
    await setup_entry(hass, entry)
    assert _device(hass, entry, "garage.yaml") is None
    assert _device(hass, entry, "kitchen.yaml") is not None
    assert dr.async_get(hass).async_get_device({(DOMAIN, entry.entry_id)}) is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
