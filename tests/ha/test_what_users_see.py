"""What a user sees: ESPHome's message, cancel reasons, the Cancel button, a readable queue."""

from __future__ import annotations

from collections.abc import Callable
import logging
from pathlib import Path

from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.esphome_pipeline import logbook
from custom_components.esphome_pipeline.configurations import device_identifier
from custom_components.esphome_pipeline.const import DOMAIN, EVENT_JOB
from custom_components.esphome_pipeline.sensor import headline
from tests.fakes import FakeEsphome

from .conftest import coordinator_of, setup_entry, wait_for_status

FIXTURES = Path(__file__).parent.parent / "fixtures" / "esphome_output"
BANANA = (
    "Unknown value 'banana', valid options are 'ns', 'nanoseconds', 'us', 'µs', "
    "'microseconds', 'ms', 'milliseconds', 's', 'sec', 'seconds', 'min', 'minutes', 'h', "
    "'hours', 'd', 'days'."
)


def _fixture_lines(name: str) -> list[str]:
    return (FIXTURES / f"{name}.log").read_text(encoding="utf-8").splitlines()


def _describer(hass: HomeAssistant) -> Callable[[Event], dict[str, str]]:
    described: dict[tuple[str, str], Callable[[Event], dict[str, str]]] = {}

    def register(domain: str, event_type: str, describe: Callable[[Event], dict[str, str]]) -> None:
        described[(domain, event_type)] = describe

    logbook.async_describe_events(hass, register)
    return described[(DOMAIN, EVENT_JOB)]


async def _press(hass: HomeAssistant, entity_id: str) -> None:
    await hass.services.async_call("button", "press", {"entity_id": entity_id}, blocking=True)
    await hass.async_block_till_done()


async def test_failed_compile_shows_esphome_s_message(
    hass: HomeAssistant,
    fake: FakeEsphome,
    entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Sensors, the logbook and the log say what ESPHome said, not the line around it."""
    fake.add_config("kitchen", friendly_name="Kitchen Light")
    fake.behave(
        "kitchen.yaml", "compile", lines=_fixture_lines("unknown_value_nested"), exit_code=2
    )
    caplog.set_level(logging.DEBUG, logger="custom_components.esphome_pipeline")
    await setup_entry(hass, entry)
    events = async_capture_events(hass, EVENT_JOB)
    await _press(hass, "button.kitchen_light_install")
    compile_job, upload_job = coordinator_of(entry).jobs()
    await wait_for_status(hass, entry, upload_job.job_id, "cancelled")
    await hass.async_block_till_done()

    compile_state = hass.states.get("sensor.kitchen_light_compile")
    assert compile_state.state == "failed"
    assert compile_state.attributes["error"] == BANANA
    assert compile_state.attributes["cancel_reason"] is None
    upload_state = hass.states.get("sensor.kitchen_light_upload")
    assert upload_state.state == "cancelled"
    assert upload_state.attributes["cancel_reason"] == "prerequisite did not complete"
    last_error = hass.states.get("sensor.kitchen_light_last_error")
    # A headline as the state (so the device page keeps the name readable), all of it aside.
    assert last_error.state == "Unknown value 'banana', valid options are 'ns'…"
    assert last_error.attributes["message"] == BANANA
    assert last_error.attributes["job_type"] == "compile"
    assert last_error.attributes["job_id"] == compile_job.job_id

    # The event names the device, so the device page's logbook shows it.
    device = dr.async_get(hass).async_get_device(
        identifiers={device_identifier(entry.entry_id, "kitchen.yaml")}
    )
    assert device is not None
    assert {event.data["device_id"] for event in events} == {device.id}
    describe = _describer(hass)
    failed = next(event for event in events if event.data["status"] == "failed")
    assert describe(failed) == {"name": "Kitchen Light", "message": f"compile failed: {BANANA}"}
    cancelled = events[-1]
    assert describe(cancelled)["message"] == "upload cancelled: prerequisite did not complete"

    # One INFO line per start, a WARNING per failure; no per-push debug lines.
    records = [r for r in caplog.records if r.name.startswith("custom_components.esphome")]
    assert [(r.levelno, r.getMessage()) for r in records if "(job " in r.getMessage()] == [
        (logging.INFO, f"Kitchen Light: compile started (job {compile_job.job_id})"),
        (logging.WARNING, f"Kitchen Light: compile failed: {BANANA} (job {compile_job.job_id})"),
        (
            logging.INFO,
            "Kitchen Light: upload cancelled: prerequisite did not complete "
            f"(job {upload_job.job_id})",
        ),
    ]
    assert not [r for r in records if "Manually updated" in r.getMessage()]

    # A later success clears the last error.
    fake.behave("kitchen.yaml", "compile", lines=["INFO Successfully compiled"], exit_code=0)
    await _press(hass, "button.kitchen_light_install")
    _, _, _, upload_again = coordinator_of(entry).jobs()
    await wait_for_status(hass, entry, upload_again.job_id, "completed")
    await hass.async_block_till_done()
    assert hass.states.get("sensor.kitchen_light_last_error").state == STATE_UNKNOWN
    assert hass.states.get("sensor.kitchen_light_compile").attributes["error"] is None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_cancel_button_and_waiting_upload(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """Cancel is available only while a job is active; the upload waits for its compile."""
    fake.add_config("kitchen")
    fake.behave("kitchen.yaml", "compile", wait_for_file="go")
    await setup_entry(hass, entry)
    assert hass.states.get("button.kitchen_cancel").state == STATE_UNAVAILABLE

    await _press(hass, "button.kitchen_install")
    compile_job, upload_job = coordinator_of(entry).jobs()
    await wait_for_status(hass, entry, compile_job.job_id, "running")
    await hass.async_block_till_done()
    assert hass.states.get("sensor.kitchen_upload").state == "waiting"
    assert hass.states.get("button.kitchen_cancel").state != STATE_UNAVAILABLE

    await _press(hass, "button.kitchen_cancel")
    await wait_for_status(hass, entry, compile_job.job_id, "cancelled")
    await hass.async_block_till_done()
    compile_state = hass.states.get("sensor.kitchen_compile")
    assert compile_state.state == "cancelled"
    assert compile_state.attributes["cancel_reason"] == "cancelled on request"
    assert compile_state.attributes["error"] == "Cancelled on request"
    assert hass.states.get("sensor.kitchen_upload").attributes["cancel_reason"] == (
        "cancelled on request"
    )
    assert hass.states.get("button.kitchen_cancel").state == STATE_UNAVAILABLE
    assert hass.states.get("sensor.kitchen_last_error").state == "Cancelled on request"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_superseded_and_clean(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """A newer install supersedes the old chain; a completed clean makes the compile idle."""
    fake.add_config("kitchen")
    fake.behave("kitchen.yaml", "compile", wait_for_file="go")
    await setup_entry(hass, entry)
    await _press(hass, "button.kitchen_install")
    first_compile, _ = coordinator_of(entry).jobs()
    await wait_for_status(hass, entry, first_compile.job_id, "running")
    await _press(hass, "button.kitchen_install")
    await wait_for_status(hass, entry, first_compile.job_id, "cancelled")
    assert first_compile.error is not None
    describe = _describer(hass)
    assert describe(Event(EVENT_JOB, first_compile.public_dict()))["message"] == (
        "compile cancelled: superseded"
    )
    _, _, compile_job, upload_job = coordinator_of(entry).jobs()
    fake.release("go")
    await wait_for_status(hass, entry, upload_job.job_id, "completed")
    await hass.async_block_till_done()
    assert hass.states.get("sensor.kitchen_compile").state == "completed"

    await _press(hass, "button.kitchen_clean_build_files")
    clean_job = coordinator_of(entry).jobs()[-1]
    await wait_for_status(hass, entry, clean_job.job_id, "completed")
    await hass.async_block_till_done()
    assert hass.states.get("sensor.kitchen_compile").state == "idle"
    assert hass.states.get("sensor.kitchen_upload").state == "completed"
    assert compile_job.status == "completed"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_hub_shows_devices_and_what_runs_next(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """Lanes name configurations; the depth counts devices; the next job is named."""
    fake.add_config("kitchen", friendly_name="Kitchen Light")
    fake.add_config("garage")
    fake.behave("kitchen.yaml", "compile", wait_for_file="go")
    await setup_entry(hass, entry)
    hub = "sensor.esphome_pipeline_esphome"
    assert hass.states.get(f"{hub}_next_job").state == STATE_UNKNOWN
    await hass.services.async_call(
        DOMAIN,
        "install",
        {"configuration": ["kitchen.yaml", "garage.yaml"]},
        blocking=True,
        return_response=True,
    )
    kitchen_compile = next(
        job
        for job in coordinator_of(entry).jobs()
        if job.configuration == "kitchen.yaml" and job.job_type == "compile"
    )
    await wait_for_status(hass, entry, kitchen_compile.job_id, "running")
    await hass.async_block_till_done()
    lane = hass.states.get(f"{hub}_compile_lane")
    assert lane.attributes["jobs"] == [kitchen_compile.job_id]
    assert lane.attributes["configurations"] == ["kitchen.yaml"]
    depth = hass.states.get(f"{hub}_queue_depth")
    # kitchen's held upload, garage's compile and upload: two devices, three jobs.
    assert depth.state == "2"
    assert depth.attributes["jobs"] == 3
    assert depth.attributes["next"] == "garage.yaml"
    following = hass.states.get(f"{hub}_next_job")
    assert following.state == "garage"
    assert following.attributes["job_type"] == "compile"
    assert following.attributes["configuration"] == "garage.yaml"
    fake.release("go")
    for job in coordinator_of(entry).jobs():
        await wait_for_status(hass, entry, job.job_id, "completed")
    await hass.async_block_till_done()
    assert hass.states.get(f"{hub}_queue_depth").state == "0"
    assert hass.states.get(f"{hub}_upload_lane").attributes["configurations"] == []
    assert await hass.config_entries.async_unload(entry.entry_id)


def test_error_headline_keeps_short_messages_and_cuts_long_ones_at_a_word() -> None:
    """The `last_error` state: short messages whole; long ones cut at a word, with an ellipsis."""
    assert headline("OTA refused") == "OTA refused"
    assert headline("a" * 80) == "a" * 59 + "…"
    assert headline("word " * 20) == "word word word word word word word word word word word…"
