"""The skip checks: skip only when sure, run the job whenever unsure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
import json
import os
from pathlib import Path

import pytest

from custom_components.esphome_pipeline.engine.device.build_records import (
    ApiEndpoint,
    BuildIdentity,
)
from custom_components.esphome_pipeline.engine.device.native_api import DeviceTruth, Verdict
from custom_components.esphome_pipeline.engine.fingerprint import Fingerprinter, NodeInfo
from custom_components.esphome_pipeline.engine.models import (
    Job,
    JobStatus,
    JobType,
    Lane,
    SkipReason,
)
from custom_components.esphome_pipeline.engine.skip import BuildRecord
from custom_components.esphome_pipeline.engine.skip_checks import (
    BuildIsCurrent,
    DeviceRunsBuild,
    fingerprint_reader,
    is_serial_port,
)
from tests.engine.conftest import EngineFactory, wait_for_status
from tests.engine.test_device_serial import partition_table
from tests.fakes import FakeEsphome
from tests.fakes.esp_loader import EspLoaderEmulator

FINGERPRINT = "0123456789ab"
NAME = "kitchen"
CONFIGURATION = "kitchen.yaml"


def Build(*, fingerprint: str | None = FINGERPRINT, finished_at: str = "") -> BuildRecord:
    """The engine's record of the configuration's last successful build."""
    return BuildRecord(
        configuration=CONFIGURATION, fingerprint=fingerprint, job_id="b1", finished_at=finished_at
    )


def job(job_type: JobType = JobType.COMPILE, **fields: object) -> Job:
    """A claimed job of the configuration."""
    lane = Lane.COMPILE if job_type is JobType.COMPILE else Lane.UPLOAD
    values: dict[str, object] = {"fingerprint": FINGERPRINT}
    values.update(fields)
    return Job(configuration=CONFIGURATION, job_type=job_type, lane=lane, **values)  # type: ignore[arg-type]


def node(fingerprint: str = FINGERPRINT, unverifiable: tuple[str, ...] = ()) -> NodeInfo:
    """The configuration as read now."""
    return NodeInfo(
        name=NAME,
        friendly_name=None,
        platform="esp32",
        fingerprint=fingerprint,
        unverifiable=unverifiable,
    )


def write_build(data_dir: Path, *, validated: dict[str, object] | None = None) -> Path:
    """ESPHome's records of an ESP32 build; returns the `.pioenvs/<name>` folder."""
    build = data_dir / "build" / NAME
    envs = build / ".pioenvs" / NAME
    envs.mkdir(parents=True, exist_ok=True)
    (envs / "firmware.bin").write_bytes(b"\xe9" + os.urandom(4000))
    (envs / "bootloader.bin").write_bytes(b"\xe9" + os.urandom(1000))
    (envs / "partitions.bin").write_bytes(partition_table())
    (build / "build_info.json").write_text(
        json.dumps({"esphome_version": "2026.10.0", "build_time_str": "2026-11-27 10:00:00 +0000"})
    )
    storage = data_dir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    (storage / f"{CONFIGURATION}.json").write_text(
        json.dumps(
            {
                "name": NAME,
                "build_path": str(build),
                "firmware_bin_path": str(envs / "firmware.bin"),
            }
        )
    )
    if validated is not None:
        (storage / f"{CONFIGURATION}.validated.json").write_text(json.dumps(validated))
    return envs


def finished(offset: timedelta = timedelta(seconds=5)) -> str:
    """A build end `offset` after now (ISO 8601 UTC)."""
    return (datetime.now(UTC) + offset).isoformat()


async def reader_of(result: NodeInfo | None) -> NodeInfo | None:
    """Stand-in for the fingerprint reader."""
    return result


async def test_build_is_current(tmp_path: Path) -> None:
    """Same fingerprint, read again now, outputs untouched since the build: unchanged."""
    await asyncio.to_thread(write_build, tmp_path)
    check = BuildIsCurrent(tmp_path, lambda _configuration: reader_of(node()))
    assert await check(job(), Build(finished_at=finished())) is SkipReason.UNCHANGED


@pytest.mark.parametrize(
    ("claimed", "build", "now", "why"),
    [
        (job(JobType.UPLOAD), Build(), node(), "not a compile"),
        (job(), None, node(), "never built"),
        (job(fingerprint=None), Build(), node(), "unlabelled job"),
        (job(), Build(fingerprint="other"), node(), "built from something else"),
        (job(), Build(), node("changed-since"), "edited after queueing"),
        (job(), Build(), node(unverifiable=("remote",)), "cannot vouch"),
        (job(), Build(), None, "no longer a configuration"),
    ],
)
async def test_build_is_not_current(
    tmp_path: Path, claimed: Job, build: BuildRecord | None, now: NodeInfo | None, why: str
) -> None:
    """Any doubt about the inputs: compile."""
    await asyncio.to_thread(write_build, tmp_path)
    check = BuildIsCurrent(tmp_path, lambda _configuration: reader_of(now))
    if build is not None:
        build = Build(fingerprint=build.fingerprint, finished_at=finished())
    assert await check(claimed, build) is None, why


async def test_build_outputs_gone_or_rewritten(tmp_path: Path) -> None:
    """Outputs deleted, rewritten after the build, or an odd record: compile."""
    check = BuildIsCurrent(tmp_path, lambda _configuration: reader_of(node()))
    assert await check(job(), Build(finished_at=finished())) is None  # never built here
    envs = await asyncio.to_thread(write_build, tmp_path)
    assert await check(job(), Build(finished_at=finished(timedelta(seconds=-60)))) is None
    assert await check(job(), Build(finished_at="not a time")) is None
    await asyncio.to_thread((envs / "firmware.bin").unlink)
    assert await check(job(), Build(finished_at=finished())) is None
    storage = tmp_path / "storage" / f"{CONFIGURATION}.json"
    await asyncio.to_thread(storage.write_text, json.dumps({"name": NAME}))
    assert await check(job(), Build(finished_at=finished())) is None


async def test_unreadable_fingerprint_means_compile(tmp_path: Path) -> None:
    """A fingerprint reader that fails never causes a skip."""

    async def broken(_configuration: str) -> NodeInfo | None:
        raise OSError("gone")

    await asyncio.to_thread(write_build, tmp_path)
    assert await BuildIsCurrent(tmp_path, broken)(job(), Build(finished_at=finished())) is None


async def test_fingerprint_reader(tmp_path: Path) -> None:
    """The reader runs a Fingerprinter in an executor."""
    (tmp_path / CONFIGURATION).write_text("esphome:\n  name: kitchen\n")
    read = fingerprint_reader(Fingerprinter(tmp_path, esphome_version="x", cache_file=None))
    found = await read(CONFIGURATION)
    assert found is not None
    assert found.name == NAME


def test_serial_ports() -> None:
    """ESPHome's serial rule, plus pyserial's URLs."""
    assert is_serial_port("/dev/ttyUSB0")
    assert is_serial_port("COM3")
    assert is_serial_port("socket://127.0.0.1:4000")
    assert is_serial_port("rfc2217://10.0.0.2:4000")
    assert not is_serial_port("OTA")
    assert not is_serial_port("192.168.1.20")
    assert not is_serial_port(None)


class Asker:
    """Answers for the device, recording the questions."""

    def __init__(self, verdict: Verdict) -> None:
        """Always give `verdict`."""
        self.verdict = verdict
        self.asked: list[ApiEndpoint] = []

    async def __call__(self, endpoint: ApiEndpoint, build: BuildIdentity) -> DeviceTruth:
        """Record and answer."""
        self.asked.append(endpoint)
        return DeviceTruth(verdict=self.verdict, summary=f"{self.verdict} for {build.name}")


async def test_device_runs_build_over_the_network(tmp_path: Path) -> None:
    """The native API answer decides; the target address and the configuration's port count."""
    await asyncio.to_thread(write_build, tmp_path, validated={"config": {"api": {"port": 6060}}})
    heard: list[str] = []
    asker = Asker(Verdict.RUNS_THIS_BUILD)
    check = DeviceRunsBuild(
        tmp_path, ask_device=asker, on_verdict=lambda _job, summary: heard.append(summary)
    )
    assert await check(job(JobType.UPLOAD, port="OTA"), None) is SkipReason.DEVICE_CURRENT
    assert await check(job(JobType.UPLOAD, port="10.0.0.9"), None) is SkipReason.DEVICE_CURRENT
    assert asker.asked == [
        ApiEndpoint(host="kitchen.local", port=6060),
        ApiEndpoint(host="10.0.0.9", port=6060),
    ]
    assert heard == ["runs_this_build for kitchen"] * 2
    for verdict in (Verdict.RUNS_OTHER_BUILD, Verdict.UNREACHABLE):
        assert (
            await DeviceRunsBuild(tmp_path, ask_device=Asker(verdict))(
                job(JobType.UPLOAD, port="OTA"), None
            )
            is None
        )


async def test_device_cannot_be_asked(tmp_path: Path) -> None:
    """No build, no native API, or not an upload: the upload runs."""
    asker = Asker(Verdict.RUNS_THIS_BUILD)
    check = DeviceRunsBuild(tmp_path, ask_device=asker)
    assert await check(job(JobType.UPLOAD, port="OTA"), None) is None  # nothing built
    await asyncio.to_thread(write_build, tmp_path)
    assert await check(job(JobType.UPLOAD, port="OTA"), None) is None  # no api: block
    assert await check(job(JobType.COMPILE), None) is None
    assert asker.asked == []


@pytest.fixture
async def emulator(socket_enabled: None) -> AsyncIterator[EspLoaderEmulator]:
    """A running emulated ESP32."""
    device = EspLoaderEmulator()
    await device.start()
    try:
        yield device
    finally:
        await device.close()


async def test_serial_targets_are_left_to_the_serial_upload(
    tmp_path: Path, emulator: EspLoaderEmulator
) -> None:
    """A serial device is not opened here: the serial upload compares its flash in the same
    session that writes (one reset of the chip, not two)."""
    await asyncio.to_thread(write_build, tmp_path)
    heard: list[str] = []
    check = DeviceRunsBuild(tmp_path, on_verdict=lambda _job, summary: heard.append(summary))
    assert await check(job(JobType.UPLOAD, port=emulator.url), None) is None
    assert await check(job(JobType.UPLOAD, port="/dev/ttyUSB0"), None) is None
    assert emulator.connections == 0
    assert heard == []


async def test_build_is_current_in_the_engine(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    """Wired into the engine with the fake CLI: an unchanged compile starts no process; an
    edit, or `force`, compiles again."""
    fake.add_config("a")
    fingerprinter = Fingerprinter(fake.config_dir, esphome_version="2026.10.0", cache_file=None)
    read = fingerprint_reader(fingerprinter)
    check = BuildIsCurrent(fake.config_dir / ".esphome", read)
    engine = await make_engine(skip_checks=[check])

    async def compile_now(*, force: bool = False) -> Job:
        node = await read("a.yaml")
        assert node is not None
        [compiled] = await engine.compile(
            ["a.yaml"], force=force, fingerprints={"a.yaml": node.fingerprint}
        )
        await wait_for_status(engine, compiled.job_id, JobStatus.COMPLETED)
        return compiled

    first = await compile_now()
    assert first.skipped is None
    assert len(fake.calls("start", subcommand="compile")) == 1
    second = await compile_now()
    assert second.skipped is SkipReason.UNCHANGED
    assert len(fake.calls("start", subcommand="compile")) == 1  # no process

    await asyncio.to_thread(fake.add_config, "a", extra="logger:\n")
    edited = await compile_now()
    assert edited.skipped is None
    forced = await compile_now(force=True)
    assert forced.skipped is None
    assert len(fake.calls("start", subcommand="compile")) == 3
