"""Bundles made ahead for the next remote compiles: what is prepared, taken and discarded.

Real `esphome bundle` processes of the fake CLI; the end-to-end case runs a real remote
compile against a test receiver. Tests wait on the preparation tasks themselves (through
`take` and `close`), never on sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import os
from pathlib import Path
import time

import pytest

from custom_components.esphome_pipeline.engine.esphome_cli import EsphomeCli
from custom_components.esphome_pipeline.engine.events import EventKind, JobEvent
from custom_components.esphome_pipeline.engine.lanes import RunningJob
from custom_components.esphome_pipeline.engine.models import Job, JobStatus, JobType, Lane
from custom_components.esphome_pipeline.engine.peer.bundle_ahead import (
    BundleAhead,
    staging_for,
)
from custom_components.esphome_pipeline.engine.peer.executor import RemoteExecutor
from custom_components.esphome_pipeline.engine.routing import BuildOn, Routing
from tests.fakes import FakeEsphome, fake_cli

from .conftest import WAIT, LinkFactory, ReceiverFactory
from .test_remote_compile import RecordingSink


class Queue:
    """A job list, a routing and peers, as the engine would show them to BundleAhead."""

    def __init__(self, config: FakeEsphome, peers: int = 1) -> None:
        self.config = config
        self.jobs: list[Job] = []
        self.routing = Routing()
        self.peers = [f"peer-{number}" for number in range(peers)]
        self.ahead = BundleAhead(
            fake_cli(),
            config.config_dir,
            jobs=lambda: self.jobs,
            routing=lambda: self.routing,
            peers=lambda: self.peers,
        )

    def add(self, name: str, job_type: JobType = JobType.COMPILE) -> Job:
        configuration = self.config.add_config(name) if job_type is JobType.COMPILE else name
        if job_type is JobType.COMPILE:
            # Written well before: a file changed while its bundle is made counts as changed.
            past = time.time() - 60
            os.utime(self.config.config_dir / configuration, (past, past))
        job = Job(configuration=configuration, job_type=job_type, lane=Lane.COMPILE)
        self.jobs.append(job)
        return job

    def staging(self, job: Job) -> Path:
        return staging_for(self.config.config_dir / ".esphome", job.job_id)

    def changed(self, job: Job) -> None:
        self.ahead.on_event(JobEvent(EventKind.STATUS, job))
        self.ahead.refresh()


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[Queue]:
    config = FakeEsphome(tmp_path / "config")
    made = Queue(config)
    yield made
    await made.ahead.close()


async def test_prepares_the_next_compiles_one_per_peer(queue: Queue) -> None:
    first, second = queue.add("dev1"), queue.add("dev2")
    queue.ahead.refresh()
    assert queue.ahead.prepared == {first.job_id}
    prepared = await queue.ahead.take(first)
    assert prepared is not None
    assert prepared.path == queue.staging(first) / "bundle.tar.gz"
    assert prepared.path.is_file()
    assert any("Bundle created" in line for line in prepared.lines)
    # Taken: the next one is prepared on the next look.
    first.status, first.lane, first.peer = JobStatus.RUNNING, Lane.REMOTE, "peer-0"
    queue.changed(first)
    assert queue.ahead.prepared == {second.job_id}


async def test_a_bundle_a_peer_waits_for_comes_before_later_ones(queue: Queue) -> None:
    queue.peers.append("peer-1")
    taken, second, third = queue.add("dev1"), queue.add("dev2"), queue.add("dev3")
    queue.config.behave("dev1.yaml", "bundle", wait_for_file="release-dev1")
    queue.ahead.refresh()
    assert queue.ahead.prepared == {taken.job_id, second.job_id}
    # A peer takes dev1 while its bundle is still being made: dev3, next in line for the
    # other peer, is not started meanwhile.
    taken.status, taken.lane, taken.peer = JobStatus.RUNNING, Lane.REMOTE, "peer-0"
    queue.changed(taken)
    assert queue.ahead.prepared == {taken.job_id, second.job_id}
    taker = asyncio.get_running_loop().create_task(queue.ahead.take(taken))
    await queue.config.wait_for_call("start", "bundle", "dev1.yaml")
    queue.changed(taken)
    assert queue.ahead.prepared == {second.job_id}
    (queue.config.config_dir / "release-dev1").touch()
    assert await taker is not None
    # Its end is enough to look again: no engine event is needed for dev3 to follow.
    assert queue.ahead.prepared == {second.job_id, third.job_id}


async def test_cancelled_or_superseded_jobs_lose_their_bundle(queue: Queue) -> None:
    cancelled, superseded = queue.add("dev1"), queue.add("dev2")
    queue.peers.append("peer-1")
    queue.ahead.refresh()
    assert queue.ahead.prepared == {cancelled.job_id, superseded.job_id}
    cancelled.status = JobStatus.CANCELLED
    # A superseded job ends cancelled too; one gone from the table altogether counts the same.
    queue.jobs.remove(superseded)
    queue.changed(cancelled)
    assert queue.ahead.prepared == frozenset()
    for job in (cancelled, superseded):
        assert await queue.ahead.take(job) is None
        assert not queue.staging(job).exists()


async def test_a_compile_this_machine_takes_loses_its_bundle(queue: Queue) -> None:
    job = queue.add("dev1")
    queue.ahead.refresh()
    assert await queue.ahead.take(job) is not None
    other = queue.add("dev2")
    queue.ahead.refresh()
    other.status = JobStatus.RUNNING
    queue.changed(other)
    assert await queue.ahead.take(other) is None
    assert not queue.staging(other).exists()


async def test_a_clean_discards_its_configuration_and_a_reset_all(queue: Queue) -> None:
    queue.peers.append("peer-1")
    dev1, dev2 = queue.add("dev1"), queue.add("dev2")
    queue.ahead.refresh()
    clean = Job(configuration=dev1.configuration, job_type=JobType.CLEAN, lane=Lane.COMPILE)
    clean.status = JobStatus.RUNNING
    queue.ahead.on_event(JobEvent(EventKind.STATUS, clean))
    assert queue.ahead.prepared == {dev2.job_id}
    assert await queue.ahead.take(dev1) is None
    assert not queue.staging(dev1).exists()
    reset = Job(configuration="", job_type=JobType.RESET_BUILD_ENV, lane=Lane.COMPILE)
    reset.status = JobStatus.RUNNING
    queue.ahead.on_event(JobEvent(EventKind.STATUS, reset))
    assert queue.ahead.prepared == frozenset()
    assert await queue.ahead.take(dev2) is None
    assert not queue.staging(dev2).exists()


async def test_nothing_is_prepared_behind_a_reset_or_for_this_machine_only(
    queue: Queue,
) -> None:
    queue.peers.append("peer-1")
    fell_back = queue.add("dev1")
    queue.routing = Routing(local_only=frozenset({fell_back.job_id}))
    queue.add("reset", JobType.RESET_BUILD_ENV)
    queue.add("dev2")
    queue.ahead.refresh()
    assert queue.ahead.prepared == frozenset()
    queue.routing = Routing(build_on=BuildOn.LOCAL_ONLY)
    queue.jobs = [queue.add("dev3")]
    queue.ahead.refresh()
    assert queue.ahead.prepared == frozenset()
    queue.routing = Routing(peers=frozenset())
    queue.ahead.refresh()
    assert queue.ahead.prepared == frozenset()
    queue.peers.clear()
    queue.routing = Routing()
    queue.ahead.refresh()
    assert queue.ahead.prepared == frozenset()


async def test_a_bundle_whose_file_changed_is_not_taken(queue: Queue) -> None:
    job = queue.add("dev1")
    queue.ahead.refresh()
    assert await queue.ahead.take(job) is not None
    # Prepared again (as after a requeue), then its YAML changes before a peer takes it.
    queue.ahead.refresh()
    (queue.config.config_dir / job.configuration).write_text("esphome:\n  name: changed\n")
    queue.ahead.refresh()
    assert await queue.ahead.take(job) is None


async def test_close_stops_preparations_and_removes_their_folders(queue: Queue) -> None:
    queue.peers.append("peer-1")
    jobs = [queue.add("dev1"), queue.add("dev2")]
    queue.ahead.refresh()
    await queue.ahead.close()
    assert queue.ahead.prepared == frozenset()
    for job in jobs:
        assert not queue.staging(job).exists()
    queue.ahead.on_event(JobEvent(EventKind.STATUS, jobs[0]))
    queue.ahead.refresh()
    assert queue.ahead.prepared == frozenset()


async def test_the_remote_compile_uses_the_prepared_bundle(
    tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    config = FakeEsphome(tmp_path / "config")
    queue = Queue(config)
    job = queue.add("dev1")
    receiver = await make_receiver()
    link = await make_link(receiver)
    await link.wait_for(lambda status: status.available, WAIT)
    executor = RemoteExecutor(link, fake_cli(), config.config_dir, bundle_ahead=queue.ahead)
    try:
        queue.ahead.refresh()
        job.lane = Lane.REMOTE
        sink = RecordingSink()
        result = await executor.run_remote(RunningJob(job), sink)
    finally:
        await queue.ahead.close()
    assert result.kind == "completed", result
    assert "Bundle prepared ahead while the build peers were busy" in sink.text
    assert "Bundle created" in sink.text
    assert len(config.calls(event="start", subcommand="bundle")) == 1
    assert not queue.staging(job).exists()
    assert config.firmware_path("dev1").is_file()


async def test_a_failed_preparation_leaves_the_bundle_to_the_executor(queue: Queue) -> None:
    job = queue.add("dev1")
    queue.config.behave("dev1.yaml", "bundle", exit_code=2)
    queue.ahead.refresh()
    assert await queue.ahead.take(job) is None
    # Nothing prepared is held for it any more; the executor bundles (and reports) itself.
    assert queue.ahead.prepared == frozenset()


async def test_a_bundle_prepared_but_not_taken_is_removed_when_discarded(queue: Queue) -> None:
    first = queue.add("dev1")
    queue.ahead.refresh()
    assert await queue.ahead.take(first) is not None
    # The same job back in the queue (a shutdown requeued it) is prepared again, then cancelled.
    queue.ahead.refresh()
    assert queue.ahead.prepared == {first.job_id}
    await queue.ahead.close()
    assert not queue.staging(first).exists()


async def test_a_cancelled_taker_stops_the_preparation(queue: Queue) -> None:
    job = queue.add("dev1")
    queue.config.behave("dev1.yaml", "bundle", duration=120)
    queue.ahead.refresh()
    await queue.config.wait_for_call("start", "bundle")
    taker = asyncio.get_running_loop().create_task(queue.ahead.take(job))
    await asyncio.sleep(0)  # one loop turn: the taker is now waiting on the preparation
    taker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await taker
    assert not queue.staging(job).exists()
    # Killed, not finished: the fake never recorded the end of its two-minute bundle.
    assert queue.config.calls("end", "bundle") == []


async def test_a_preparation_that_cannot_start_is_no_bundle(tmp_path: Path) -> None:
    config = FakeEsphome(tmp_path / "config")
    job = Job(configuration=config.add_config("dev1"), job_type=JobType.COMPILE, lane=Lane.COMPILE)
    ahead = BundleAhead(
        EsphomeCli((str(tmp_path / "no-such-esphome"),)),
        config.config_dir,
        jobs=lambda: [job],
        routing=Routing,
        peers=lambda: ["peer"],
    )
    ahead.refresh()
    assert await ahead.take(job) is None
    await ahead.close()
