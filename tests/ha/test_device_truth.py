"""What each device runs, asked at start and on reconnect, shown by the firmware entity.

The devices are fake native API servers on 127.0.0.1 (tests/fakes/native_api_device.py) asked
by the real aioesphomeapi client; builds come from the fake ESPHome CLI.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
import json
import os
import socket
import subprocess
import time
from typing import Any
from unittest.mock import AsyncMock, MagicMock, patch

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from zeroconf import ServiceStateChange

from custom_components.esphome_pipeline.const import (
    CONF_CONFIG_DIR,
    CONF_ESPHOME_COMMAND,
    CONF_PROOF_TIMEOUT,
    DOMAIN,
)
from custom_components.esphome_pipeline.device_truth import ESPHOME_SERVICE, RESURVEY_INTERVAL
from custom_components.esphome_pipeline.engine.events import JobEvent
from custom_components.esphome_pipeline.engine.models import Job, JobStatus, JobType, Lane
from custom_components.esphome_pipeline.engine.state import HELD_DEVICE_OFFLINE
from custom_components.esphome_pipeline.engine.upload_proof import NetworkUploads
from custom_components.esphome_pipeline.installed import record_running_build
from custom_components.esphome_pipeline.store import EntryStore
from tests.fakes import FAKE_COMMAND, FAKE_VERSION, FakeEsphome
from tests.fakes.native_api_device import FakeNativeApiDevice

from .conftest import coordinator_of, setup_entry, wait_for_status

ENTITY = "update.kitchen_firmware"
OLD_BUILD = "2026-11-01 08:00:00 +0000"


def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def device(socket_enabled: None) -> AsyncIterator[FakeNativeApiDevice]:
    """The kitchen device (not listening until a test starts it)."""
    fake_device = FakeNativeApiDevice(
        name="kitchen", esphome_version=FAKE_VERSION, compilation_time=OLD_BUILD
    )
    yield fake_device
    await fake_device.stop()


def folder_build(fake: FakeEsphome) -> dict[str, Any]:
    """The build_info.json of kitchen's build in ESPHome's data folder."""
    info: dict[str, Any] = json.loads(fake.build_info_path("kitchen").read_text(encoding="utf-8"))
    return info


def name_the_device(fake: FakeEsphome, port: int) -> None:
    """The validated configuration ESPHome keeps: `api:` on `port`, reached at 127.0.0.1."""
    validated = {"config": {"api": {"port": port}, "wifi": {"use_address": "127.0.0.1"}}}
    path = fake.config_dir / ".esphome" / "storage" / "kitchen.yaml.validated.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(validated), encoding="utf-8")


def build_outside_the_pipeline(fake: FakeEsphome) -> None:
    """Compile kitchen with the CLI directly (as the ESPHome dashboard would), files older."""
    yaml_path = fake.config_dir / "kitchen.yaml"
    an_hour_ago = time.time() - 3600
    os.utime(yaml_path, (an_hour_ago, an_hour_ago))
    subprocess.run([*FAKE_COMMAND, "compile", str(yaml_path)], check=True, capture_output=True)


async def survey_done(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Every question and answer of the survey handled, and the entities written."""
    await coordinator_of(entry).devices.async_settled()
    await hass.async_block_till_done()


async def test_device_runs_the_folder_build(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, device: FakeNativeApiDevice
) -> None:
    """Built outside the pipeline, the device runs it: installed at once, no update."""
    fake.add_config("kitchen")
    build_outside_the_pipeline(fake)
    device.runs(esphome_version=FAKE_VERSION, compilation_time=folder_build(fake)["build_time_str"])
    name_the_device(fake, await device.start())
    calls = fake.calls()
    await setup_entry(hass, entry)
    await survey_done(hass, entry)

    assert device.answered == 1
    state = hass.states.get(ENTITY)
    assert state is not None
    assert state.state == "off"
    node = coordinator_of(entry).nodes["kitchen.yaml"]
    built = folder_build(fake)["build_time_str"][:16]
    assert state.attributes["installed_version"] == (
        f"{FAKE_VERSION} · {built} UTC · {node.fingerprint[:7]}"
    )
    assert state.attributes["release_summary"] is None
    assert coordinator_of(entry).store.installed["kitchen.yaml"] == node.fingerprint
    assert fake.calls() == calls  # nothing compiled or uploaded by the entry

    # Asked again after a restart, the same answer changes nothing.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await survey_done(hass, entry)
    assert device.answered == 2
    assert (
        hass.states.get(ENTITY).attributes["installed_version"]
        == (state.attributes["installed_version"])
    )

    # The files change: an update, and the dialog says what changed since the running build.
    (fake.config_dir / "kitchen.yaml").write_text(
        (fake.config_dir / "kitchen.yaml").read_text(encoding="utf-8") + "logger:\n",
        encoding="utf-8",
    )
    await coordinator_of(entry).async_rescan()
    await hass.async_block_till_done()
    state = hass.states.get(ENTITY)
    assert state.state == "on"
    assert state.attributes["release_summary"] == (
        "Since the installed build: files changed: kitchen.yaml."
    )


async def test_device_runs_the_pipeline_build(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, device: FakeNativeApiDevice
) -> None:
    """Compiled by the pipeline, flashed elsewhere: after a restart it shows as installed."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    (compile_job,) = await coordinator_of(entry).async_compile(["kitchen.yaml"])
    await wait_for_status(hass, entry, compile_job.job_id, "completed")
    assert hass.states.get(ENTITY).state == "on"

    device.runs(esphome_version=FAKE_VERSION, compilation_time=folder_build(fake)["build_time_str"])
    name_the_device(fake, await device.start())
    assert await hass.config_entries.async_reload(entry.entry_id)
    await survey_done(hass, entry)
    state = hass.states.get(ENTITY)
    assert state.state == "off"
    assert state.attributes["installed_version"].endswith(compile_job.fingerprint[:7])


async def test_device_runs_another_build(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, device: FakeNativeApiDevice
) -> None:
    """Another build on the device: installed says what it runs, the summary says so."""
    fake.add_config("kitchen")
    build_outside_the_pipeline(fake)
    device.runs(esphome_version="2026.9.0", compilation_time=OLD_BUILD)
    name_the_device(fake, await device.start())
    await setup_entry(hass, entry)
    await survey_done(hass, entry)

    state = hass.states.get(ENTITY)
    assert state.state == "on"
    assert state.attributes["installed_version"] == "2026.9.0 · 2026-11-01 08:00 UTC"
    built = folder_build(fake)["build_time_str"][:16]
    assert state.attributes["release_summary"] == (
        "The device runs ESPHome 2026.9.0 built 2026-11-01 08:00 UTC; this configuration "
        f"builds ESPHome {FAKE_VERSION} (last built {built} UTC). Install puts this "
        "configuration's build on it."
    )
    assert "kitchen.yaml" not in coordinator_of(entry).store.installed

    # An install through the pipeline is newer news than the device's last answer.
    await hass.services.async_call("update", "install", {"entity_id": ENTITY}, blocking=True)
    compiled, upload = coordinator_of(entry).jobs()[-2:]
    await wait_for_status(hass, entry, compiled.job_id, "completed")
    # The device takes the new image (the upload's proof, or its skip check, finds it).
    new_build = await hass.async_add_executor_job(folder_build, fake)
    device.runs(esphome_version=FAKE_VERSION, compilation_time=new_build["build_time_str"])
    await wait_for_status(hass, entry, upload.job_id, "completed")
    await hass.async_block_till_done()
    state = hass.states.get(ENTITY)
    assert state.state == "off"
    assert " UTC · " in state.attributes["installed_version"]


async def test_offline_device_changes_nothing(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, device: FakeNativeApiDevice
) -> None:
    """No answer: "Not installed yet", Install offered; the re-survey asks again later."""
    fake.add_config("kitchen")
    build_outside_the_pipeline(fake)
    port = free_port()
    name_the_device(fake, port)
    await setup_entry(hass, entry)
    await survey_done(hass, entry)
    state = hass.states.get(ENTITY)
    assert state.state == "on"
    assert state.attributes["installed_version"] == "Not installed yet"
    assert state.attributes["release_summary"].startswith("Never installed by ESPHome Pipeline")

    # The device comes online and runs the folder's build: the next re-survey finds it.
    device.runs(esphome_version=FAKE_VERSION, compilation_time=folder_build(fake)["build_time_str"])
    await device.start(port)
    async_fire_time_changed(hass, dt_util.utcnow() + RESURVEY_INTERVAL)
    await survey_done(hass, entry)
    assert device.answered == 1
    assert hass.states.get(ENTITY).state == "off"

    # Answered devices are not asked again by the timer.
    async_fire_time_changed(hass, dt_util.utcnow() + 2 * RESURVEY_INTERVAL)
    await survey_done(hass, entry)
    assert device.answered == 1


async def test_reconnect_seen_by_zeroconf(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, device: FakeNativeApiDevice
) -> None:
    """A device announcing itself on `_esphomelib._tcp` is asked again at once."""
    fake.add_config("kitchen")
    build_outside_the_pipeline(fake)
    device.runs(esphome_version="2026.9.0", compilation_time=OLD_BUILD)
    name_the_device(fake, await device.start())
    hass.config.components.add("zeroconf")
    shared = MagicMock()
    browsers: list[dict[str, Any]] = []

    def browser(zc: object, service: str, *, handlers: list[Any]) -> MagicMock:
        made = MagicMock(async_cancel=AsyncMock())
        browsers.append({"zc": zc, "service": service, "handlers": handlers, "browser": made})
        return made

    with (
        patch(
            "custom_components.esphome_pipeline.device_truth.zeroconf.async_get_async_instance",
            return_value=shared,
        ),
        patch(
            "custom_components.esphome_pipeline.device_truth.AsyncServiceBrowser",
            side_effect=browser,
        ),
    ):
        await setup_entry(hass, entry)
        await survey_done(hass, entry)
    (watch,) = browsers
    assert watch["zc"] is shared.zeroconf
    assert watch["service"] == ESPHOME_SERVICE
    assert hass.states.get(ENTITY).state == "on"

    # Flashed elsewhere with the folder's build; it reboots and announces itself.
    device.runs(esphome_version=FAKE_VERSION, compilation_time=folder_build(fake)["build_time_str"])
    (announce,) = watch["handlers"]
    for name, change in (
        ("porch._esphomelib._tcp.local.", ServiceStateChange.Added),
        ("kitchen._esphomelib._tcp.local.", ServiceStateChange.Removed),
    ):
        announce(
            zeroconf=shared.zeroconf, service_type=ESPHOME_SERVICE, name=name, state_change=change
        )
    await survey_done(hass, entry)
    assert device.answered == 1  # neither another device nor a goodbye asks again
    announce(
        zeroconf=shared.zeroconf,
        service_type=ESPHOME_SERVICE,
        name="kitchen-a1b2c3._esphomelib._tcp.local.",
        state_change=ServiceStateChange.Added,
    )
    await survey_done(hass, entry)
    assert device.answered == 2
    assert hass.states.get(ENTITY).state == "off"
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    watch["browser"].async_cancel.assert_awaited_once()  # unloading stops the browsing


async def test_recording_a_running_build(hass: HomeAssistant) -> None:
    """A build already recorded as installed keeps its record and learns its compilation time."""
    store = EntryStore(hass, "01TESTSTORE")
    details = {"fingerprint": "aaaa", "compilation_time": OLD_BUILD, "source": "device"}
    assert record_running_build(store, "kitchen.yaml", details)
    assert not record_running_build(store, "kitchen.yaml", dict(details))
    store.set_installed_build("kitchen.yaml", {"fingerprint": "aaaa", "job_id": "j"})
    assert record_running_build(store, "kitchen.yaml", dict(details))
    assert store.installed_builds["kitchen.yaml"] == {
        "fingerprint": "aaaa",
        "job_id": "j",
        "compilation_time": OLD_BUILD,
    }


async def test_an_install_outdates_an_answer_on_its_way(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, device: FakeNativeApiDevice
) -> None:
    """An upload completing while the device answers: the older answer is dropped."""
    fake.add_config("kitchen")
    build_outside_the_pipeline(fake)
    device.runs(esphome_version="2026.9.0", compilation_time=OLD_BUILD)
    name_the_device(fake, await device.start())
    device.gate.clear()
    await setup_entry(hass, entry)
    await device.asked.wait()
    upload = Job(
        configuration="kitchen.yaml",
        job_type=JobType.UPLOAD,
        lane=Lane.UPLOAD,
        status=JobStatus.COMPLETED,
    )
    coordinator_of(entry).devices.job_completed(upload)
    device.gate.set()
    await survey_done(hass, entry)
    assert device.answered == 1
    assert coordinator_of(entry).devices.answer("kitchen.yaml") is None
    assert hass.states.get(ENTITY).attributes["installed_version"] == "Not installed yet"


async def test_an_announcement_starts_an_upload_held_for_its_offline_device(
    hass: HomeAssistant, fake: FakeEsphome, device: FakeNativeApiDevice, esphome_command: str
) -> None:
    """An install to a device that is away waits held "device offline"; when the device
    announces itself on zeroconf, the upload runs at once, not at the next presence probe."""
    fake.add_config("kitchen")
    port = free_port()
    name_the_device(fake, port)
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=str(fake.config_dir),
        data={CONF_CONFIG_DIR: str(fake.config_dir)},
        # No proof: this fake device does not take the image the fake CLI "uploads".
        options={CONF_ESPHOME_COMMAND: esphome_command, CONF_PROOF_TIMEOUT: 0},
    )
    hass.config.components.add("zeroconf")
    shared = MagicMock()
    announced: list[Any] = []

    def browser(zc: object, service: str, *, handlers: list[Any]) -> MagicMock:
        announced.extend(handlers)
        return MagicMock(async_cancel=AsyncMock())

    never_probed = partial(NetworkUploads, poll_interval=3600)
    with (
        patch(
            "custom_components.esphome_pipeline.device_truth.zeroconf.async_get_async_instance",
            return_value=shared,
        ),
        patch("custom_components.esphome_pipeline.device_truth.AsyncServiceBrowser", browser),
        patch("custom_components.esphome_pipeline.skip_wiring.NetworkUploads", never_probed),
    ):
        await setup_entry(hass, entry)
    await survey_done(hass, entry)
    coordinator = coordinator_of(entry)
    held: asyncio.Future[str] = hass.loop.create_future()

    def on_event(event: JobEvent) -> None:
        if event.job.held_reason == HELD_DEVICE_OFFLINE and not held.done():
            held.set_result(event.job.job_id)

    unsubscribe = coordinator.subscribe(on_event)
    try:
        [chain] = await coordinator.async_install(["kitchen.yaml"])
        async with asyncio.timeout(60):
            assert await held == chain.upload.job_id
    finally:
        unsubscribe()
    assert fake.flashed() == []

    await device.start(port)  # back, still on its old build
    (announce,) = announced
    announce(
        zeroconf=shared.zeroconf,
        service_type=ESPHOME_SERVICE,
        name="kitchen._esphomelib._tcp.local.",
        state_change=ServiceStateChange.Added,
    )
    upload = await wait_for_status(hass, entry, chain.upload.job_id, "completed", "failed")
    assert upload["status"] == "completed", upload["error"]
    assert upload["skipped"] is None
    assert [flash["configuration"] for flash in fake.flashed()] == ["kitchen.yaml"]
    assert await hass.config_entries.async_unload(entry.entry_id)
