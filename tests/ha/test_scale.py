"""Fleet scale: the coalesced pushes lose nothing, reorder nothing, and end in the right states."""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.core import Event, HomeAssistant, callback
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esphome_pipeline import job_events
from custom_components.esphome_pipeline.const import DOMAIN, EVENT_JOB
from custom_components.esphome_pipeline.engine.events import EventKind, JobEvent
from custom_components.esphome_pipeline.engine.persistence import stored_form
from custom_components.esphome_pipeline.job_events import EVENTS_PER_STEP
from tests.fakes import FakeEsphome

from .conftest import coordinator_of, engine_of, setup_entry

DEVICES = 24
TERMINAL = {"completed", "failed", "cancelled"}


@pytest.mark.parametrize("events_per_step", [EVENTS_PER_STEP, 7])
async def test_bulk_keeps_every_status_event_in_order(
    hass: HomeAssistant,
    fake: FakeEsphome,
    entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    events_per_step: int,
) -> None:
    """Many fast chains with progress: each job fires queued, running, completed, in order.

    The jobs change faster than a loop iteration and report progress on every line, so the
    entity pushes are coalesced and rate limited all the time; the bus events must not be.
    With 7 events per loop iteration, the bulk's 48 `queued` events and what follows them are
    fired in slices: still every one, in the engine's order.
    """
    monkeypatch.setattr(job_events, "EVENTS_PER_STEP", events_per_step)
    names = [fake.add_config(f"node-{number:02d}") for number in range(DEVICES)]
    progress_lines = [f"[{percent:3d}%] Building src/main.cpp.o" for percent in range(0, 101, 5)]
    fake.behave("default", "compile", lines=progress_lines)
    fake.behave("default", "upload", lines=["Uploading: [=====     ] 50%", "Uploading 100%"])
    # One configuration fails its compile: its upload is cancelled, events still in order.
    fake.behave(names[0], "compile", exit_code=1, fail_message="broken")
    await setup_entry(hass, entry)
    statuses: dict[str, list[str]] = {}
    uploads_done = 0
    all_done: asyncio.Future[None] = hass.loop.create_future()

    @callback
    def on_job(event: Event[dict[str, Any]]) -> None:
        nonlocal uploads_done
        job = event.data
        statuses.setdefault(job["job_id"], []).append(job["status"])
        if job["job_type"] == "upload" and job["status"] in TERMINAL:
            uploads_done += 1
            if uploads_done == DEVICES:
                all_done.set_result(None)

    unsubscribe = hass.bus.async_listen(EVENT_JOB, on_job)
    # What the engine reported, in its order: each job's status changes (held flips left out).
    engine_order: list[tuple[str, str]] = []
    last_status: dict[str, str] = {}

    def on_engine_event(event: JobEvent) -> None:
        status = str(event.job.status)
        if event.kind is EventKind.STATUS and last_status.get(event.job.job_id) != status:
            last_status[event.job.job_id] = status
            engine_order.append((event.job.job_id, status))

    stop_watching = coordinator_of(entry).subscribe(on_engine_event)
    bus_order: list[tuple[str, str]] = []

    @callback
    def on_bus_event(event: Event[dict[str, Any]]) -> None:
        bus_order.append((event.data["job_id"], event.data["status"]))

    stop_listening = hass.bus.async_listen(EVENT_JOB, on_bus_event)
    response = await hass.services.async_call(
        DOMAIN, "install", {"configuration": names}, blocking=True, return_response=True
    )
    async with asyncio.timeout(120):
        await all_done
    await hass.async_block_till_done()
    unsubscribe()
    stop_watching()
    stop_listening()
    assert bus_order == engine_order

    assert response is not None
    chains: list[dict[str, Any]] = response["jobs"]  # type: ignore[assignment]
    assert len(chains) == DEVICES
    coordinator = coordinator_of(entry)
    failed_compile = coordinator.jobs(configurations={names[0]})[0]
    for job in coordinator.jobs():
        expected = ["queued", "running", "completed"]
        if job.configuration == names[0]:
            expected = (
                ["queued", "running", "failed"]
                if job.job_id == failed_compile.job_id
                else ["queued", "cancelled"]
            )
        assert statuses[job.job_id] == expected, job.configuration

    for name in names:
        stem = name.removesuffix(".yaml").replace("-", "_")
        compile_state = hass.states.get(f"sensor.{stem}_compile")
        upload_state = hass.states.get(f"sensor.{stem}_upload")
        firmware = hass.states.get(f"update.{stem}_firmware")
        assert compile_state is not None
        assert upload_state is not None
        assert firmware is not None
        assert firmware.attributes["in_progress"] is False
        if name == names[0]:
            assert (compile_state.state, upload_state.state) == ("failed", "cancelled")
            assert firmware.attributes["installed_version"] == "Not installed yet"
            continue
        assert (compile_state.state, upload_state.state) == ("completed", "completed")
        assert compile_state.attributes["progress"] == 100
        assert firmware.state == "off"  # installed is what the file builds now
    assert hass.states.get("sensor.esphome_pipeline_esphome_queue_depth").state == "0"
    assert hass.states.get("sensor.esphome_pipeline_esphome_compile_lane").state == "idle"
    assert hass.states.get("sensor.esphome_pipeline_esphome_upload_lane").state == "idle"
    # Saves reuse the stored form of every job that did not change: after all these changes,
    # what the store holds is still each job exactly as it is now.
    await engine_of(entry).flush()
    stored = await coordinator.store.load()
    assert stored is not None
    assert stored["jobs"] == [stored_form(job) for job in coordinator.jobs()]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_scan_republishes_only_what_changed(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """An unchanged folder pushes nothing; an edited file pushes its own entities only."""
    fake.add_config("kitchen")
    fake.add_config("garage")
    await setup_entry(hass, entry)
    coordinator = coordinator_of(entry)
    heard: dict[str, list[None]] = {"kitchen": [], "garage": [], "all": []}
    unsubscribers = [
        coordinator.listeners.add_configuration_listener(
            "kitchen.yaml", lambda: heard["kitchen"].append(None)
        ),
        coordinator.listeners.add_configuration_listener(
            "garage.yaml", lambda: heard["garage"].append(None)
        ),
        coordinator.async_add_listener(lambda: heard["all"].append(None)),
    ]
    await coordinator.async_rescan()
    await hass.async_block_till_done()
    assert heard == {"kitchen": [], "garage": [], "all": []}

    before = hass.states.get("update.kitchen_firmware")
    assert before is not None
    fake.add_config("kitchen", extra="logger:\n")
    await coordinator.async_rescan()
    await hass.async_block_till_done()
    assert (len(heard["kitchen"]), heard["garage"], heard["all"]) == (1, [], [])
    after = hass.states.get("update.kitchen_firmware")
    assert after is not None
    assert after.attributes["latest_version"] != before.attributes["latest_version"]

    # A file that comes tells every entity (new entities are added).
    fake.add_config("porch")
    await coordinator.async_rescan()
    await hass.async_block_till_done()
    assert len(heard["all"]) == 1
    assert hass.states.get("update.porch_firmware") is not None
    for unsubscribe in unsubscribers:
        unsubscribe()
    assert await hass.config_entries.async_unload(entry.entry_id)
