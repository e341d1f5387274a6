"""Entities: registry and states (snapshots), and how they follow an install."""

from __future__ import annotations

import asyncio
import json
import socket
from unittest.mock import patch

from homeassistant.const import STATE_UNAVAILABLE, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.esphome_pipeline.const import EVENT_JOB
from custom_components.esphome_pipeline.engine.events import JobEvent
from custom_components.esphome_pipeline.engine.firmware import FirmwareEngine
from custom_components.esphome_pipeline.engine.state import HELD_DEVICE_OFFLINE
from tests.fakes import FakeEsphome

from .conftest import coordinator_of, engine_of, setup_entry, wait_for_status


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize("platform", [Platform.BUTTON, Platform.SENSOR, Platform.UPDATE])
async def test_entities_snapshot(
    hass: HomeAssistant,
    fake: FakeEsphome,
    entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    platform: Platform,
) -> None:
    """Every entity's registry entry and idle state."""
    fake.add_config("kitchen", friendly_name="Kitchen Light")
    fake.add_config("garage")
    with pytest.MonkeyPatch.context() as patcher:
        patcher.setattr("custom_components.esphome_pipeline.PLATFORMS", [platform])
        await setup_entry(hass, entry)
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_install_button_runs_chain(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """The install button queues compile + upload; sensors, update entity and events follow."""
    fake.add_config("kitchen")
    fake.behave("kitchen.yaml", "compile", wait_for_file="go")
    await setup_entry(hass, entry)
    events = async_capture_events(hass, EVENT_JOB)

    update = hass.states.get("update.kitchen_firmware")
    # Never installed by the pipeline: offered as an update, with Install, from the start.
    assert update.state == "on"
    assert update.attributes["installed_version"] == "Not installed yet"
    assert update.attributes["release_summary"].startswith("Never installed by ESPHome Pipeline")
    assert update.attributes["in_progress"] is False

    await hass.services.async_call(
        "button", "press", {"entity_id": "button.kitchen_install"}, blocking=True
    )
    await hass.async_block_till_done()
    compile_job, upload_job = coordinator_of(entry).jobs()
    assert hass.states.get("sensor.kitchen_upload").attributes == {
        **hass.states.get("sensor.kitchen_upload").attributes,
        "job_id": upload_job.job_id,
        "held": True,
        "held_reason": "waiting for its compile",
    }
    assert hass.states.get("update.kitchen_firmware").attributes["in_progress"] is True
    await wait_for_status(hass, entry, compile_job.job_id, "running")
    await hass.async_block_till_done()
    assert hass.states.get("sensor.kitchen_compile").state == "running"
    assert hass.states.get("sensor.esphome_pipeline_esphome_compile_lane").state == "busy"
    assert hass.states.get("sensor.esphome_pipeline_esphome_compile_lane").attributes["jobs"] == [
        compile_job.job_id
    ]
    assert hass.states.get("sensor.esphome_pipeline_esphome_queue_depth").state == "1"

    fake.release("go")
    await wait_for_status(hass, entry, upload_job.job_id, "completed")
    await hass.async_block_till_done()
    assert hass.states.get("sensor.kitchen_compile").state == "completed"
    assert hass.states.get("sensor.kitchen_upload").state == "completed"
    update = hass.states.get("update.kitchen_firmware")
    assert update.state == "off"
    assert update.attributes["installed_version"].endswith(update.attributes["latest_version"][-7:])
    assert update.attributes["installed_version"].startswith("2026.10.0 · ")
    assert update.attributes["release_summary"] is None
    assert update.attributes["in_progress"] is False

    statuses = [(event.data["job_type"], event.data["status"]) for event in events]
    # One event per status change: the upload's `held` flip does not repeat "queued".
    assert statuses == [
        ("compile", "queued"),
        ("upload", "queued"),
        ("compile", "running"),
        ("compile", "completed"),
        ("upload", "running"),
        ("upload", "completed"),
    ]
    assert set(events[0].data) == {
        "job_id", "configuration", "job_type", "status", "lane", "depends_on", "held",
        "held_reason", "source", "peer", "port", "progress", "skipped", "exit_code", "error",
        "created_at", "started_at", "finished_at", "device_id",
    }  # fmt: skip

    # The configuration changes: an update becomes available.
    (fake.config_dir / "kitchen.yaml").write_text(
        (fake.config_dir / "kitchen.yaml").read_text() + "logger:\n"
    )
    await coordinator_of(entry).async_rescan()
    await hass.async_block_till_done()
    assert hass.states.get("update.kitchen_firmware").state == "on"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_update_entity_install_and_progress(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """update.install queues the chain; the percentage combines compile and upload."""
    fake.add_config("kitchen")
    fake.behave(
        "kitchen.yaml",
        "compile",
        lines=["Compiling [ 50%] src/main.cpp"],
        wait_for_file="go",
    )
    fake.behave("kitchen.yaml", "upload", wait_for_file="go-upload")
    await setup_entry(hass, entry)
    await hass.services.async_call(
        "update", "install", {"entity_id": "update.kitchen_firmware"}, blocking=True
    )
    compile_job, upload_job = coordinator_of(entry).jobs()
    assert hass.states.get("update.kitchen_firmware").attributes["update_percentage"] is None

    fake.release("go")
    await wait_for_status(hass, entry, upload_job.job_id, "running")
    await hass.async_block_till_done()
    state = hass.states.get("update.kitchen_firmware")
    assert state.attributes["in_progress"] is True
    assert state.attributes["update_percentage"] == 80  # compile done, upload at 0
    fake.release("go-upload")
    await wait_for_status(hass, entry, upload_job.job_id, "completed")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_clean_and_reset_buttons(
    hass: HomeAssistant,
    fake: FakeEsphome,
    entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
) -> None:
    """Clean queues a clean; the reset button (disabled by default) queues clean-all."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    assert hass.states.get("button.esphome_pipeline_esphome_reset_build_environment") is None
    entity_registry.async_update_entity(
        "button.esphome_pipeline_esphome_reset_build_environment", disabled_by=None
    )
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()

    await hass.services.async_call(
        "button", "press", {"entity_id": "button.kitchen_clean_build_files"}, blocking=True
    )
    await hass.services.async_call(
        "button",
        "press",
        {"entity_id": "button.esphome_pipeline_esphome_reset_build_environment"},
        blocking=True,
    )
    jobs = coordinator_of(entry).jobs()
    assert [job.job_type for job in jobs] == ["clean", "reset_build_env"]
    for job in jobs:
        await wait_for_status(hass, entry, job.job_id, "completed", "cancelled")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_entities_unavailable_when_engine_stops(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """If the lanes die, the entities turn unavailable (and the failure is logged)."""
    fake.add_config("kitchen")
    crash: asyncio.Future[None] = hass.loop.create_future()

    async def failing_run(self: FirmwareEngine) -> None:
        await crash
        raise RuntimeError("lane worker crashed")

    with patch.object(FirmwareEngine, "run", failing_run):
        await setup_entry(hass, entry)
    coordinator = coordinator_of(entry)
    stopped: asyncio.Future[None] = hass.loop.create_future()

    def on_update() -> None:
        if not coordinator.engine_running and not stopped.done():
            stopped.set_result(None)

    unsubscribe = coordinator.async_add_listener(on_update)
    crash.set_result(None)
    await stopped
    unsubscribe()
    await hass.async_block_till_done()
    assert hass.states.get("sensor.kitchen_compile").state == STATE_UNAVAILABLE
    assert hass.states.get("sensor.esphome_pipeline_esphome_queue_depth").state == (
        STATE_UNAVAILABLE
    )
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_entity_of_removed_configuration(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """An entity whose configuration left the snapshot shows idle/None and is unavailable."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    components = hass.data["entity_components"]
    sensor = components["sensor"].get_entity("sensor.kitchen_upload")
    update = components["update"].get_entity("update.kitchen_firmware")
    coordinator = coordinator_of(entry)
    coordinator._configurations._nodes.clear()
    coordinator._publish_all()
    assert sensor.native_value == "idle"
    assert sensor.extra_state_attributes == {
        "job_id": None,
        "progress": None,
        "error": None,
        "cancel_reason": None,
        "held": False,
        "held_reason": None,
    }
    assert sensor.available is False
    cancel = components["button"].get_entity("button.kitchen_cancel")
    assert cancel.available is False
    assert update.installed_version is None
    assert update.latest_version is None
    assert update.in_progress is False
    assert update.update_percentage is None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_install_labels_current_file(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """A press right after an edit labels the chain with the edited file's fingerprint."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    before = coordinator_of(entry).nodes["kitchen.yaml"].fingerprint
    fake.add_config("kitchen", extra="logger:\n")
    await hass.services.async_call(
        "button", "press", {"entity_id": "button.kitchen_install"}, blocking=True
    )
    compile_job, upload_job = coordinator_of(entry).jobs()
    assert compile_job.fingerprint != before
    assert compile_job.fingerprint == coordinator_of(entry).nodes["kitchen.yaml"].fingerprint
    await wait_for_status(hass, entry, upload_job.job_id, "completed")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_any_fingerprint_change_is_an_update(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """Fingerprints are not version numbers: a lower-looking one is still an update."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    update = hass.data["entity_components"]["update"].get_entity("update.kitchen_firmware")
    assert update.version_is_newer("123456789012", "923456789012")
    assert not update.version_is_newer("123456789012", "123456789012")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_upload_waiting_for_its_offline_device(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, socket_enabled: None
) -> None:
    """Held "device offline": the sensor says why, the update entity says so and is idle."""
    fake.add_config("kitchen")
    with socket.socket() as probe:  # a loopback port nothing listens on: the device is away
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    storage = fake.config_dir / ".esphome" / "storage"
    storage.mkdir(parents=True)
    validated = {"config": {"api": {"port": port}, "wifi": {"use_address": "127.0.0.1"}}}
    (storage / "kitchen.yaml.validated.json").write_text(json.dumps(validated))
    await setup_entry(hass, entry)
    engine = engine_of(entry)
    offline: asyncio.Future[None] = hass.loop.create_future()

    def listener(event: JobEvent) -> None:
        if event.job.held_reason == HELD_DEVICE_OFFLINE and not offline.done():
            offline.set_result(None)

    unsubscribe = engine.subscribe(listener)
    try:
        await hass.services.async_call(
            "button", "press", {"entity_id": "button.kitchen_install"}, blocking=True
        )
        async with asyncio.timeout(60):
            await offline
    finally:
        unsubscribe()
    await hass.async_block_till_done()
    upload = hass.states.get("sensor.kitchen_upload")
    assert upload.state == "waiting"
    assert upload.attributes["held_reason"] == "device offline"
    update = hass.states.get("update.kitchen_firmware")
    assert update.attributes["in_progress"] is False
    assert update.attributes["release_summary"].startswith("waiting: device offline\n\nNever ")
    await hass.services.async_call(
        "button", "press", {"entity_id": "button.kitchen_cancel"}, blocking=True
    )
    await hass.async_block_till_done()
    assert hass.states.get("sensor.kitchen_upload").state == "cancelled"
