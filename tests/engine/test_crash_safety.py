"""Home Assistant killed while an upload runs: the upload finishes and is never flashed twice.

"Home Assistant" is a real process here (`tests.fakes.engine_host`) running the engine on the
test's store and folder; the test SIGKILLs it while the fake CLI's upload is under way, so the
job's process loses its reader exactly as after a crash. The fake then flashes and prints
its success line into that dead pipe, and (`exit_on_broken_pipe`) dies of a broken pipe if
it ever sees one, as the real CLI does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
from typing import Any

from custom_components.esphome_pipeline.engine.device.build_records import (
    ApiEndpoint,
    BuildIdentity,
)
from custom_components.esphome_pipeline.engine.device.native_api import DeviceTruth, Verdict
from custom_components.esphome_pipeline.engine.exit_record import (
    exit_record_path,
    job_log_path,
    read_exit_record,
    read_job_log,
)
from custom_components.esphome_pipeline.engine.firmware import EXIT_RECORD_DIR
from custom_components.esphome_pipeline.engine.models import (
    Job,
    JobStatus,
    JobType,
    Lane,
    SkipReason,
)
from custom_components.esphome_pipeline.engine.persistence import (
    COMPLETED_AWAY_MARKER,
    RESTART_MARKER,
)
from custom_components.esphome_pipeline.engine.recovery import LEFTOVER_LOG_MARKER, recover
from custom_components.esphome_pipeline.engine.skip_checks import DeviceRunsBuild
from tests.fakes import FakeEsphome
from tests.fakes.native_device import FakeNativeDevice

from .conftest import EVENT_TIMEOUT, EngineFactory, stored_jobs, wait_until_idle

REPOSITORY = Path(__file__).parents[2]


async def until[T](probe: Callable[[], T | None]) -> T:
    """Poll `probe` (blocking, run off the loop) until it returns a value: for files another
    process writes, which have no event to await. Bounded by EVENT_TIMEOUT."""
    async with asyncio.timeout(EVENT_TIMEOUT):
        while (value := await asyncio.to_thread(probe)) is None:
            await asyncio.sleep(0.02)
    return value


def start_host(
    fake: FakeEsphome, store_path: Path, *configurations: str, force: bool = False
) -> subprocess.Popen[str]:
    """Start the engine host ("Home Assistant") with an install of `configurations` queued."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.engine_host",
            str(fake.config_dir),
            str(store_path),
            "install-force" if force else "install",
            *configurations,
        ],
        cwd=REPOSITORY,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )


def stored_process(store_path: Path, job_id: str) -> dict[str, Any] | None:
    """The process record the store holds for a job, once it holds one (blocking)."""
    try:
        entry = stored_jobs(store_path).get(job_id)
    except (FileNotFoundError, ValueError):
        return None
    return None if entry is None else entry.get("process")


async def test_upload_finishing_after_home_assistant_died_is_not_flashed_again(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path
) -> None:
    fake.add_config("a")
    fake.behave(
        "a.yaml", "upload", wait_for_file="go-upload", flash_first=True, exit_on_broken_pipe=True
    )
    host = await asyncio.to_thread(start_host, fake, store_path, "a.yaml")
    assert host.stdout is not None
    [chain] = json.loads(await asyncio.to_thread(host.stdout.readline))
    await fake.wait_for_call("start", "upload")
    # The store knows the upload's process before Home Assistant dies (as it would in HA).
    await until(lambda: stored_process(store_path, chain["upload"]))

    os.kill(host.pid, signal.SIGKILL)
    await asyncio.to_thread(host.wait)
    host.stdout.close()
    fake.release("go-upload")

    # The leftover flashes, prints its success line to nobody, and finishes cleanly.
    [end] = await fake.wait_for_call("end", "upload")
    assert end["exit_code"] == 0
    exit_dir = fake.config_dir / EXIT_RECORD_DIR
    record = exit_record_path(exit_dir, chain["upload"])
    assert await until(lambda: read_exit_record(record)) == 0
    log = await asyncio.to_thread(read_job_log, exit_dir, chain["upload"], 5)
    assert log[-1] == "INFO OTA successful"
    assert len(fake.flashed()) == 1

    # The restart restores the store: the upload completed while nobody watched.
    engine = await make_engine()
    upload = engine.get(chain["upload"])
    assert upload is not None
    assert upload.status is JobStatus.COMPLETED
    assert upload.output.lines[-1] == COMPLETED_AWAY_MARKER
    await wait_until_idle(engine)
    assert len(fake.flashed()) == 1
    assert [call["subcommand"] for call in fake.calls("start")] == ["compile", "upload"]


async def test_restart_lets_a_leftover_upload_finish_before_stopping_it(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path
) -> None:
    """Home Assistant comes back while the old upload still flashes: it is not killed mid-OTA
    (the device could take the image, and the upload would run again); it finishes, records
    its exit, and the job is completed without a second flash."""
    fake.add_config("a")
    fake.behave("a.yaml", "upload", wait_for_file="go-upload", flash_first=True)
    host = await asyncio.to_thread(start_host, fake, store_path, "a.yaml")
    assert host.stdout is not None
    [chain] = json.loads(await asyncio.to_thread(host.stdout.readline))
    await fake.wait_for_call("start", "upload")
    await until(lambda: stored_process(store_path, chain["upload"]))
    os.kill(host.pid, signal.SIGKILL)
    await asyncio.to_thread(host.wait)
    host.stdout.close()

    # The restart begins while the leftover still waits; it finishes only afterwards.
    restart = asyncio.get_running_loop().create_task(make_engine())
    await asyncio.sleep(0)
    assert not restart.done()
    fake.release("go-upload")
    engine = await restart
    upload = engine.get(chain["upload"])
    assert upload is not None
    assert upload.status is JobStatus.COMPLETED
    await wait_until_idle(engine)
    assert len(fake.flashed()) == 1
    [end] = fake.calls("end", "upload")
    assert end["exit_code"] == 0


class FlashedDevice:
    """A device double on the native API: it runs the build once the fake CLI flashed it."""

    def __init__(self, fake: FakeEsphome) -> None:
        """Watch the fake's flash records."""
        self._fake = fake
        self.asked = 0

    async def __call__(self, endpoint: ApiEndpoint, build: BuildIdentity) -> DeviceTruth:
        """Answer as the device would: this build once flashed, the old one before."""
        self.asked += 1
        flashed = await asyncio.to_thread(self._fake.flashed)
        verdict = Verdict.RUNS_THIS_BUILD if flashed else Verdict.RUNS_OTHER_BUILD
        return DeviceTruth(verdict=verdict, summary=str(verdict))


def with_native_api(fake: FakeEsphome, configuration: str) -> None:
    """The validated configuration `esphome compile` leaves for a node with `api:`."""
    validated = fake.config_dir / ".esphome" / "storage" / f"{configuration}.validated.json"
    validated.parent.mkdir(parents=True, exist_ok=True)
    config = {"api": {"port": 6053}, "wifi": {"use_address": "127.0.0.1"}}
    validated.write_text(json.dumps({"config": config}), encoding="utf-8")


async def test_upload_of_unknown_outcome_asks_the_device_before_flashing_again(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path
) -> None:
    """The leftover flashed the device, then failed (a reset while it waited for the result):
    no exit record of 0, so the outcome is unknown. After the restart the upload asks the
    device first, even though it was queued with `force`, and completes `device_current`
    without a second flash. Its output shows what the leftover printed while nobody read it."""
    fake.add_config("a")
    fake.behave(
        "a.yaml",
        "upload",
        wait_for_file="go-upload",
        flash_first=True,
        lines=["INFO Uploading: 100%", "INFO OTA successful", "INFO Waiting for the result"],
        exit_code=1,
        fail_message="Connection reset by peer",
    )
    host = await asyncio.to_thread(start_host, fake, store_path, "a.yaml", force=True)
    assert host.stdout is not None
    [chain] = json.loads(await asyncio.to_thread(host.stdout.readline))
    await fake.wait_for_call("start", "upload")
    await until(lambda: stored_process(store_path, chain["upload"]))
    os.kill(host.pid, signal.SIGKILL)
    await asyncio.to_thread(host.wait)
    host.stdout.close()
    fake.release("go-upload")
    [end] = await fake.wait_for_call("end", "upload")
    assert end["exit_code"] == 1
    record = exit_record_path(fake.config_dir / EXIT_RECORD_DIR, chain["upload"])
    assert await until(lambda: read_exit_record(record)) == 1
    assert len(fake.flashed()) == 1
    await asyncio.to_thread(with_native_api, fake, "a.yaml")

    device = FlashedDevice(fake)
    engine = await make_engine(
        skip_checks=[DeviceRunsBuild(fake.config_dir / ".esphome", ask_device=device)]
    )
    upload = engine.get(chain["upload"])
    assert upload is not None
    assert list(upload.output.lines) == [
        LEFTOVER_LOG_MARKER,
        "INFO Uploading: 100%",
        "INFO OTA successful",
        "INFO Waiting for the result",
        "ERROR Connection reset by peer",
        RESTART_MARKER,
    ]
    await wait_until_idle(engine)
    upload = engine.get(chain["upload"])
    assert upload is not None
    assert (upload.status, upload.skipped) == (JobStatus.COMPLETED, SkipReason.DEVICE_CURRENT)
    assert device.asked == 1
    assert len(fake.flashed()) == 1
    assert [call["subcommand"] for call in fake.calls("start")] == ["compile", "upload"]


async def test_killed_while_the_upload_awaits_its_proof_asks_the_device_again(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path, socket_enabled: None
) -> None:
    """The flash went through (its process exited 0) and the upload was waiting for the device
    to come back with the build when Home Assistant died. That exit alone does not make it
    done: after the restart the upload asks the device first and completes `device_current`,
    with no second flash, once the device shows that it runs the build."""
    fake.add_config("a")
    device = FakeNativeDevice(fake.config_dir, "a.yaml", name="a", follow_flashes=False)
    await device.start()
    await asyncio.to_thread(device.write_api_config)
    try:
        host = await asyncio.to_thread(start_host, fake, store_path, "a.yaml")
        assert host.stdout is not None
        [chain] = json.loads(await asyncio.to_thread(host.stdout.readline))
        # The proof's first question: the device still answers with its old build.
        await asyncio.wait_for(device.asked.wait(), EVENT_TIMEOUT)
        os.kill(host.pid, signal.SIGKILL)
        await asyncio.to_thread(host.wait)
        host.stdout.close()
        assert len(fake.flashed()) == 1

        device.follow_flashes = True  # it has booted the new build meanwhile
        engine = await make_engine(skip_checks=[DeviceRunsBuild(fake.config_dir / ".esphome")])
        await wait_until_idle(engine)
        upload = engine.get(chain["upload"])
        assert upload is not None
        assert (upload.status, upload.skipped) == (JobStatus.COMPLETED, SkipReason.DEVICE_CURRENT)
        assert len(fake.flashed()) == 1
        assert device.answered >= 2  # asked by the proof, then by the restart's device check
    finally:
        await device.stop()


def running_job(job_type: JobType, lines: list[str], *, force: bool = True) -> Job:
    """A job the store holds as running (its engine died), with the output it had seen."""
    job = Job(
        configuration="a.yaml",
        job_type=job_type,
        lane=Lane.UPLOAD if job_type is JobType.UPLOAD else Lane.COMPILE,
        status=JobStatus.RUNNING,
        port="OTA" if job_type is JobType.UPLOAD else None,
        force=force,
        started_at="2026-11-27T10:00:00+00:00",
    )
    for line in lines:
        job.output.append(line)
    return job


async def test_restore_adds_only_what_the_leftover_printed_unseen(tmp_path: Path) -> None:
    """The log repeats what the engine saw before it died: only the rest is added. A log
    with nothing new adds nothing; a job without a log keeps its output."""
    seen = running_job(JobType.COMPILE, ["INFO Reading", "INFO Compiling", "INFO Compiling"])
    nothing_new = running_job(JobType.COMPILE, ["INFO Reading"])
    no_log = running_job(JobType.UPLOAD, ["INFO Uploading"])
    logs = {
        seen.job_id: "INFO Reading\nINFO Compiling\nINFO Compiling\nINFO Linking\n",
        nothing_new.job_id: "INFO Reading\n",
    }

    def write_logs() -> None:
        tmp_path.mkdir(exist_ok=True)
        for job_id, text in logs.items():
            job_log_path(tmp_path, job_id).write_text(text, encoding="utf-8")

    await asyncio.to_thread(write_logs)
    entries = [job.to_dict() for job in (seen, nothing_new, no_log)]
    by_id = {job.job_id: job for job in (await recover(entries, tmp_path)).jobs}
    assert list(by_id[seen.job_id].output.lines) == [
        "INFO Reading",
        "INFO Compiling",
        "INFO Compiling",
        LEFTOVER_LOG_MARKER,
        "INFO Linking",
        RESTART_MARKER,
    ]
    assert list(by_id[nothing_new.job_id].output.lines) == ["INFO Reading", RESTART_MARKER]
    assert list(by_id[no_log.job_id].output.lines) == ["INFO Uploading", RESTART_MARKER]
    # A compile keeps `force`; an upload of unknown outcome asks the device first.
    assert (by_id[seen.job_id].force, by_id[no_log.job_id].force) == (True, False)
