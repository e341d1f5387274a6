"""Stop, restart and crash recovery: jobs keep their ids, nothing is lost or flashed twice."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from custom_components.esphome_pipeline.engine import recovery
from custom_components.esphome_pipeline.engine.exit_record import (
    exit_record_path,
    with_exit_record,
)
from custom_components.esphome_pipeline.engine.firmware import EXIT_RECORD_DIR, FirmwareEngine
from custom_components.esphome_pipeline.engine.models import (
    Job,
    JobStatus,
    JobType,
    Lane,
    ProcessRecord,
)
from custom_components.esphome_pipeline.engine.persistence import (
    COMPLETED_AWAY_MARKER,
    RESTART_MARKER,
    FileJobStore,
    stored_form,
)
from custom_components.esphome_pipeline.engine.runner import JobProcess
from tests.fakes import FakeEsphome, fake_cli

from .conftest import (
    EngineFactory,
    process_gone,
    spans,
    stored_jobs,
    wait_for_status,
    wait_until_idle,
)


async def test_stop_mid_compile_then_restart_runs_the_chain_once(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path
) -> None:
    fake.add_config("a")
    fake.add_config("b")
    fake.behave("a.yaml", "compile", wait_for_file="compile-a")
    first = await make_engine()
    [chain_a, chain_b] = await first.install(["a.yaml", "b.yaml"], fingerprints={"a.yaml": "fp"})
    [start] = await fake.wait_for_call("start", "compile")
    assert (_running_record(store_path, chain_a.compile.job_id)) == start["sid"]
    await first.stop()
    await first.stop()  # idempotent
    assert chain_a.compile.status is JobStatus.QUEUED
    assert chain_a.compile.output.lines[-1] == RESTART_MARKER
    stored = stored_jobs(store_path)
    assert stored[chain_a.compile.job_id]["status"] == "queued"
    assert stored[chain_a.compile.job_id]["process"] is None
    assert stored[chain_a.upload.job_id]["held"] is True
    assert spans(fake)[0].exit_code == -15

    fake.release("compile-a")
    second = await make_engine()
    ids = [job.job_id for job in second.jobs()]
    assert ids == [
        chain_a.compile.job_id,
        chain_a.upload.job_id,
        chain_b.compile.job_id,
        chain_b.upload.job_id,
    ]
    await wait_until_idle(second)
    assert all(job.status is JobStatus.COMPLETED for job in second.jobs())
    restored_upload = second.get(chain_a.upload.job_id)
    assert restored_upload is not None
    assert restored_upload.fingerprint == "fp"
    assert sorted(record["configuration"] for record in fake.flashed()) == ["a.yaml", "b.yaml"]


def _running_record(store_path: Path, job_id: str) -> int:
    entry = stored_jobs(store_path)[job_id]
    process = entry["process"]
    assert isinstance(process, dict)
    return int(process["pid"])


async def test_stop_mid_upload_reflashes_once(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    fake.behave("a.yaml", "upload", wait_for_file="upload-a")
    first = await make_engine()
    [chain] = await first.install(["a.yaml"])
    await fake.wait_for_call("start", "upload")
    await first.stop()
    assert chain.upload.status is JobStatus.QUEUED
    assert not chain.upload.held
    fake.release("upload-a")
    second = await make_engine()
    upload = second.get(chain.upload.job_id)
    assert upload is not None
    assert not upload.held
    await wait_for_status(second, chain.upload.job_id, JobStatus.COMPLETED)
    assert len(fake.flashed()) == 1
    assert [span.subcommand for span in spans(fake)] == ["compile", "upload", "upload"]


async def test_cancelling_the_run_task_stops_like_stop(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    fake.behave("a.yaml", "compile", wait_for_file="never")
    engine = await make_engine(run=False)
    task = asyncio.get_running_loop().create_task(engine.run())
    [job] = await engine.compile(["a.yaml"])
    [start] = await fake.wait_for_call("start", "compile")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert job.status is JobStatus.QUEUED
    assert process_gone(start["pid"])


async def test_killed_run_leaves_processes_that_restart_reaps(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path
) -> None:
    """A killed Home Assistant leaves a running job and its live process session behind."""
    fake.add_config("a")
    fake.behave("a.yaml", "compile", wait_for_file="compile-a")
    job = Job(configuration="a.yaml", job_type=JobType.COMPILE, lane=Lane.COMPILE)
    leftover = await JobProcess.start(fake_cli().argv(job, fake.config_dir), cwd=fake.config_dir)
    [start] = await fake.wait_for_call("start", "compile")
    job.status = JobStatus.RUNNING
    job.process = leftover.record
    job.output.append("INFO Compiling...")
    store_path.parent.mkdir(parents=True)
    store_path.write_text(json.dumps({"version": 1, "jobs": [stored_form(job)]}), "utf-8")

    engine = await make_engine(run=False)
    # load() reaped the leftover before anything could run again.
    assert await leftover.stream(lambda line, replaces: None) == -15
    assert fake.calls("end")[0]["pid"] == start["pid"]
    restored = engine.get(job.job_id)
    assert restored is not None
    assert restored.status is JobStatus.QUEUED
    assert restored.process is None
    assert list(restored.output.lines) == ["INFO Compiling...", RESTART_MARKER]
    fake.release("compile-a")
    runner_task = asyncio.get_running_loop().create_task(engine.run())
    await wait_for_status(engine, job.job_id, JobStatus.COMPLETED)
    await engine.stop()
    await runner_task
    compiles = [span for span in spans(fake) if span.subcommand == "compile"]
    assert len(compiles) == 2
    assert compiles[0].end < compiles[1].start


async def test_restored_held_upload_follows_its_compile(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path
) -> None:
    fake.add_config("a")
    first = await make_engine(run=False)
    [chain] = await first.install(["a.yaml"])
    await first.stop()
    second = await make_engine()
    upload = second.get(chain.upload.job_id)
    assert upload is not None
    assert upload.held
    await wait_for_status(second, chain.upload.job_id, JobStatus.COMPLETED)
    assert len(fake.flashed()) == 1


async def test_restart_with_a_broken_store_starts_empty(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path
) -> None:
    store_path.parent.mkdir(parents=True)
    store_path.write_text("{broken", encoding="utf-8")
    engine = await make_engine()
    assert engine.jobs() == []


async def test_leftovers_that_survive_are_logged_and_never_doubled(
    fake: FakeEsphome,
    make_engine: EngineFactory,
    store_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    finished = Job(
        configuration="a.yaml",
        job_type=JobType.COMPILE,
        lane=Lane.COMPILE,
        status=JobStatus.CANCELLED,
        process=ProcessRecord(pid=999_999_998, start_time=1),
    )
    interrupted = Job(
        configuration="b.yaml",
        job_type=JobType.COMPILE,
        lane=Lane.COMPILE,
        status=JobStatus.RUNNING,
        process=ProcessRecord(pid=999_999_999, start_time=1),
    )
    dependent = Job(
        configuration="b.yaml",
        job_type=JobType.UPLOAD,
        lane=Lane.UPLOAD,
        held=True,
        depends_on=interrupted.job_id,
    )
    store_path.parent.mkdir(parents=True)
    entries = [stored_form(job) for job in (finished, interrupted, dependent)]
    store_path.write_text(json.dumps({"version": 1, "jobs": entries}), "utf-8")

    async def survives(record: ProcessRecord, grace: float = 0) -> bool:
        return False

    monkeypatch.setattr(recovery, "reap_leftovers", survives)
    with caplog.at_level(logging.WARNING):
        engine = await make_engine(run=False)
    assert caplog.text.count("could not be stopped") == 2
    jobs = {job.job_id: job for job in engine.jobs()}
    assert jobs[finished.job_id].status is JobStatus.CANCELLED
    assert jobs[finished.job_id].process is None
    # Running it again would put a second process on b.yaml: it fails instead, and its
    # upload is cancelled by the usual cascade.
    assert jobs[interrupted.job_id].status is JobStatus.FAILED
    assert jobs[interrupted.job_id].error == recovery.LEFTOVER_SURVIVED
    assert jobs[dependent.job_id].status is JobStatus.CANCELLED


async def test_requests_during_load_wait_for_the_restored_jobs(
    fake: FakeEsphome, store_path: Path
) -> None:
    restored = Job(configuration="a.yaml", job_type=JobType.COMPILE, lane=Lane.COMPILE)
    release = asyncio.Event()

    class SlowStore(FileJobStore):
        async def load(self) -> list[dict[str, Any]] | None:
            await release.wait()
            return [stored_form(restored)]

    engine = FirmwareEngine(config_dir=fake.config_dir, cli=fake_cli(), store=SlowStore(store_path))
    loading = asyncio.get_running_loop().create_task(engine.load())
    requesting = asyncio.get_running_loop().create_task(engine.compile(["a.yaml"]))
    cancelling = asyncio.get_running_loop().create_task(engine.cancel(restored.job_id))
    by_name = asyncio.get_running_loop().create_task(engine.cancel_configurations(["b.yaml"]))
    await asyncio.sleep(0)
    assert not requesting.done()
    release.set()
    await loading
    [new] = await requesting
    assert await cancelling == []
    assert await by_name == []
    # The restored job came first, and the new job superseded it as usual.
    assert [job.job_id for job in engine.jobs()] == [restored.job_id, new.job_id]
    assert engine.jobs()[0].status is JobStatus.CANCELLED
    await engine.stop()


async def _leave_finished_process(fake: FakeEsphome, job: Job, *, exit_code: int = 0) -> None:
    """Run `job`'s wrapped command to its end as a killed engine's orphan would have."""
    fake.behave(job.configuration, str(job.job_type), exit_code=exit_code)
    argv = with_exit_record(
        fake_cli().argv(job, fake.config_dir),
        exit_record_path(fake.config_dir / EXIT_RECORD_DIR, job.job_id),
    )
    orphan = await JobProcess.start(argv, cwd=fake.config_dir)
    job.status = JobStatus.RUNNING
    job.process = orphan.record
    assert await orphan.stream(lambda line, replaces: None) == exit_code


async def test_upload_finished_while_the_engine_was_dead_is_not_flashed_again(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path
) -> None:
    """Home Assistant was killed mid-upload; the upload completed on its own meanwhile."""
    fake.add_config("a")
    compile_job = Job(
        configuration="a.yaml", job_type=JobType.COMPILE, lane=Lane.COMPILE, fingerprint="fp"
    )
    await _leave_finished_process(fake, compile_job)
    _end_as_completed(compile_job)
    upload = Job(
        configuration="a.yaml",
        job_type=JobType.UPLOAD,
        lane=Lane.UPLOAD,
        port="OTA",
        depends_on=compile_job.job_id,
        fingerprint="fp",
    )
    await _leave_finished_process(fake, upload)
    _write_store(store_path, [compile_job, upload])

    engine = await make_engine()
    restored = engine.get(upload.job_id)
    assert restored is not None
    assert restored.status is JobStatus.COMPLETED
    assert restored.exit_code == 0
    assert restored.output.lines[-1] == COMPLETED_AWAY_MARKER
    await wait_until_idle(engine)
    assert len(fake.flashed()) == 1
    # The records are gone once the store holds the outcome.
    assert not list((fake.config_dir / EXIT_RECORD_DIR).glob("*.exit"))


async def test_compile_finished_while_the_engine_was_dead_releases_its_upload(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path
) -> None:
    fake.add_config("a")
    compile_job = Job(configuration="a.yaml", job_type=JobType.COMPILE, lane=Lane.COMPILE)
    await _leave_finished_process(fake, compile_job)
    upload = _held_upload(compile_job)
    _write_store(store_path, [compile_job, upload])

    engine = await make_engine()
    restored = engine.get(compile_job.job_id)
    assert restored is not None
    assert restored.status is JobStatus.COMPLETED
    await wait_for_status(engine, upload.job_id, JobStatus.COMPLETED)
    assert [span.subcommand for span in spans(fake)] == ["compile", "upload"]


async def test_compile_that_failed_while_the_engine_was_dead_runs_again(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path
) -> None:
    """A leftover often dies of the engine's death (its output pipe broke): run it again."""
    fake.add_config("a")
    compile_job = Job(configuration="a.yaml", job_type=JobType.COMPILE, lane=Lane.COMPILE)
    await _leave_finished_process(fake, compile_job, exit_code=1)
    upload = _held_upload(compile_job)
    _write_store(store_path, [compile_job, upload])
    fake.behave("a.yaml", "compile", exit_code=0)

    engine = await make_engine()
    await wait_for_status(engine, upload.job_id, JobStatus.COMPLETED)
    restored = engine.get(compile_job.job_id)
    assert restored is not None
    assert restored.status is JobStatus.COMPLETED
    assert RESTART_MARKER in restored.output.lines
    assert [span.subcommand for span in spans(fake)] == ["compile", "compile", "upload"]
    assert len(fake.flashed()) == 1


def _held_upload(compile_job: Job) -> Job:
    return Job(
        configuration=compile_job.configuration,
        job_type=JobType.UPLOAD,
        lane=Lane.UPLOAD,
        port="OTA",
        depends_on=compile_job.job_id,
        held=True,
    )


def _end_as_completed(job: Job) -> None:
    job.status = JobStatus.COMPLETED
    job.exit_code = 0
    job.process = None


def _write_store(store_path: Path, jobs: list[Job]) -> None:
    store_path.parent.mkdir(parents=True, exist_ok=True)
    store_path.write_text(
        json.dumps({"version": 1, "jobs": [stored_form(job) for job in jobs]}), "utf-8"
    )
