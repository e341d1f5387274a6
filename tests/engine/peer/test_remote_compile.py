"""Remote compiles through RemoteExecutor against a test receiver running the fake CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from custom_components.esphome_pipeline.engine.lanes import RunningJob, StopReason
from custom_components.esphome_pipeline.engine.models import (
    Job,
    JobStatus,
    JobType,
    Lane,
    ProcessRecord,
)
from custom_components.esphome_pipeline.engine.peer.client import PeerLink
from custom_components.esphome_pipeline.engine.peer.executor import RemoteExecutor, RemoteRunResult
from tests.fakes import FakeEsphome, fake_cli
from tests.fakes.test_receiver import PeerReceiver

from .conftest import WAIT, LinkFactory, ReceiverFactory


class RecordingSink:
    """Collects what a job reports."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, bool]] = []
        self.progress_values: list[int] = []
        self.processes: list[ProcessRecord] = []

    def output(self, job: Job, line: str, replaces_previous: bool) -> None:
        self.lines.append((line, replaces_previous))

    def progress(self, job: Job, value: int) -> None:
        self.progress_values.append(value)

    def process_started(self, job: Job, record: ProcessRecord) -> None:
        self.processes.append(record)

    @property
    def text(self) -> str:
        return "\n".join(line for line, _ in self.lines)


def compile_job(configuration: str = "dev1.yaml") -> Job:
    return Job(configuration=configuration, job_type=JobType.COMPILE, lane=Lane.REMOTE)


class Remote:
    """A client config folder, a receiver, a link and an executor wired together."""

    def __init__(self, config: FakeEsphome, receiver: PeerReceiver, link: PeerLink) -> None:
        self.config = config
        self.receiver = receiver
        self.link = link
        self.executor = RemoteExecutor(link, fake_cli(), config.config_dir, stop_poll=0.01)

    async def run(self, job: Job | None = None) -> tuple[RemoteRunResult, RecordingSink]:
        sink = RecordingSink()
        running = RunningJob(job or compile_job())
        return await self.executor.run_remote(running, sink), sink


@pytest.fixture
async def remote(tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory) -> Remote:
    config = FakeEsphome(tmp_path / "config")
    config.add_config("dev1")
    receiver = await make_receiver()
    link = await make_link(receiver)
    await link.wait_for(lambda s: s.available, WAIT)
    return Remote(config, receiver, link)


async def test_remote_compile_streams_output_and_puts_the_firmware_in_place(
    remote: Remote,
) -> None:
    result, sink = await remote.run()
    assert result.kind == "completed", result.outcome.error
    assert result.outcome.status is JobStatus.COMPLETED
    assert "Bundle created" in sink.text
    assert "Building on peer Test HA" in sink.text
    assert "ESPHome 2026.10.0" in sink.text
    assert "Successfully compiled program." in sink.text
    assert sink.progress_values == sorted(set(sink.progress_values))
    assert sink.progress_values[-1] == 100
    assert len(sink.processes) == 1  # the local bundle process
    firmware = remote.config.firmware_path("dev1")
    built = remote.receiver.jobs
    assert (
        firmware.read_bytes()
        == next(iter(built.values()))
        .folder.joinpath(".esphome", "build", "dev1", ".pioenvs", "dev1", "firmware.bin")
        .read_bytes()
    )
    storage = json.loads(remote.config.storage_path("dev1.yaml").read_text())
    assert storage["firmware_bin_path"] == str(firmware)
    assert storage["build_path"] == str(firmware.parents[2])
    # The staging folder is gone; the local CLI's upload finds the image.
    assert not (remote.config.config_dir / ".esphome" / ".pipeline-remote" / "x").exists()
    assert list((remote.config.config_dir / ".esphome" / ".pipeline-remote").iterdir()) == []
    upload = await asyncio.create_subprocess_exec(
        *fake_cli().command, "upload", str(remote.config.config_dir / "dev1.yaml")
    )
    assert await upload.wait() == 0
    assert remote.config.flashed()[0]["firmware"] == str(firmware)


async def test_compile_failure_on_the_peer_is_the_jobs_error(
    tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    config = FakeEsphome(tmp_path / "config")
    config.add_config("dev1")
    receiver = await make_receiver(
        behaviour={"default": {"compile": {"exit_code": 1, "fail_message": "bad pin"}}}
    )
    link = await make_link(receiver)
    await link.wait_for(lambda s: s.available, WAIT)
    result, sink = await Remote(config, receiver, link).run()
    assert result.kind == "failed"
    assert result.outcome.error == "Compile on peer Test HA failed: esphome compile exited with 1"
    assert "ERROR bad pin" in sink.text
    assert not result.retryable


async def test_cancel_reaches_the_peer_and_its_process_ends(
    tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    config = FakeEsphome(tmp_path / "config")
    config.add_config("dev1")
    receiver = await make_receiver(behaviour={"default": {"compile": {"wait_for_file": "never"}}})
    link = await make_link(receiver)
    await link.wait_for(lambda s: s.available, WAIT)
    remote = Remote(config, receiver, link)
    running = RunningJob(compile_job())
    run = asyncio.ensure_future(remote.executor.run_remote(running, RecordingSink()))
    await asyncio.wait_for(receiver.event("started").wait(), WAIT)
    busy = await link.wait_for(lambda s: s.running, WAIT)
    assert not busy.available
    running.request_stop(StopReason.CANCEL, "Cancelled by the user")
    result = await asyncio.wait_for(run, WAIT)
    assert result.outcome.status is JobStatus.CANCELLED
    assert result.outcome.error == "Cancelled by the user"
    assert receiver.cancels == [running.job.job_id]
    assert receiver.event("ended").is_set()
    assert receiver.jobs[running.job.job_id].state == "cancelled"
    await link.wait_for(lambda s: s.available, WAIT)


async def test_a_receiver_killed_mid_build_is_a_clear_retryable_error(
    tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    config = FakeEsphome(tmp_path / "config")
    config.add_config("dev1")
    receiver = await make_receiver(behaviour={"default": {"compile": {"wait_for_file": "never"}}})
    link = await make_link(receiver)
    await link.wait_for(lambda s: s.available, WAIT)
    run = asyncio.ensure_future(Remote(config, receiver, link).run())
    await asyncio.wait_for(receiver.event("started").wait(), WAIT)
    await receiver.kill()
    result, _ = await asyncio.wait_for(run, WAIT)
    assert result.kind == "peer_lost"
    assert result.retryable
    assert result.local_fallback
    assert (result.outcome.error or "").startswith("Lost peer Test HA mid-build:")
    assert not config.firmware_path("dev1").exists()


async def test_stop_before_start_and_during_bundle(remote: Remote) -> None:
    running = RunningJob(compile_job())
    running.request_stop(StopReason.SHUTDOWN)
    result = await remote.executor.run_remote(running, RecordingSink())
    assert result.outcome.status is JobStatus.QUEUED
    assert remote.receiver.jobs == {}


async def test_bundle_failure(remote: Remote) -> None:
    result, _ = await remote.run(compile_job("missing.yaml"))
    assert result.kind == "bundle_failed"
    assert result.outcome.error == "esphome bundle failed with exit code 2"
    assert remote.receiver.jobs == {}


async def test_offline_peer_fails_at_once(remote: Remote) -> None:
    await remote.receiver.stop()
    await remote.link.wait_for(lambda s: not s.connected, WAIT)
    result, _ = await remote.run()
    assert result.kind == "peer_lost"
    assert "not connected" in (result.outcome.error or "")


async def quirky(
    tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory, hostile: str
) -> tuple[RemoteRunResult, RecordingSink, FakeEsphome]:
    config = FakeEsphome(tmp_path / "config")
    config.add_config("dev1")
    receiver = await make_receiver(hostile=hostile)
    link = await make_link(receiver)
    await link.wait_for(lambda s: s.available, WAIT)
    result, sink = await Remote(config, receiver, link).run()
    return result, sink, config


async def test_refused_job(
    tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    result, _, _ = await quirky(tmp_path, make_receiver, make_link, "refuse_job")
    assert result.kind == "refused"
    assert result.outcome.error == "Peer Test HA: The build peer refused the job: hash_mismatch"


async def test_a_cancel_nobody_asked_for_fails_the_job(
    tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    result, _, _ = await quirky(tmp_path, make_receiver, make_link, "peer_cancels")
    assert result.kind == "failed"
    assert result.outcome.error == "Peer Test HA cancelled the compile"


async def test_unknown_frames_and_other_jobs_output_are_ignored(
    tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    result, _, config = await quirky(tmp_path, make_receiver, make_link, "noise_for_others")
    assert result.kind == "completed", result.outcome.error
    assert config.firmware_path("dev1").is_file()


async def test_artifacts_the_peer_cannot_pack(
    tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    result, _, config = await quirky(tmp_path, make_receiver, make_link, "pack_failed")
    assert result.kind == "artifacts_unavailable"
    assert result.local_fallback
    assert result.outcome.error == (
        "Peer Test HA: The build peer could not send the artifacts (pack_failed): "
        "RuntimeError: no module"
    )
    assert not config.firmware_path("dev1").exists()
