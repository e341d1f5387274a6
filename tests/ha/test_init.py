"""Setup, unload, reload and the queue surviving them."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esphome_pipeline.const import CONF_ESPHOME_COMMAND, DOMAIN
from custom_components.esphome_pipeline.engine.exit_record import exit_record_path
from custom_components.esphome_pipeline.engine.firmware import EXIT_RECORD_DIR
from custom_components.esphome_pipeline.engine.models import (
    Job,
    JobStatus,
    JobType,
    Lane,
    ProcessRecord,
)
from custom_components.esphome_pipeline.store import storage_key
from tests.fakes import FakeEsphome

from .conftest import coordinator_of, engine_of, setup_entry, wait_for_status


async def test_setup_creates_devices_and_entities(
    hass: HomeAssistant,
    fake: FakeEsphome,
    entry: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
) -> None:
    """Each configuration becomes a device with its entities; the hub has the lane sensors."""
    fake.add_config("kitchen", friendly_name="Kitchen Light")
    fake.add_config("garage")
    await setup_entry(hass, entry)

    kitchen = device_registry.async_get_device({(DOMAIN, f"{entry.entry_id}_kitchen.yaml")})
    assert kitchen is not None
    assert kitchen.name == "Kitchen Light"
    hub = device_registry.async_get_device({(DOMAIN, entry.entry_id)})
    assert hub is not None
    assert kitchen.via_device_id == hub.id
    unique_ids = {
        e.unique_id for e in er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    }
    for key in ("firmware", "compile", "upload", "install", "clean"):
        assert f"{entry.entry_id}_kitchen.yaml_{key}" in unique_ids
        assert f"{entry.entry_id}_garage.yaml_{key}" in unique_ids
    for key in ("compile_lane", "upload_lane", "queue_depth", "reset_build_env"):
        assert f"{entry.entry_id}_{key}" in unique_ids
    assert hass.states.get("sensor.esphome_pipeline_esphome_compile_lane").state == "idle"
    assert hass.states.get("update.kitchen_light_firmware") is not None

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert hass.states.get("update.kitchen_light_firmware").state == "unavailable"


async def test_folder_missing_is_not_ready(
    hass: HomeAssistant, entry: MockConfigEntry, config_dir: Path
) -> None:
    """A missing folder retries later instead of failing."""
    config_dir.rmdir()
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_cli_missing_raises_issue(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    esphome_command: str,
) -> None:
    """A CLI that does not answer retries later with a repair issue, cleared once it works."""
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry, options={CONF_ESPHOME_COMMAND: "/nonexistent/esphome"}
    )
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert issue_registry.async_get_issue(DOMAIN, f"cli_unavailable_{entry.entry_id}")

    hass.config_entries.async_update_entry(entry, options={CONF_ESPHOME_COMMAND: esphome_command})
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert not issue_registry.async_get_issue(DOMAIN, f"cli_unavailable_{entry.entry_id}")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_nothing_detected_raises_issue(
    hass: HomeAssistant, entry: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """With no command and nothing detected, setup retries with the issue."""
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, options={})
    with patch(
        "custom_components.esphome_pipeline.preflight.detect_command_line", return_value=None
    ):
        await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    issue = issue_registry.async_get_issue(DOMAIN, f"cli_unavailable_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_placeholders == {"command": "(auto-detect)", "error": "cli_not_found"}


async def test_queue_survives_reload(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """A running install stops with the entry, comes back queued and runs after setup."""
    fake.add_config("kitchen")
    fake.behave("kitchen.yaml", "compile", wait_for_file="go")
    await setup_entry(hass, entry)
    chains = await coordinator_of(entry).async_install(["kitchen.yaml"])
    compile_id, upload_id = chains[0].compile.job_id, chains[0].upload.job_id
    await fake.wait_for_call("start", "compile")

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert fake.calls("end", "compile")  # the process was stopped, not left behind

    fake.release("go")
    await setup_entry(hass, entry)
    assert coordinator_of(entry).get_job(compile_id) is not None
    done = await wait_for_status(hass, entry, upload_id, "completed", "failed", "cancelled")
    assert done["status"] == "completed"
    assert [record["configuration"] for record in fake.flashed()] == ["kitchen.yaml"]
    await hass.async_block_till_done()
    state = hass.states.get("update.kitchen_firmware")
    assert state.state == "off"
    # The same build: the installed version ends with the latest version's hash.
    assert state.attributes["installed_version"].endswith(state.attributes["latest_version"][-7:])
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_options_change_reloads(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, esphome_command: str
) -> None:
    """Changing options reloads the entry with the new lane sizes."""
    await setup_entry(hass, entry)
    first = coordinator_of(entry)
    hass.config_entries.async_update_entry(
        entry, options={CONF_ESPHOME_COMMAND: esphome_command, "upload_slots": 2}
    )
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert coordinator_of(entry) is not first
    assert engine_of(entry).upload_slots == 2
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_remove_entry_deletes_store(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, hass_storage: dict
) -> None:
    """Removing the entry deletes its stored jobs."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    await engine_of(entry).compile(["kitchen.yaml"])
    await engine_of(entry).flush()
    assert f"{DOMAIN}.{entry.entry_id}" in hass_storage
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert f"{DOMAIN}.{entry.entry_id}" not in hass_storage


async def test_reconfigure_loaded_entry_moves_folder(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, config_dir: Path
) -> None:
    """Reconfiguring a loaded entry reloads it on the new folder with its devices."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    other = FakeEsphome(config_dir.parent / "other")
    other.add_config("porch")
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"config_dir": str(other.config_dir)}
    )
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert set(coordinator_of(entry).nodes) == {"porch.yaml"}
    assert hass.states.get("update.porch_firmware") is not None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_home_assistant_stop_stops_processes(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, hass_storage: dict
) -> None:
    """When Home Assistant stops, running jobs are terminated and stored as queued."""
    fake.add_config("kitchen")
    fake.behave("kitchen.yaml", "compile", wait_for_file="go")
    await setup_entry(hass, entry)
    job = (await engine_of(entry).compile(["kitchen.yaml"]))[0]
    await fake.wait_for_call("start", "compile")
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    assert fake.calls("end", "compile")
    stored = hass_storage[f"{DOMAIN}.{entry.entry_id}"]["data"]["jobs"]
    assert [(item["job_id"], item["status"]) for item in stored] == [(job.job_id, "queued")]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_upload_completed_while_home_assistant_was_down_counts_as_installed(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    fake: FakeEsphome,
    config_dir: Path,
    entry: MockConfigEntry,
) -> None:
    """Home Assistant was killed mid-upload and the OTA finished on its own meanwhile."""
    fake.add_config("kitchen")
    label = "0123456789ab"
    compile_job = Job(
        configuration="kitchen.yaml",
        job_type=JobType.COMPILE,
        lane=Lane.COMPILE,
        status=JobStatus.COMPLETED,
        exit_code=0,
        fingerprint=label,
    )
    upload = Job(
        configuration="kitchen.yaml",
        job_type=JobType.UPLOAD,
        lane=Lane.UPLOAD,
        status=JobStatus.RUNNING,
        port="OTA",
        depends_on=compile_job.job_id,
        fingerprint=label,
        # A session that is long gone: nothing is left to reap.
        process=ProcessRecord(pid=4_194_303, start_time=1),
    )
    hass_storage[storage_key(entry.entry_id)] = {
        "version": 1,
        "minor_version": 1,
        "key": storage_key(entry.entry_id),
        "data": {"jobs": [compile_job.to_dict(), upload.to_dict()]},
    }
    record = exit_record_path(config_dir / EXIT_RECORD_DIR, upload.job_id)
    record.parent.mkdir(parents=True)
    record.write_text("0\n", encoding="ascii")

    await setup_entry(hass, entry)
    restored = coordinator_of(entry).get_job(upload.job_id)
    assert restored is not None
    assert restored.status is JobStatus.COMPLETED
    state = hass.states.get("update.kitchen_firmware")
    assert state is not None
    assert state.attributes["installed_version"].endswith(label[:7])
    assert fake.flashed() == []
    assert await hass.config_entries.async_unload(entry.entry_id)
