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

from custom_components.esphome_pipeline.engine.exit_record import (
    exit_record_path,
    read_exit_record,
    read_job_log,
)
from custom_components.esphome_pipeline.engine.firmware import EXIT_RECORD_DIR
from custom_components.esphome_pipeline.engine.models import JobStatus
from custom_components.esphome_pipeline.engine.persistence import COMPLETED_AWAY_MARKER
from tests.fakes import FakeEsphome

from .conftest import EVENT_TIMEOUT, EngineFactory, stored_jobs, wait_until_idle

REPOSITORY = Path(__file__).parents[2]


async def until[T](probe: Callable[[], T | None]) -> T:
    """Poll `probe` (blocking, run off the loop) until it returns a value: for files another
    process writes, which have no event to await. Bounded by EVENT_TIMEOUT."""
    async with asyncio.timeout(EVENT_TIMEOUT):
        while (value := await asyncio.to_thread(probe)) is None:
            await asyncio.sleep(0.02)
    return value


def start_host(fake: FakeEsphome, store_path: Path, *configurations: str) -> subprocess.Popen[str]:
    """Start the engine host ("Home Assistant") with an install of `configurations` queued."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.engine_host",
            str(fake.config_dir),
            str(store_path),
            "install",
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
