"""Network uploads: presence, the offline hold and its release, one retry, and the proof.

The engine runs the fake ESPHome CLI (real processes); the device is `FakeNativeDevice`, a
real listener on 127.0.0.1 that the real native API client asks (tests/fakes/native_device.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import json
from pathlib import Path
import socket

import pytest

from custom_components.esphome_pipeline.engine.device.build_records import ApiEndpoint
from custom_components.esphome_pipeline.engine.device.presence import device_answers
from custom_components.esphome_pipeline.engine.models import Job, JobStatus
from custom_components.esphome_pipeline.engine.state import (
    HELD_DEVICE_OFFLINE,
    HELD_FOR_PREREQUISITE,
)
from custom_components.esphome_pipeline.engine.transitions import DEVICE_OFFLINE_MARKER
from custom_components.esphome_pipeline.engine.upload_proof import (
    NetworkUploads,
    retry_worthy,
)
from tests.fakes import FakeEsphome
from tests.fakes.native_device import FakeNativeDevice

from .conftest import EngineFactory, EventLog, wait_for_job, wait_for_status

FIXTURES = Path(__file__).parents[1] / "fixtures" / "esphome_output"
OLD_BUILD = "2026-01-01 00:00:00 +0000"
FOREVER = 3600.0
"""A delay or interval no test waits for: what ends it is a cancel or an explicit release."""


def fixture_lines(name: str) -> list[str]:
    """The real CLI's output in a fixture file."""
    return (FIXTURES / name).read_text(encoding="utf-8").splitlines()


def fail_like(fake: FakeEsphome, fixture: str, **behaviour: object) -> None:
    """Make kitchen's upload fail with a real CLI output (its last ERROR line comes last)."""
    lines = fixture_lines(fixture)
    last_error = max(i for i, line in enumerate(lines) if line.startswith("ERROR "))
    fake.behave(
        "kitchen.yaml",
        "upload",
        lines=lines[:last_error] + lines[last_error + 1 :],
        exit_code=1,
        fail_message=lines[last_error].removeprefix("ERROR "),
        **behaviour,
    )


@pytest.mark.parametrize(
    ("lines", "worthy"),
    [
        (fixture_lines("ota_refused.log"), True),
        (fixture_lines("device_unreachable.log"), True),
        (["WARNING Error sending data: [Errno 104] Connection reset by peer"], True),
        (["ERROR Error receiving acknowledge binary size: timed out"], True),
        (fixture_lines("ota_auth_failure.log"), False),
        (["ERROR Application MD5 code mismatch. Please try again or flash over USB."], False),
        (
            [
                "ERROR Error receiving result: timed out (the device may have already committed"
                " the update and be rebooting; check whether it comes back)"
            ],
            False,
        ),
        (fixture_lines("device_unresolved.log"), False),
        (["ERROR fake upload failed"], False),
    ],
)
def test_which_failures_are_retried(lines: list[str], worthy: bool) -> None:
    """Refused, reset and timeout are worth one more try; authentication and MD5 never."""
    assert retry_worthy(lines) is worthy


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_presence_probe(socket_enabled: None) -> None:
    """A listener answers; a closed port does not."""
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    try:
        port = int(server.sockets[0].getsockname()[1])
        assert await device_answers(ApiEndpoint(host="127.0.0.1", port=port))
    finally:
        server.close()
        await server.wait_closed()
    assert not await device_answers(ApiEndpoint(host="127.0.0.1", port=free_port()))


@pytest.fixture
async def device(fake: FakeEsphome, socket_enabled: None) -> AsyncIterator[FakeNativeDevice]:
    """The kitchen device, online, running an old build; it takes what the fake CLI flashes."""
    fake.add_config("kitchen")
    device = FakeNativeDevice(
        fake.config_dir, "kitchen.yaml", name="kitchen", compilation_time=OLD_BUILD
    )
    await device.start()
    await asyncio.to_thread(device.write_api_config)
    try:
        yield device
    finally:
        await device.stop()


def uploads(**settings: object) -> NetworkUploads:
    """Network-upload settings for tests: fast polls and retries unless a test says."""
    values: dict[str, object] = {"proof_timeout": 30.0, "retry_delay": 0.0, "poll_interval": 0.0}
    values.update(settings)
    return NetworkUploads(**values)  # type: ignore[arg-type]


def held_offline(job: Job) -> bool:
    """The upload waits for its device."""
    return job.status is JobStatus.QUEUED and job.held_reason == HELD_DEVICE_OFFLINE


async def test_upload_is_proven(
    make_engine: EngineFactory, fake: FakeEsphome, device: FakeNativeDevice
) -> None:
    """The job completes only once the device answers with the new build."""
    engine = await make_engine(network_uploads=uploads())
    log = EventLog(engine)
    [chain] = await engine.install(["kitchen.yaml"])
    upload_id = chain.upload.job_id
    assert chain.upload.held_reason == HELD_FOR_PREREQUISITE
    await wait_for_status(engine, upload_id, JobStatus.COMPLETED)
    upload = engine.get(upload_id)
    assert upload is not None
    assert upload.error is None
    build_time = device.compilation_time
    assert build_time != OLD_BUILD
    assert device.answered >= 1
    assert f"— proven: the device runs ESPHome 2026.10.0, built {build_time} —" in (
        upload.output.lines
    )
    assert log.statuses(upload_id)[-2:] == [JobStatus.RUNNING, JobStatus.COMPLETED]
    assert upload.public_dict()["held_reason"] is None


async def test_device_restarting_into_the_old_build_fails_the_proof(
    make_engine: EngineFactory, fake: FakeEsphome, device: FakeNativeDevice
) -> None:
    """No answer with the new build within `proof_timeout`: failed, with what it reports."""
    device.follow_flashes = False
    engine = await make_engine(network_uploads=uploads(proof_timeout=0.5))
    [chain] = await engine.install(["kitchen.yaml"])
    await wait_for_status(engine, chain.upload.job_id, JobStatus.FAILED)
    upload = engine.get(chain.upload.job_id)
    assert upload is not None
    assert upload.error is not None
    assert upload.error.startswith(
        "the device did not come back with the new firmware within 0.5 s "
        f"(the device runs another build: ESPHome 2026.10.0, built {OLD_BUILD} "
    )
    assert upload.exit_code == 0
    assert len(fake.flashed()) == 1


async def test_proof_timeout_zero_turns_the_proof_off(
    make_engine: EngineFactory, fake: FakeEsphome, device: FakeNativeDevice
) -> None:
    """With `proof_timeout` 0 the upload completes when ESPHome's does; nobody asks."""
    device.follow_flashes = False
    engine = await make_engine(network_uploads=uploads(proof_timeout=0))
    [chain] = await engine.install(["kitchen.yaml"])
    await wait_for_status(engine, chain.upload.job_id, JobStatus.COMPLETED)
    assert device.answered == 0


async def test_offline_device_holds_the_upload_until_it_answers(
    make_engine: EngineFactory, fake: FakeEsphome, device: FakeNativeDevice
) -> None:
    """Silent device: the compile runs, the upload waits held "device offline" with no
    process, and runs by itself (polling) once the device answers again."""
    await device.stop()
    engine = await make_engine(network_uploads=uploads(poll_interval=FOREVER))
    [chain] = await engine.install(["kitchen.yaml"])
    upload_id = chain.upload.job_id
    held = await wait_for_job(engine, upload_id, held_offline)
    assert held.held
    assert held.public_dict()["held_reason"] == "device offline"
    assert DEVICE_OFFLINE_MARKER in held.output.lines
    assert engine.get(chain.compile.job_id).status is JobStatus.COMPLETED  # type: ignore[union-attr]
    assert fake.calls("start", "upload") == []

    # The device comes back and announces itself (zeroconf): the upload runs at once.
    await device.start()
    assert engine.device_seen("kitchen.yaml") == [upload_id]
    assert engine.device_seen("kitchen.yaml") == []
    await wait_for_status(engine, upload_id, JobStatus.COMPLETED)
    assert len(fake.flashed()) == 1


async def test_polling_notices_the_device(
    make_engine: EngineFactory, fake: FakeEsphome, device: FakeNativeDevice
) -> None:
    """Without zeroconf, the bounded polling finds the device back."""
    await device.stop()
    engine = await make_engine(network_uploads=uploads(poll_interval=0.05))
    [chain] = await engine.install(["kitchen.yaml"])
    await wait_for_job(engine, chain.upload.job_id, held_offline)
    await device.start()
    await wait_for_status(engine, chain.upload.job_id, JobStatus.COMPLETED)
    assert len(fake.flashed()) == 1


async def test_held_offline_upload_is_cancelled_and_superseded(
    make_engine: EngineFactory, fake: FakeEsphome, device: FakeNativeDevice
) -> None:
    """Cancel ends a held-offline upload; a new install replaces it; the watch lets go."""
    await device.stop()
    engine = await make_engine(network_uploads=uploads(poll_interval=0.05))
    [first] = await engine.install(["kitchen.yaml"])
    await wait_for_job(engine, first.upload.job_id, held_offline)
    assert await engine.cancel(first.upload.job_id) == [first.upload.job_id]
    cancelled = engine.get(first.upload.job_id)
    assert cancelled is not None
    assert (cancelled.status, cancelled.held, cancelled.held_reason) == (
        JobStatus.CANCELLED,
        False,
        None,
    )

    [second] = await engine.install(["kitchen.yaml"])
    await wait_for_job(engine, second.upload.job_id, held_offline)
    [third] = await engine.install(["kitchen.yaml"])
    assert engine.get(second.upload.job_id).status is JobStatus.CANCELLED  # type: ignore[union-attr]
    await wait_for_job(engine, third.upload.job_id, held_offline)
    await device.start()
    await wait_for_status(engine, third.upload.job_id, JobStatus.COMPLETED)
    assert [call["configuration"] for call in fake.calls("start", "upload")] == ["kitchen.yaml"]


async def test_held_offline_upload_runs_again_after_a_restart(
    make_engine: EngineFactory, fake: FakeEsphome, device: FakeNativeDevice
) -> None:
    """A restart keeps the upload queued; the new engine asks the device again."""
    await device.stop()
    engine = await make_engine(network_uploads=uploads(poll_interval=FOREVER))
    [chain] = await engine.install(["kitchen.yaml"])
    await wait_for_job(engine, chain.upload.job_id, held_offline)
    await engine.stop()
    await device.start()
    again = await make_engine(network_uploads=uploads(poll_interval=FOREVER))
    await wait_for_status(again, chain.upload.job_id, JobStatus.COMPLETED)
    assert len(fake.flashed()) == 1


async def test_network_failure_is_retried_once(
    make_engine: EngineFactory, fake: FakeEsphome, device: FakeNativeDevice
) -> None:
    """A refused connection (the real CLI's output) runs the upload once more: it succeeds."""
    fail_like(fake, "ota_refused.log", fail_first=1)
    engine = await make_engine(network_uploads=uploads())
    [chain] = await engine.install(["kitchen.yaml"])
    await wait_for_status(engine, chain.upload.job_id, JobStatus.COMPLETED)
    upload = engine.get(chain.upload.job_id)
    assert upload is not None
    assert "— network failure during the upload: retrying once in 0 s —" in upload.output.lines
    assert len(fake.calls("start", "upload")) == 2
    assert len(fake.flashed()) == 1


async def test_network_failure_twice_fails_clearly(
    make_engine: EngineFactory, fake: FakeEsphome, device: FakeNativeDevice
) -> None:
    """The retry fails too: the job fails with ESPHome's reason; no third attempt."""
    fail_like(fake, "ota_refused.log")
    engine = await make_engine(network_uploads=uploads())
    [chain] = await engine.install(["kitchen.yaml"])
    await wait_for_status(engine, chain.upload.job_id, JobStatus.FAILED)
    upload = engine.get(chain.upload.job_id)
    assert upload is not None
    assert upload.error == (
        "ESPHome upload failed with exit code 1: Upload failed after 3 attempts: connecting to"
        " 127.0.0.1 failed: [Errno 111] Connection refused (retried once)"
    )
    assert len(fake.calls("start", "upload")) == 2


async def test_authentication_failure_is_not_retried(
    make_engine: EngineFactory, fake: FakeEsphome, device: FakeNativeDevice
) -> None:
    """A wrong password fails at once, with ESPHome's message."""
    fail_like(fake, "ota_auth_failure.log")
    engine = await make_engine(network_uploads=uploads())
    [chain] = await engine.install(["kitchen.yaml"])
    await wait_for_status(engine, chain.upload.job_id, JobStatus.FAILED)
    upload = engine.get(chain.upload.job_id)
    assert upload is not None
    assert upload.error == (
        "ESPHome upload failed with exit code 1: "
        "receiving auth result: Authentication invalid. Is the password correct?"
    )
    assert not any("retrying" in line for line in upload.output.lines)
    assert len(fake.calls("start", "upload")) == 1


async def test_cancel_during_the_retry_delay(
    make_engine: EngineFactory, fake: FakeEsphome, device: FakeNativeDevice
) -> None:
    """Cancelling while the retry waits ends the job at once; no second attempt."""
    fail_like(fake, "ota_refused.log")
    engine = await make_engine(network_uploads=uploads(retry_delay=FOREVER))
    [chain] = await engine.install(["kitchen.yaml"])
    await wait_for_job(
        engine,
        chain.upload.job_id,
        lambda job: any("retrying" in line for line in job.output.lines),
    )
    assert await engine.cancel(chain.upload.job_id) == [chain.upload.job_id]
    assert engine.get(chain.upload.job_id).status is JobStatus.CANCELLED  # type: ignore[union-attr]
    assert len(fake.calls("start", "upload")) == 1


async def test_cancel_during_the_proof(
    make_engine: EngineFactory, fake: FakeEsphome, device: FakeNativeDevice
) -> None:
    """Cancelling while the proof waits ends the job cancelled at once."""
    device.follow_flashes = False
    engine = await make_engine(network_uploads=uploads(proof_timeout=FOREVER))
    [chain] = await engine.install(["kitchen.yaml"])
    await wait_for_job(
        engine,
        chain.upload.job_id,
        lambda job: any(line.startswith("— waiting for the device") for line in job.output.lines),
    )
    assert await engine.cancel(chain.upload.job_id) == [chain.upload.job_id]
    assert engine.get(chain.upload.job_id).status is JobStatus.CANCELLED  # type: ignore[union-attr]


async def test_unaskable_and_serial_uploads(
    make_engine: EngineFactory, fake: FakeEsphome, socket_enabled: None
) -> None:
    """No native API: uploaded, unproven, and the log says why. Serial: as before."""
    fake.add_config("porch")
    engine = await make_engine(network_uploads=uploads())
    [chain] = await engine.install(["porch.yaml"])
    await wait_for_status(engine, chain.upload.job_id, JobStatus.COMPLETED)
    upload = engine.get(chain.upload.job_id)
    assert upload is not None
    assert (
        "— not proven: the device cannot be asked (the configuration has no native API) —"
        in upload.output.lines
    )
    # An ESP8266 over serial keeps the CLI (an ESP32 would go through esptool, serial_executor).
    storage = fake.config_dir / ".esphome" / "storage" / "porch.yaml.json"
    record = json.loads(storage.read_text(encoding="utf-8"))
    record.update(core_platform="esp8266", esp_platform="ESP8266")
    storage.write_text(json.dumps(record), encoding="utf-8")
    [serial] = await engine.upload(["porch.yaml"], port="/dev/ttyUSB0")
    await wait_for_status(engine, serial.job_id, JobStatus.COMPLETED)
    assert not any("proven" in line for line in serial.output.lines)
    assert [call["port"] for call in fake.calls("start", "upload")] == ["OTA", "/dev/ttyUSB0"]


async def test_stop_while_held_keeps_the_upload_queued(
    make_engine: EngineFactory, fake: FakeEsphome, device: FakeNativeDevice
) -> None:
    """Stopping the engine stops the polling; the held upload stays queued."""
    await device.stop()
    engine = await make_engine(network_uploads=uploads(poll_interval=0.01))
    [chain] = await engine.install(["kitchen.yaml"])
    await wait_for_job(engine, chain.upload.job_id, held_offline)
    await engine.stop()
    assert engine.get(chain.upload.job_id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    assert engine.device_seen("kitchen.yaml") == [chain.upload.job_id]  # released, not run
