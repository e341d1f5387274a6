"""The lane worker and the local executor against a minimal host: stops at every moment."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from custom_components.esphome_pipeline.engine.executors import LocalExecutor
from custom_components.esphome_pipeline.engine.lanes import (
    Outcome,
    RunningJob,
    StopReason,
    lane_worker,
)
from custom_components.esphome_pipeline.engine.models import (
    Job,
    JobStatus,
    JobType,
    Lane,
    ProcessRecord,
)
from custom_components.esphome_pipeline.engine.runner import JobProcess
from custom_components.esphome_pipeline.engine.state import LOCAL_COMPILE_SLOT, Slot
from tests.fakes import FakeEsphome, fake_cli


class CountingExecutor(LocalExecutor):
    """The local executor running the fake CLI directly (no exit-record wrapper), counting
    how often it built a command line."""

    def __init__(self, config_dir: Path) -> None:
        super().__init__(cli=fake_cli(), config_dir=config_dir, exit_dir=config_dir / ".exit")
        self.config_dir = config_dir
        self.argv_calls = 0

    def argv(self, job: Job) -> list[str]:
        self.argv_calls += 1
        return fake_cli().argv(job, self.config_dir)


class MissingProgramExecutor(LocalExecutor):
    """An executor whose command does not exist (no wrapper shell in between)."""

    def __init__(self, config_dir: Path) -> None:
        super().__init__(cli=fake_cli(), config_dir=config_dir, exit_dir=config_dir / ".exit")
        self._config_dir_for_test = config_dir

    def argv(self, job: Job) -> list[str]:
        return [str(self._config_dir_for_test / "no-such-esphome"), "compile", job.configuration]


@dataclass
class Host:
    """Just enough of the engine and dispatcher for a lane worker, and the executors' sink."""

    config_dir: Path
    pending: list[Job] = field(default_factory=list)
    claimed: list[RunningJob] = field(default_factory=list)
    finished: list[tuple[Job, Outcome]] = field(default_factory=list)
    records: list[ProcessRecord] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.executor = CountingExecutor(self.config_dir)

    def claim(self, slot: Slot) -> RunningJob | None:
        if not self.pending:
            return None
        running = RunningJob(self.pending.pop(0))
        self.claimed.append(running)
        return running

    async def run(self, running: RunningJob, slot: Slot) -> Outcome:
        return await self.executor.run(running, self)

    def process_started(self, job: Job, record: ProcessRecord) -> None:
        self.records.append(record)

    def output(self, job: Job, line: str, replaces_previous: bool) -> None:
        job.output.append(line, replace_last=replaces_previous)

    def progress(self, job: Job, value: int) -> None:
        job.progress = value

    def finish(self, running: RunningJob, outcome: Outcome) -> None:
        self.finished.append((running.job, outcome))
        running.finished.set_result(None)
        self.done.set()


def _compile(configuration: str = "a.yaml") -> Job:
    return Job(configuration=configuration, job_type=JobType.COMPILE, lane=Lane.COMPILE)


@pytest.mark.parametrize(
    ("reason", "status"),
    [(StopReason.CANCEL, JobStatus.CANCELLED), (StopReason.SHUTDOWN, JobStatus.QUEUED)],
)
async def test_stop_before_spawn_starts_nothing(
    fake: FakeEsphome, reason: StopReason, status: JobStatus
) -> None:
    host = Host(fake.config_dir)
    running = RunningJob(_compile())
    running.request_stop(reason, "stopped early")
    outcome = await host.executor.run(running, host)
    assert outcome.status is status
    assert host.executor.argv_calls == 0
    assert await running.tree_dead()
    if reason is StopReason.CANCEL:
        assert outcome.error == "stopped early"


async def test_stop_during_a_failed_spawn(
    fake: FakeEsphome, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = Host(fake.config_dir)
    running = RunningJob(_compile())

    async def start_then_fail(
        cls: type[JobProcess],
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
    ) -> JobProcess:
        running.request_stop(StopReason.CANCEL, "cancelled while spawning")
        raise FileNotFoundError("no such program")

    monkeypatch.setattr(JobProcess, "start", classmethod(start_then_fail))
    outcome = await host.executor.run(running, host)
    assert outcome.status is JobStatus.CANCELLED
    assert outcome.error == "cancelled while spawning"
    assert await running.tree_dead()


async def test_a_program_that_cannot_start_fails_the_job(fake: FakeEsphome) -> None:
    host = Host(fake.config_dir)
    outcome = await MissingProgramExecutor(fake.config_dir).run(RunningJob(_compile()), host)
    assert outcome.status is JobStatus.FAILED
    assert outcome.error is not None
    assert outcome.error.startswith("Could not start the ESPHome command:")


async def test_cancel_wins_over_shutdown_and_keeps_its_error(fake: FakeEsphome) -> None:
    running = RunningJob(_compile())
    running.request_stop(StopReason.CANCEL, "first")
    running.request_stop(StopReason.SHUTDOWN)
    running.request_stop(StopReason.CANCEL, "second")
    assert running.stop_reason is StopReason.CANCEL
    assert running.cancel_error == "first"
    running.spawned(None)
    running.spawned(None)  # a second report changes nothing
    assert await running.tree_dead()


async def test_no_stop_requested_means_nothing_to_wait_for() -> None:
    running = RunningJob(_compile())
    assert not running.stop_requested()
    assert await running.tree_dead()


async def test_cancelled_worker_kills_its_process(fake: FakeEsphome) -> None:
    fake.add_config("a")
    fake.behave("a.yaml", "compile", wait_for_file="never")
    host = Host(fake.config_dir, pending=[_compile()])
    wakeup = asyncio.Event()
    worker = asyncio.get_running_loop().create_task(lane_worker(LOCAL_COMPILE_SLOT, host, wakeup))
    [start] = await fake.wait_for_call("start", "compile")
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    [end] = fake.calls("end")
    assert end["pid"] == start["pid"]
    assert end["exit_code"] == -15
    assert host.finished == []
    assert host.records[0].pid == start["sid"]  # the job wrapper leads the session


async def test_worker_sleeps_until_woken(fake: FakeEsphome) -> None:
    fake.add_config("a")
    host = Host(fake.config_dir)
    wakeup = asyncio.Event()
    worker = asyncio.get_running_loop().create_task(lane_worker(LOCAL_COMPILE_SLOT, host, wakeup))
    try:
        # Let the worker find nothing and go to sleep on the event.
        await asyncio.sleep(0)
        assert host.claimed == []
        host.pending.append(_compile())
        wakeup.set()
        await host.done.wait()
        [(job, outcome)] = host.finished
        assert outcome.status is JobStatus.COMPLETED
        assert job.progress == 100
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
