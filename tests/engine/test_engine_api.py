"""The engine's request API, events, output handling, history and life cycle."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from custom_components.esphome_pipeline.engine.errors import (
    EngineStoppedError,
    InvalidConfigurationError,
    InvalidPortError,
    InvalidRequestError,
)
from custom_components.esphome_pipeline.engine.esphome_cli import EsphomeCli
from custom_components.esphome_pipeline.engine.events import EventKind, JobEvent
from custom_components.esphome_pipeline.engine.firmware import FirmwareEngine
from custom_components.esphome_pipeline.engine.models import (
    OUTPUT_LINE_LIMIT,
    Job,
    JobStatus,
    JobType,
    Lane,
)
from custom_components.esphome_pipeline.engine.persistence import FileJobStore
from tests.fakes import FakeEsphome, fake_cli

from .conftest import EngineFactory, EventLog, wait_for_status, wait_until_idle


async def test_install_chain_fields_and_events(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    engine = await make_engine()
    log = EventLog(engine)
    [chain] = await engine.install(
        ["a.yaml"], port="192.168.1.9", force=True, fingerprints={"a.yaml": "v1"}
    )
    compile_job, upload = chain.compile, chain.upload
    assert compile_job.job_type is JobType.COMPILE
    assert compile_job.lane is Lane.COMPILE
    assert compile_job.force
    assert compile_job.fingerprint == "v1"
    assert upload.job_type is JobType.UPLOAD
    assert upload.lane is Lane.UPLOAD
    assert upload.depends_on == compile_job.job_id
    assert upload.port == "192.168.1.9"
    assert upload.fingerprint == "v1"
    await wait_for_status(engine, upload.job_id, JobStatus.COMPLETED)
    assert log.statuses(compile_job.job_id) == [
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        JobStatus.COMPLETED,
    ]
    upload_events = [
        (seen.status, seen.held)
        for seen in log.events
        if seen.job_id == upload.job_id and seen.kind is EventKind.STATUS
    ]
    assert upload_events == [
        (JobStatus.QUEUED, True),
        (JobStatus.QUEUED, False),
        (JobStatus.RUNNING, False),
        (JobStatus.COMPLETED, False),
    ]
    assert compile_job.progress == 100
    assert upload.progress == 100
    assert upload.exit_code == 0
    assert upload.started_at is not None
    assert upload.finished_at is not None
    assert fake.flashed()[0]["port"] == "192.168.1.9"
    kinds = {seen.kind for seen in log.events if seen.job_id == compile_job.job_id}
    assert kinds == {EventKind.STATUS, EventKind.OUTPUT, EventKind.PROGRESS}


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda engine: engine.install(["a.yaml", "../b.yaml"]), InvalidConfigurationError),
        (lambda engine: engine.install(["a.yaml"], port="bad port!"), InvalidPortError),
        (lambda engine: engine.compile(["a.yaml", "secrets.yaml"]), InvalidConfigurationError),
        (lambda engine: engine.upload(["a.yaml"], port=""), InvalidPortError),
        (lambda engine: engine.clean([".hidden.yaml"]), InvalidConfigurationError),
        (lambda engine: engine.compile([]), InvalidRequestError),
        (lambda engine: engine.compile("a.yaml"), InvalidRequestError),
        (lambda engine: engine.cancel_configurations(["a"]), InvalidConfigurationError),
    ],
)
async def test_invalid_requests_queue_nothing(
    fake: FakeEsphome,
    make_engine: EngineFactory,
    store_path: Path,
    call: Any,
    error: type[Exception],
) -> None:
    engine = await make_engine(run=False, load=False)
    with pytest.raises(error):
        await call(engine)
    assert engine.jobs() == []
    assert not store_path.exists()


async def test_repeated_names_give_one_job(fake: FakeEsphome, make_engine: EngineFactory) -> None:
    engine = await make_engine(run=False)
    jobs = await engine.compile(["a.yaml", "b.yaml", "a.yaml"])
    assert [job.configuration for job in jobs] == ["a.yaml", "b.yaml"]


async def test_queries(fake: FakeEsphome, make_engine: EngineFactory) -> None:
    fake.add_config("a")
    fake.add_config("b")
    fake.behave("a.yaml", "compile", wait_for_file="never")
    engine = await make_engine()
    [chain] = await engine.install(["a.yaml"])
    [clean] = await engine.clean(["b.yaml"])
    await fake.wait_for_call("start", "compile")
    status = engine.queue_status()
    assert status.compile_running == (chain.compile.job_id,)
    assert status.upload_running == ()
    assert status.queue_depth == 2
    assert not status.idle
    assert engine.jobs() == [chain.compile, chain.upload, clean]
    assert engine.jobs(statuses=[JobStatus.QUEUED]) == [chain.upload, clean]
    assert engine.jobs(configurations=["b.yaml"]) == [clean]
    assert engine.get(clean.job_id) is clean
    assert engine.get("nope") is None
    assert engine.config_dir == fake.config_dir
    await engine.cancel(chain.compile.job_id)
    await wait_until_idle(engine)
    assert engine.queue_status().idle


async def test_upload_of_a_plain_upload_runs_at_once(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    engine = await make_engine()
    await engine.compile(["a.yaml"], fingerprints={"a.yaml": "fp"})
    await wait_until_idle(engine)
    # A network address: ESP32 builds over serial are flashed by esptool, not the CLI.
    [upload] = await engine.upload(["a.yaml"], port="10.0.0.9")
    assert not upload.held
    assert upload.depends_on is None
    await wait_for_status(engine, upload.job_id, JobStatus.COMPLETED)
    assert fake.flashed()[0]["port"] == "10.0.0.9"


async def test_output_replaces_redraws_and_is_bounded(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    lines = [f"line {number}" for number in range(OUTPUT_LINE_LIMIT + 10)]
    lines += ["[ 10%] one\r", "[ 50%] two\r", "[ 30%] three\r", "done"]
    fake.behave("a.yaml", "compile", lines=lines)
    engine = await make_engine()
    progress: list[int | None] = []
    engine.subscribe(
        lambda event: progress.append(event.job.progress)
        if event.kind is EventKind.PROGRESS
        else None
    )
    [job] = await engine.compile(["a.yaml"])
    await wait_for_status(engine, job.job_id, JobStatus.COMPLETED)
    assert progress == [10, 50]
    assert job.progress == 50
    assert len(job.output.lines) == OUTPUT_LINE_LIMIT
    # Each line ended by "\r" is redrawn by the next one: the three collapse into "done".
    assert list(job.output.lines)[-2:] == [f"line {OUTPUT_LINE_LIMIT + 9}", "done"]
    assert job.output.elided == 10 + 1


async def test_exit_zero_with_import_error_fails(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    fake.behave("a.yaml", "compile", lines=["ModuleNotFoundError: No module named 'esphome'"])
    engine = await make_engine()
    [job] = await engine.compile(["a.yaml"])
    await wait_for_status(engine, job.job_id, JobStatus.FAILED)
    assert job.exit_code == 0
    assert "output shows an error" in (job.error or "")


async def test_spawn_failure_fails_the_job(
    fake: FakeEsphome, tmp_path: Path, store_path: Path
) -> None:
    engine = FirmwareEngine(
        config_dir=fake.config_dir,
        cli=EsphomeCli((str(tmp_path / "no-such-esphome"),)),
        store=FileJobStore(store_path),
    )
    await engine.load()
    task = asyncio.get_running_loop().create_task(engine.run())
    try:
        [job] = await engine.compile(["a.yaml"])
        await wait_for_status(engine, job.job_id, JobStatus.FAILED)
        assert "Could not start the ESPHome command" in (job.error or "")
        assert job.process is None
    finally:
        await engine.stop()
        await task


async def test_internal_error_fails_the_job_and_keeps_the_lane(
    fake: FakeEsphome,
    make_engine: EngineFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.add_config("a")
    engine = await make_engine()
    original = EsphomeCli.argv

    def broken(self: EsphomeCli, job: Job, config_dir: Path) -> list[str]:
        if job.job_type is JobType.CLEAN:
            raise RuntimeError("bug")
        return original(self, job, config_dir)

    monkeypatch.setattr(EsphomeCli, "argv", broken)
    with caplog.at_level(logging.ERROR):
        [clean] = await engine.clean(["a.yaml"])
        await wait_for_status(engine, clean.job_id, JobStatus.FAILED)
    assert "Internal error" in (clean.error or "")
    assert "crashed" in caplog.text
    [job] = await engine.compile(["a.yaml"])
    await wait_for_status(engine, job.job_id, JobStatus.COMPLETED)


async def test_slot_is_free_when_the_terminal_event_arrives(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    fake.add_config("b")
    engine = await make_engine()
    seen: list[tuple[tuple[str, ...], int]] = []
    follow_ups: list[asyncio.Task[list[Job]]] = []

    def on_event(event: JobEvent) -> None:
        job = event.job
        if event.kind is EventKind.STATUS and job.is_terminal and job.configuration == "a.yaml":
            status = engine.queue_status()
            seen.append((status.compile_running, status.queue_depth))
            follow_ups.append(asyncio.get_running_loop().create_task(engine.compile(["b.yaml"])))

    engine.subscribe(on_event)
    [job] = await engine.compile(["a.yaml"])
    await wait_for_status(engine, job.job_id, JobStatus.COMPLETED)
    assert seen == [((), 0)]
    [follow_up] = await follow_ups[0]
    await wait_for_status(engine, follow_up.job_id, JobStatus.COMPLETED)


async def test_raising_subscriber_does_not_break_the_engine(
    fake: FakeEsphome, make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_config("a")
    engine = await make_engine()

    def broken(event: JobEvent) -> None:
        raise RuntimeError("subscriber bug")

    unsubscribe = engine.subscribe(broken)
    with caplog.at_level(logging.ERROR):
        [chain] = await engine.install(["a.yaml"])
        await wait_for_status(engine, chain.upload.job_id, JobStatus.COMPLETED)
    assert "subscriber bug" in caplog.text
    unsubscribe()


async def test_history_is_pruned(fake: FakeEsphome, make_engine: EngineFactory) -> None:
    for name in ("a", "b"):
        fake.add_config(name)
    engine = await make_engine(history_limit=2)
    first = await engine.compile(["a.yaml", "b.yaml"])
    await wait_until_idle(engine)
    second = await engine.compile(["a.yaml"])
    await wait_until_idle(engine)
    third = await engine.clean(["a.yaml"])
    await wait_until_idle(engine)
    # Newest compile of each configuration and the clean survive; the cap yields to them.
    assert engine.jobs() == [first[1], second[0], third[0]]
    assert engine.get(first[0].job_id) is None


async def test_save_failures_are_logged_and_the_engine_goes_on(
    fake: FakeEsphome, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenStore:
        async def load(self) -> list[dict[str, Any]] | None:
            return None

        async def save(self, jobs: list[dict[str, Any]]) -> None:
            raise OSError("read-only file system")

    fake.add_config("a")
    engine = FirmwareEngine(config_dir=fake.config_dir, cli=fake_cli(), store=BrokenStore())
    await engine.load()
    task = asyncio.get_running_loop().create_task(engine.run())
    try:
        with caplog.at_level(logging.ERROR):
            [job] = await engine.compile(["a.yaml"])
            await wait_for_status(engine, job.job_id, JobStatus.COMPLETED)
        assert "Could not save" in caplog.text
    finally:
        await engine.stop()
        await task


async def test_life_cycle_rules(fake: FakeEsphome, make_engine: EngineFactory) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FirmwareEngine(
            config_dir=fake.config_dir, cli=fake_cli(), store=FileJobStore(Path()), upload_slots=0
        )
    engine = await make_engine(run=False)
    with pytest.raises(RuntimeError, match="once"):
        await engine.load()
    await engine.stop()
    with pytest.raises(EngineStoppedError):
        await engine.compile(["a.yaml"])
    with pytest.raises(EngineStoppedError):
        await engine.reset_build_env()
    with pytest.raises(RuntimeError, match="runs once"):
        await engine.run()


async def test_requests_before_run_wait_for_the_lanes(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    engine = await make_engine(run=False)
    [chain] = await engine.install(["a.yaml"])
    assert fake.calls() == []
    task = asyncio.get_running_loop().create_task(engine.run())
    await wait_for_status(engine, chain.upload.job_id, JobStatus.COMPLETED)
    await engine.stop()
    await task


async def test_a_caller_that_gives_up_waiting_does_not_disturb_saving(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path
) -> None:
    engine = await make_engine(run=False)
    request = asyncio.get_running_loop().create_task(engine.compile(["a.yaml"]))
    # One loop step: the job is placed and the request waits for its save.
    await asyncio.sleep(0)
    [job] = engine.jobs()
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await engine.flush()
    assert FileJobStore(store_path).path.read_text(encoding="utf-8").count(job.job_id) == 1
