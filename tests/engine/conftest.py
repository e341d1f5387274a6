"""Fixtures for engine tests: a fake ESPHome folder, a file store, and running engines.

Engines built by `make_engine` run their lanes in a task and are stopped at teardown, so no
task, thread or process outlives a test. Tests synchronise on engine events (`EventLog`,
`wait_for_status`), never on sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
import json
from pathlib import Path
from typing import Any, Protocol

import pytest

from custom_components.esphome_pipeline.engine.events import EventKind, JobEvent
from custom_components.esphome_pipeline.engine.firmware import FirmwareEngine
from custom_components.esphome_pipeline.engine.models import Job, JobStatus, JobType
from custom_components.esphome_pipeline.engine.persistence import FileJobStore
from custom_components.esphome_pipeline.engine.state import lane_for
from tests.fakes import FakeEsphome, fake_cli

EVENT_TIMEOUT = 30.0
"""Seconds a test waits for an event before failing (a safety net, never a synchronisation)."""


@dataclass(frozen=True, slots=True)
class Seen:
    """One recorded event: what the job looked like when it was delivered."""

    kind: EventKind
    job_id: str
    configuration: str
    job_type: str
    status: JobStatus
    held: bool
    line: str | None


class EventLog:
    """Records every event of an engine, in delivery order."""

    def __init__(self, engine: FirmwareEngine) -> None:
        """Subscribe to `engine`."""
        self.events: list[Seen] = []
        self.unsubscribe = engine.subscribe(self._record)

    def _record(self, event: JobEvent) -> None:
        job = event.job
        self.events.append(
            Seen(
                event.kind,
                job.job_id,
                job.configuration,
                str(job.job_type),
                job.status,
                job.held,
                event.line,
            )
        )

    def statuses(self, job_id: str) -> list[JobStatus]:
        """Return the statuses STATUS events reported for a job, in order (repeats kept)."""
        return [
            seen.status
            for seen in self.events
            if seen.job_id == job_id and seen.kind is EventKind.STATUS
        ]

    def index(self, job_id: str, status: JobStatus) -> int:
        """Return the position of the first STATUS event of `job_id` with `status`."""
        for position, seen in enumerate(self.events):
            if seen.kind is EventKind.STATUS and seen.job_id == job_id and seen.status is status:
                return position
        raise AssertionError(f"no {status} event for {job_id}")


def job(
    configuration: str,
    job_type: JobType,
    status: JobStatus = JobStatus.QUEUED,
    **fields: Any,
) -> Job:
    """Build a job on the lane its type routes to (for table-level tests)."""
    return Job(
        configuration=configuration,
        job_type=job_type,
        lane=lane_for(job_type),
        status=status,
        **fields,
    )


def stored_jobs(store_path: Path) -> dict[str, dict[str, Any]]:
    """Return the jobs a FileJobStore holds, by id (blocking: call from test code only)."""
    data = json.loads(store_path.read_text(encoding="utf-8"))
    return {entry["job_id"]: entry for entry in data["jobs"]}


def process_gone(pid: int) -> bool:
    """Return True when `pid` no longer runs (a zombie has exited: it only awaits reaping)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


async def wait_for_job(
    engine: FirmwareEngine, job_id: str, predicate: Callable[[Job], bool]
) -> Job:
    """Wait (on engine events) until the job satisfies `predicate`; return it."""
    reached: asyncio.Future[Job] = asyncio.get_running_loop().create_future()

    def check(event: JobEvent | None = None) -> None:
        job = engine.get(job_id)
        if job is not None and predicate(job) and not reached.done():
            reached.set_result(job)

    unsubscribe = engine.subscribe(check)
    try:
        check()
        async with asyncio.timeout(EVENT_TIMEOUT):
            return await reached
    finally:
        unsubscribe()


async def wait_for_status(
    engine: FirmwareEngine,
    job_id: str,
    statuses: Collection[JobStatus] | JobStatus,
    *,
    held: bool | None = None,
) -> JobStatus:
    """Wait (on engine events) until the job is in one of `statuses` (and `held`, if given)."""
    wanted = {statuses} if isinstance(statuses, JobStatus) else set(statuses)
    job = await wait_for_job(
        engine, job_id, lambda job: job.status in wanted and (held is None or job.held is held)
    )
    return job.status


async def wait_until_idle(engine: FirmwareEngine) -> None:
    """Wait (on engine events) until no job is queued or running."""
    loop = asyncio.get_running_loop()
    idle: asyncio.Future[None] = loop.create_future()

    def on_event(event: JobEvent) -> None:
        if event.kind is EventKind.STATUS and engine.queue_status().idle and not idle.done():
            idle.set_result(None)

    unsubscribe = engine.subscribe(on_event)
    try:
        if not engine.queue_status().idle:
            async with asyncio.timeout(EVENT_TIMEOUT):
                await idle
        await engine.flush()
    finally:
        unsubscribe()


class EngineFactory(Protocol):
    """Builds engines on the test's fake folder and store."""

    async def __call__(
        self, *, run: bool = True, load: bool = True, **options: Any
    ) -> FirmwareEngine:
        """Build, load and (by default) run an engine."""


@pytest.fixture
def fake(tmp_path: Path) -> FakeEsphome:
    """A config folder for the fake CLI; every subcommand is instant unless a test says."""
    fake = FakeEsphome(tmp_path / "config")
    for subcommand in ("compile", "upload", "clean", "clean-all"):
        fake.behave("default", subcommand, duration=0)
    return fake


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Where the engines of a test store their jobs."""
    return tmp_path / "storage" / "jobs.json"


@pytest.fixture
async def make_engine(fake: FakeEsphome, store_path: Path) -> AsyncIterator[EngineFactory]:
    """Build engines on the fake folder; all are stopped (and their run tasks awaited) after."""
    runs: list[tuple[FirmwareEngine, asyncio.Task[None] | None]] = []

    async def build(*, run: bool = True, load: bool = True, **options: Any) -> FirmwareEngine:
        engine = FirmwareEngine(
            config_dir=fake.config_dir,
            cli=fake_cli(),
            store=FileJobStore(store_path),
            **options,
        )
        if load:
            await engine.load()
        task = asyncio.get_running_loop().create_task(engine.run()) if run else None
        runs.append((engine, task))
        return engine

    yield build
    for engine, task in runs:
        await engine.stop()
        if task is not None:
            await task


@dataclass(frozen=True, slots=True)
class Span:
    """One fake process, from its `start` record to its `end` record (file positions)."""

    subcommand: str
    configuration: str | None
    port: str | None
    pid: int
    argv: tuple[str, ...]
    start: int
    end: float
    """Position of the `end` record; infinity when the process never wrote one (killed)."""
    exit_code: int | None

    def overlaps(self, other: Span) -> bool:
        """Return True when the two processes ran at the same time."""
        return self.start < other.end and other.start < self.end


COMPILE_LANE_SUBCOMMANDS = frozenset({"compile", "clean", "clean-all"})


def spans(fake: FakeEsphome) -> list[Span]:
    """Return every fake process in start order, paired by pid in the append-only call log.

    The log's line order is the real order of events across processes, so comparing
    positions proves ordering without any timing.
    """
    calls = fake.calls()
    found: list[Span] = []
    for position, call in enumerate(calls):
        if call["event"] != "start":
            continue
        end_position: float = float("inf")
        exit_code = None
        for later, other in enumerate(calls[position + 1 :], start=position + 1):
            if other["event"] == "end" and other["pid"] == call["pid"]:
                end_position, exit_code = later, other["exit_code"]
                break
        found.append(
            Span(
                call["subcommand"],
                call["configuration"],
                call["port"],
                call["pid"],
                tuple(call["argv"]),
                position,
                end_position,
                exit_code,
            )
        )
    return found


def max_concurrency(found: list[Span]) -> int:
    """Return the largest number of these processes that ran at once."""
    return max(
        (sum(1 for other in found if other.start <= span.start < other.end) for span in found),
        default=0,
    )
