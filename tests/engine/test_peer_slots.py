"""The compile lane's second kind of slot: a build peer compiles, this machine takes the rest."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from custom_components.esphome_pipeline.engine.errors import EngineStoppedError
from custom_components.esphome_pipeline.engine.executors import JobSink
from custom_components.esphome_pipeline.engine.lanes import Outcome, RunningJob
from custom_components.esphome_pipeline.engine.models import (
    JobSource,
    JobStatus,
    JobType,
    Lane,
)
from custom_components.esphome_pipeline.engine.state import JobTable, next_peer_job
from tests.fakes import FakeEsphome

from .conftest import EngineFactory, job, wait_for_status, wait_until_idle


class PeerExecutor:
    """A build peer that compiles when told to, reporting through the sink like a real one."""

    def __init__(self, fake: FakeEsphome | None = None) -> None:
        self.fake = fake
        self.started: asyncio.Queue[RunningJob] = asyncio.Queue()
        self.release = asyncio.Event()

    async def run(self, running: RunningJob, sink: JobSink) -> Outcome:
        running.spawned(None)
        sink.output(running.job, "INFO compiling on the peer", False)
        sink.progress(running.job, 50)
        self.started.put_nowait(running)
        stopped = asyncio.get_running_loop().create_task(running.tree_dead())
        released = asyncio.get_running_loop().create_task(self.release.wait())
        while not (running.stop_requested() or self.release.is_set()):
            await asyncio.wait({released}, timeout=0.01)
        released.cancel()
        stopped.cancel()
        if running.stop_requested():
            return running.stopped_outcome()
        if self.fake is not None:
            # What a real peer's artifacts become here: the image `esphome upload` finds.
            firmware = self.fake.firmware_path(running.job.configuration.removesuffix(".yaml"))
            await asyncio.get_running_loop().run_in_executor(None, _materialise, firmware)
        return Outcome(status=JobStatus.COMPLETED, exit_code=0)


def _materialise(firmware: Path) -> None:
    firmware.parent.mkdir(parents=True, exist_ok=True)
    firmware.write_bytes(b"built on the peer")


async def test_a_peer_compiles_while_this_machine_takes_the_overflow(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    fake.add_config("b")
    fake.behave("default", "compile", wait_for_file="go")
    engine = await make_engine()
    peer = PeerExecutor(fake)
    engine.add_build_peer("fast-pc", peer)
    chains = await engine.install(["a.yaml", "b.yaml"])
    remote = await peer.started.get()
    assert remote.job.lane is Lane.REMOTE
    assert remote.job.source is JobSource.REMOTE
    assert remote.job.peer == "fast-pc"
    assert remote.job.public_dict()["lane"] == "remote"
    # The other configuration compiles here at the same time.
    [local] = await fake.wait_for_call("start", "compile")
    assert local["configuration"] != remote.job.configuration
    peer.release.set()
    fake.release("go")
    await wait_until_idle(engine)
    assert [chain.compile.error for chain in chains] == [None, None]
    assert remote.job.output.lines[-1] == "INFO compiling on the peer"
    # The upload of the remotely built configuration ran here, on the upload lane.
    [remote_chain] = [chain for chain in chains if chain.compile is remote.job]
    assert remote_chain.upload.lane is Lane.UPLOAD
    assert remote_chain.upload.source is JobSource.LOCAL


async def test_removing_a_peer_puts_its_compile_back_for_this_machine(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    engine = await make_engine()
    peer = PeerExecutor()
    engine.add_build_peer("pc", peer)
    [chain] = await engine.install(["a.yaml"])
    remote = await peer.started.get()
    await engine.remove_build_peer("pc")
    await wait_for_status(engine, chain.upload.job_id, JobStatus.COMPLETED)
    assert remote.job.lane is Lane.COMPILE
    assert remote.job.source is JobSource.LOCAL
    assert remote.job.peer is None
    assert len(fake.calls("start", subcommand="compile")) == 1
    await engine.remove_build_peer("pc")  # removing twice is harmless


async def test_peers_join_before_or_after_the_start_never_twice_never_when_stopped(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(run=False)
    engine.add_build_peer("pc", PeerExecutor())
    with pytest.raises(ValueError, match="already"):
        engine.add_build_peer("pc", PeerExecutor())
    await engine.stop()
    with pytest.raises(EngineStoppedError):
        engine.add_build_peer("other", PeerExecutor())


async def test_shutdown_requeues_a_remote_compile(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    engine = await make_engine()
    peer = PeerExecutor()
    engine.add_build_peer("pc", peer)
    [compile_job] = await engine.compile(["a.yaml"])
    await peer.started.get()
    await engine.stop()
    assert compile_job.status is JobStatus.QUEUED
    assert compile_job.lane is Lane.COMPILE


async def test_cancel_reaches_a_remote_compile(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    engine = await make_engine()
    peer = PeerExecutor()
    engine.add_build_peer("pc", peer)
    [chain] = await engine.install(["a.yaml"])
    await peer.started.get()
    cancelled = await engine.cancel(chain.compile.job_id)
    assert set(cancelled) == {chain.compile.job_id, chain.upload.job_id}
    await wait_until_idle(engine)
    assert chain.upload.status is JobStatus.CANCELLED
    assert fake.calls("start") == []


def test_peer_routing_rules() -> None:
    compile_a = job("a.yaml", JobType.COMPILE)
    clean_b = job("b.yaml", JobType.CLEAN)
    table = JobTable([clean_b, compile_a])
    # A peer never takes a clean; it takes the compile behind it.
    assert next_peer_job(table, "pc", 1) is compile_a
    compile_a.status, compile_a.lane, compile_a.peer = JobStatus.RUNNING, Lane.REMOTE, "pc"
    compile_c = job("c.yaml", JobType.COMPILE)
    table.add(compile_c)
    assert next_peer_job(table, "pc", 1) is None  # one at a time per peer
    assert next_peer_job(table, "other", 1) is compile_c
    reset = job("", JobType.RESET_BUILD_ENV)
    barrier = JobTable([reset, job("d.yaml", JobType.COMPILE)])
    assert next_peer_job(barrier, "pc", 1) is None  # nothing overtakes a reset
    reset.status = JobStatus.RUNNING
    assert next_peer_job(barrier, "pc", 1) is None
    busy = job("e.yaml", JobType.COMPILE, held=True)
    assert next_peer_job(JobTable([busy]), "pc", 1) is None
