"""Job streams: a slow reader never slows the engine and never misses a status change."""

from __future__ import annotations

import asyncio

from custom_components.esphome_pipeline.engine.events import EventHub, EventKind, JobEvent
from custom_components.esphome_pipeline.engine.models import JobStatus, JobType
from custom_components.esphome_pipeline.engine.streams import JobStream, StreamUpdate
from tests.fakes import FakeEsphome

from .conftest import EngineFactory, job, wait_until_idle


def _field(update: StreamUpdate, key: str) -> object:
    assert update.job is not None
    return update.job[key]


def _emit_lines(hub: EventHub, compile_job: object, count: int, prefix: str = "line") -> None:
    assert hasattr(compile_job, "job_id")
    for number in range(count):
        hub.emit(JobEvent(EventKind.OUTPUT, compile_job, f"{prefix} {number}"))  # type: ignore[arg-type]


async def test_status_is_never_dropped_progress_coalesced_output_bounded() -> None:
    hub = EventHub()
    stream = JobStream(hub.subscribe, max_lines=5)
    a = job("a.yaml", JobType.COMPILE)
    b = job("b.yaml", JobType.COMPILE)
    hub.emit(JobEvent(EventKind.STATUS, a))
    for value in (10, 20, 30):
        a.progress = value
        hub.emit(JobEvent(EventKind.PROGRESS, a))
    _emit_lines(hub, a, 4)
    a.status = JobStatus.RUNNING
    hub.emit(JobEvent(EventKind.STATUS, a))
    _emit_lines(hub, b, 4, prefix="b")
    a.progress = 40
    hub.emit(JobEvent(EventKind.PROGRESS, a))
    batch = stream.drain()
    kinds = [(update.kind, update.job_id) for update in batch]
    assert kinds == [
        (EventKind.STATUS, a.job_id),
        (EventKind.PROGRESS, a.job_id),
        (EventKind.OUTPUT, a.job_id),
        (EventKind.STATUS, a.job_id),
        (EventKind.OUTPUT, b.job_id),
        (EventKind.PROGRESS, a.job_id),
    ]
    # Each status keeps the job as it was at that moment.
    assert _field(batch[0], "status") == "queued"
    assert _field(batch[3], "status") == "running"
    # Three progress values became one, with the newest value.
    assert _field(batch[1], "progress") == 30
    # Eight lines, five kept: the three oldest went, and the count says so.
    assert batch[2].lines == ["line 3"]
    assert batch[2].dropped == 3
    assert batch[4].lines == ["b 0", "b 1", "b 2", "b 3"]
    assert _field(batch[5], "progress") == 40
    assert stream.drain() == []
    stream.close()


async def test_a_job_whose_waiting_lines_all_went_says_so_on_its_next_lines() -> None:
    hub = EventHub()
    stream = JobStream(hub.subscribe, max_lines=2)
    a = job("a.yaml", JobType.COMPILE)
    b = job("b.yaml", JobType.COMPILE)
    _emit_lines(hub, a, 1)
    _emit_lines(hub, b, 2, prefix="b")  # pushes a's only line out
    _emit_lines(hub, a, 1, prefix="again")  # a's next lines carry the count
    batch = stream.drain()
    a_lines = [update for update in batch if update.job_id == a.job_id]
    assert [(update.lines, update.dropped) for update in a_lines] == [(["again 0"], 1)]
    _emit_lines(hub, a, 1, prefix="first")
    hub.emit(JobEvent(EventKind.STATUS, b))
    _emit_lines(hub, a, 1, prefix="second")
    _emit_lines(hub, b, 1, prefix="more")  # drops a's "first" entry: count moves to "second"
    batch = stream.drain()
    a_lines = [update for update in batch if update.job_id == a.job_id]
    assert [(update.lines, update.dropped) for update in a_lines] == [(["second 0"], 1)]
    stream.close()


async def test_a_real_engine_stream_reads_at_its_own_pace(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    engine = await make_engine()
    everything = engine.open_stream()
    [chain] = await engine.install(["a.yaml"])
    only_upload = engine.open_stream(job_id=chain.upload.job_id)
    await wait_until_idle(engine)
    everything.close()
    only_upload.close()
    statuses: list[tuple[str, str]] = []
    async for batch in everything:
        statuses += [
            (update.job_id, update.job["status"])
            for update in batch
            if update.kind is EventKind.STATUS and update.job is not None
        ]
    assert [status for job_id, status in statuses if job_id == chain.compile.job_id] == [
        "queued",
        "running",
        "completed",
    ]
    seen_upload = [update async for batch in only_upload for update in batch]
    assert {update.job_id for update in seen_upload} == {chain.upload.job_id}
    assert any(update.lines for update in seen_upload)


async def test_a_waiting_reader_wakes_on_news_and_ends_on_close() -> None:
    hub = EventHub()
    stream = JobStream(hub.subscribe)
    received: list[int] = []

    async def read() -> None:
        async for batch in stream:
            received.append(len(batch))

    reader = asyncio.get_running_loop().create_task(read())
    await asyncio.sleep(0)
    hub.emit(JobEvent(EventKind.STATUS, job("a.yaml", JobType.COMPILE)))
    await asyncio.sleep(0)
    stream.close()
    stream.close()
    await reader
    assert received == [1]
