"""Serial uploads through the engine: the fake CLI compiles, the real esptool flashes the
emulated ESP32 on `socket://127.0.0.1:<port>` (tests/fakes/esp_loader.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
import json
import os
from pathlib import Path
import threading
from typing import Any

import pytest

from custom_components.esphome_pipeline.engine import serial_executor
from custom_components.esphome_pipeline.engine.device.build_records import read_build_target
from custom_components.esphome_pipeline.engine.device.serial import (
    FlashStoppedError,
    SerialFlasher,
)
from custom_components.esphome_pipeline.engine.events import EventKind, JobEvent
from custom_components.esphome_pipeline.engine.firmware import FirmwareEngine
from custom_components.esphome_pipeline.engine.lanes import Outcome, RunningJob
from custom_components.esphome_pipeline.engine.models import (
    Job,
    JobStatus,
    JobType,
    Lane,
    ProcessRecord,
    SkipReason,
)
from custom_components.esphome_pipeline.engine.serial_executor import SerialUploadExecutor
from custom_components.esphome_pipeline.engine.skip_checks import DeviceRunsBuild
from tests.fakes import FakeEsphome
from tests.fakes.esp_loader import EspLoaderEmulator

from .conftest import EngineFactory, wait_for_status
from .test_device_serial import partition_table

CONFIG = "garden.yaml"
NAME = "garden"
BOOTLOADER = 0x1000
PARTITIONS = 0x8000
OTA_DATA = 0x9000
APP = 0x10000
TERMINAL = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


def esp32_images(fake: FakeEsphome, app: bytes) -> dict[int, bytes]:
    """Give the fake's build of NAME every image of a real ESP32 build; return them by offset."""
    build = fake.firmware_path(NAME).parent
    images = {
        BOOTLOADER: b"\xe9" + os.urandom(20_003),
        PARTITIONS: partition_table(),
        OTA_DATA: b"\xff" * 0x2000,
        APP: app,
    }
    names = {
        BOOTLOADER: "bootloader.bin",
        PARTITIONS: "partitions.bin",
        OTA_DATA: "ota_data_initial.bin",
        APP: "firmware.bin",
    }
    for offset, data in images.items():
        (build / names[offset]).write_bytes(data)
    return {offset: data + b"\xff" * (-len(data) % 4) for offset, data in images.items()}


def preload(emulator: EspLoaderEmulator, images: dict[int, bytes]) -> None:
    """A device whose flash holds these images already."""
    for offset, image in images.items():
        emulator.flash[offset : offset + len(image)] = image


def big_app() -> bytes:
    """An application of about 300 KB that compresses poorly: many flash blocks."""
    return b"\xe9" + os.urandom(300_000)


@pytest.fixture
def fast_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give up at once on a lost port, and wait half a second for a boot."""
    monkeypatch.setattr(
        serial_executor,
        "SerialFlasher",
        partial(SerialFlasher, connect_attempts=1, write_attempts=1, boot_timeout=0.5),
    )


@pytest.fixture
async def emulator(socket_enabled: None) -> AsyncIterator[EspLoaderEmulator]:
    """A running emulated ESP32."""
    device = EspLoaderEmulator()
    await device.start()
    try:
        yield device
    finally:
        device.resume.set()
        await device.close()


async def compiled(make_engine: EngineFactory, fake: FakeEsphome, **options: Any) -> FirmwareEngine:
    """An engine whose configuration NAME has been compiled by the fake CLI."""
    fake.add_config(NAME)
    engine = await make_engine(**options)
    [job] = await engine.compile([CONFIG])
    assert await wait_for_status(engine, job.job_id, TERMINAL) is JobStatus.COMPLETED
    return engine


async def upload(engine: FirmwareEngine, port: str, *, force: bool = False) -> Job:
    """Upload NAME to `port` and wait for its end."""
    [job] = await engine.upload([CONFIG], port=port, force=force)
    await wait_for_status(engine, job.job_id, TERMINAL)
    return job


def device_check(fake: FakeEsphome) -> DeviceRunsBuild:
    """The warm path's device check, as the Home Assistant layer injects it."""
    return DeviceRunsBuild(fake.config_dir / ".esphome")


async def test_current_device_is_skipped(
    make_engine: EngineFactory, fake: FakeEsphome, emulator: EspLoaderEmulator
) -> None:
    """The device's flash holds the build: one serial session says so, nothing is written."""
    engine = await compiled(make_engine, fake, skip_checks=[device_check(fake)])
    preload(emulator, esp32_images(fake, big_app()))
    job = await upload(engine, emulator.url)
    assert job.status is JobStatus.COMPLETED
    assert job.skipped is SkipReason.DEVICE_CURRENT
    assert not emulator.saw_flash_write()
    assert fake.flashed() == []
    assert emulator.connections == 1  # the chip is reset once, not by a check and again


async def test_different_device_is_flashed(
    make_engine: EngineFactory, fake: FakeEsphome, emulator: EspLoaderEmulator
) -> None:
    """Only the differing application is written; progress rises; the boot log is kept."""
    engine = await compiled(make_engine, fake, skip_checks=[device_check(fake)])
    app = big_app()
    images = esp32_images(fake, app)
    preload(emulator, {offset: image for offset, image in images.items() if offset != APP})
    progress: list[int] = []

    def on_event(event: JobEvent) -> None:
        if event.kind is EventKind.PROGRESS and event.job.progress is not None:
            progress.append(event.job.progress)

    engine.subscribe(on_event)
    job = await upload(engine, emulator.url)
    assert job.status is JobStatus.COMPLETED, job.error
    assert job.skipped is None
    assert emulator.written_at == [APP]
    assert bytes(emulator.flash[APP : APP + len(app)]) == app
    assert progress == sorted(set(progress))
    assert len(progress) > 3
    assert progress[-1] == job.progress == 100
    lines = list(job.output.lines)
    assert "application at 0x10000 (300004 bytes): written" in lines
    assert "bootloader at 0x1000 (20004 bytes): already on the device" in lines
    assert any("rst:0xc (SW_CPU_RESET)" in line for line in lines)
    assert lines[-1] == "The device booted after the flash"
    assert sum(line.startswith("Writing: ") for line in lines) == 1  # redrawn in place
    assert fake.flashed() == []
    assert emulator.connections == 2  # the flash session, then the boot log


async def test_no_skip_check_still_writes_only_what_differs(
    make_engine: EngineFactory, fake: FakeEsphome, emulator: EspLoaderEmulator
) -> None:
    """Without the skip step the executor compares itself; `force` writes every region."""
    engine = await compiled(make_engine, fake)
    images = esp32_images(fake, b"\xe9" + os.urandom(5000))
    preload(emulator, images)
    job = await upload(engine, emulator.url)
    assert job.status is JobStatus.COMPLETED
    assert job.skipped is SkipReason.DEVICE_CURRENT
    assert not emulator.saw_flash_write()

    job = await upload(engine, emulator.url, force=True)
    assert job.status is JobStatus.COMPLETED, job.error
    assert job.skipped is None
    assert sorted(emulator.written_at) == sorted(images)
    assert "application at 0x10000 (5004 bytes): written again (force)" in job.output.lines


@pytest.mark.usefixtures("fast_failures")
async def test_unplugged_mid_flash(
    make_engine: EngineFactory, fake: FakeEsphome, socket_enabled: None
) -> None:
    """The cable is pulled during the write: a clear error that says the flash is incomplete."""
    engine = await compiled(make_engine, fake)
    esp32_images(fake, big_app())
    emulator = EspLoaderEmulator(unplug_after_blocks=3)
    await emulator.start()
    try:
        job = await upload(engine, emulator.url)
    finally:
        await emulator.close()
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.startswith(f"Serial upload failed: the device on {emulator.url} stopped")
    assert "its flash is incomplete; reconnect it and install again" in job.error
    assert job.output.lines[-1] == job.error


@pytest.mark.usefixtures("fast_failures")
async def test_port_unreachable_and_no_boot(
    make_engine: EngineFactory, fake: FakeEsphome, socket_enabled: None
) -> None:
    """Nothing listens on the port; a device that logs no boot after its flash."""
    engine = await compiled(make_engine, fake)
    esp32_images(fake, b"\xe9" + os.urandom(5000))
    silent = EspLoaderEmulator(boot_banner=b"no banner here\r\n")
    await silent.start()
    url = silent.url
    try:
        job = await upload(engine, url)
        assert job.status is JobStatus.FAILED
        assert job.error is not None
        assert "was flashed but logged no boot within 0.5 s" in job.error
        assert silent.boots == 1
    finally:
        await silent.close()
    job = await upload(engine, url)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.startswith(f"Serial upload failed: cannot reach the ESP loader on {url}: ")


async def test_missing_image_is_a_clear_error(
    make_engine: EngineFactory, fake: FakeEsphome, emulator: EspLoaderEmulator
) -> None:
    """An ESP32 build whose application image is gone: no port is opened."""
    engine = await compiled(make_engine, fake)
    fake.firmware_path(NAME).unlink()
    job = await upload(engine, emulator.url)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.startswith("Serial upload failed: no firmware image in ")
    assert job.error.endswith("compile the configuration first")
    assert emulator.connections == 0


async def test_cancel_mid_flash(
    make_engine: EngineFactory, fake: FakeEsphome, socket_enabled: None
) -> None:
    """A cancel during the write stops it at the next block; the job ends cancelled."""
    engine = await compiled(make_engine, fake)
    esp32_images(fake, big_app())
    emulator = EspLoaderEmulator(pause_after_blocks=1)
    await emulator.start()
    try:
        [job] = await engine.upload([CONFIG], port=emulator.url)
        await emulator.paused.wait()
        cancelling = asyncio.ensure_future(engine.cancel(job.job_id))
        # The cancel asks the job to stop before its first wait; only then the device answers.
        asyncio.get_running_loop().call_soon(emulator.resume.set)
        assert await cancelling == [job.job_id]
    finally:
        await emulator.close()
    assert job.status is JobStatus.CANCELLED
    assert job.error == "Cancelled on request"
    assert any(
        "stopped while the bootloader was written at 0x1000" in line for line in job.output.lines
    )
    assert emulator.boots == 0
    assert fake.flashed() == []


async def test_cancel_while_waiting_for_the_boot(
    make_engine: EngineFactory, fake: FakeEsphome, socket_enabled: None
) -> None:
    """The flash is done, the boot log not yet seen: a cancel ends the wait at once."""
    engine = await compiled(make_engine, fake)
    esp32_images(fake, b"\xe9" + os.urandom(5000))
    emulator = EspLoaderEmulator(boot_banner=b"")
    await emulator.start()
    waiting = asyncio.get_running_loop().create_future()

    def on_event(event: JobEvent) -> None:
        if event.line is not None and event.line.startswith("Waiting up to") and not waiting.done():
            waiting.set_result(event.job.job_id)

    engine.subscribe(on_event)
    try:
        [job] = await engine.upload([CONFIG], port=emulator.url)
        assert await waiting == job.job_id
        assert await engine.cancel(job.job_id) == [job.job_id]
    finally:
        await emulator.close()
    assert job.status is JobStatus.CANCELLED


async def test_other_builds_keep_the_cli(
    make_engine: EngineFactory, fake: FakeEsphome, emulator: EspLoaderEmulator
) -> None:
    """An ESP8266 build over serial, and any network upload, run `esphome upload` as before."""
    engine = await compiled(make_engine, fake)
    storage = fake.storage_path(CONFIG)
    record = json.loads(storage.read_text(encoding="utf-8"))
    record.update(esp_platform="ESP8266", core_platform="esp8266")
    storage.write_text(json.dumps(record), encoding="utf-8")
    job = await upload(engine, emulator.url)
    assert job.status is JobStatus.COMPLETED
    job = await upload(engine, "OTA")
    assert job.status is JobStatus.COMPLETED
    assert [entry["port"] for entry in fake.flashed()] == [emulator.url, "OTA"]
    assert emulator.connections == 0


def test_build_target_from_storage(tmp_path: Path) -> None:
    """The platform comes from StorageJSON: the family, else the variant; none without it."""
    storage = tmp_path / "storage" / f"{CONFIG}.json"
    assert read_build_target(tmp_path, CONFIG) is None
    storage.parent.mkdir()
    storage.write_text(json.dumps({"name": NAME}), encoding="utf-8")
    assert read_build_target(tmp_path, CONFIG) is None
    storage.write_text(json.dumps({"name": NAME, "esp_platform": "ESP32S3"}), encoding="utf-8")
    target = read_build_target(tmp_path, CONFIG)
    assert target is not None
    assert (target.name, target.platform, target.is_esp32) == (NAME, "esp32s3", True)


class _Recorder:
    """A JobSink that keeps the lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def output(self, job: Job, line: str, replaces_previous: bool) -> None:
        self.lines.append(line)

    def progress(self, job: Job, value: int) -> None:
        """Progress is not looked at here."""

    def process_started(self, job: Job, record: ProcessRecord) -> None:
        """No process runs."""


async def test_cancelled_worker_stops_the_flash_thread(
    fake: FakeEsphome, socket_enabled: None
) -> None:
    """The worker task itself is cancelled mid-flash: the esptool thread stops at its next block."""
    fake.add_config(NAME)
    data_dir = fake.config_dir / ".esphome"
    fake.firmware_path(NAME).parent.mkdir(parents=True)
    fake.storage_path(CONFIG).parent.mkdir(parents=True)
    fake.storage_path(CONFIG).write_text(
        json.dumps({"name": NAME, "core_platform": "esp32"}), encoding="utf-8"
    )
    esp32_images(fake, big_app())
    ended = threading.Event()
    outcome: list[BaseException] = []

    class Flasher(SerialFlasher):
        def _session(self, *args: Any) -> Any:
            try:
                return super()._session(*args)
            except BaseException as err:
                outcome.append(err)
                raise
            finally:
                ended.set()

    emulator = EspLoaderEmulator(pause_after_blocks=1)
    await emulator.start()
    try:
        executor = SerialUploadExecutor(_Unused(), data_dir=data_dir, flasher=Flasher)
        job = Job(
            configuration=CONFIG, job_type=JobType.UPLOAD, lane=Lane.UPLOAD, port=emulator.url
        )
        task = asyncio.ensure_future(executor.run(RunningJob(job), _Recorder()))
        await emulator.paused.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        emulator.resume.set()
        assert await asyncio.to_thread(ended.wait, 30)
    finally:
        await emulator.close()
    assert isinstance(outcome[0], FlashStoppedError)
    assert outcome[0].incomplete


class _Unused:
    """An executor no job of these tests reaches."""

    async def run(self, running: RunningJob, sink: Any) -> Outcome:
        raise AssertionError("the fallback executor ran")
