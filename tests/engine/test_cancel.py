"""Cancel, cascade, supersede, clean, reset and the build gate, with real processes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from custom_components.esphome_pipeline.engine import procfs, runner
from custom_components.esphome_pipeline.engine.errors import ResetFailedError, UnknownJobError
from custom_components.esphome_pipeline.engine.models import JobStatus, JobType
from custom_components.esphome_pipeline.engine.state import PREREQUISITE_INCOMPLETE
from tests.fakes import FakeEsphome

from .conftest import (
    EngineFactory,
    EventLog,
    process_gone,
    spans,
    stored_jobs,
    wait_for_status,
    wait_until_idle,
)


async def test_failed_compile_cancels_its_upload_and_persists_it(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path
) -> None:
    fake.add_config("a")
    fake.behave("a.yaml", "compile", exit_code=1, fail_message="boom")
    engine = await make_engine()
    log = EventLog(engine)
    [chain] = await engine.install(["a.yaml"])
    await wait_for_status(engine, chain.upload.job_id, JobStatus.CANCELLED)
    compile_job, upload = chain.compile, chain.upload
    assert compile_job.status is JobStatus.FAILED
    assert compile_job.exit_code == 1
    assert "exit code 1" in (compile_job.error or "")
    # ESPHome's own words are in the error, not only in the log.
    assert "boom" in (compile_job.error or "")
    assert any("boom" in line for line in compile_job.output.lines)
    assert PREREQUISITE_INCOMPLETE in (upload.error or "")
    assert compile_job.job_id in (upload.error or "")
    # The cascade is announced after the compile's own terminal event, and stored.
    assert log.index(compile_job.job_id, JobStatus.FAILED) < log.index(
        upload.job_id, JobStatus.CANCELLED
    )
    await engine.flush()
    stored = stored_jobs(store_path)
    assert stored[upload.job_id]["status"] == "cancelled"
    assert stored[compile_job.job_id]["status"] == "failed"
    assert [span.subcommand for span in spans(fake)] == ["compile"]
    assert fake.flashed() == []


async def test_cancel_running_compile_kills_tree_and_cascades(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    fake.behave("a.yaml", "compile", wait_for_file="never", grandchild_holds_pipe=True)
    engine = await make_engine()
    [chain] = await engine.install(["a.yaml"])
    [start] = await fake.wait_for_call("start", "compile")
    cancelled = await engine.cancel(chain.compile.job_id)
    assert cancelled == [chain.compile.job_id, chain.upload.job_id]
    # cancel() returned: the whole session is gone already (leader and grandchild).
    grandchildren = [call["pid"] for call in fake.calls("grandchild")]
    assert grandchildren
    assert all(process_gone(pid) for pid in [start["pid"], *grandchildren])
    assert chain.compile.status is JobStatus.CANCELLED
    assert chain.compile.error == "Cancelled on request"
    assert chain.upload.status is JobStatus.CANCELLED
    assert chain.compile.process is None
    assert await engine.cancel(chain.compile.job_id) == []
    assert await engine.cancel(chain.upload.job_id) == []


async def test_cancel_waits_for_sigkill_of_a_sigterm_proof_process(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    fake.behave("a.yaml", "compile", wait_for_file="never", ignore_sigterm=True)
    engine = await make_engine()
    [job] = await engine.compile(["a.yaml"])
    [start] = await fake.wait_for_call("start", "compile")
    assert await engine.cancel(job.job_id) == [job.job_id]
    assert process_gone(start["pid"])
    assert job.status is JobStatus.CANCELLED
    assert job.exit_code is not None
    assert job.exit_code < 0  # killed by a signal


@pytest.mark.parametrize("escape", ["grandchild_own_session", "grandchild_own_group"])
async def test_cancel_stops_grandchildren_that_left_the_job(
    fake: FakeEsphome, make_engine: EngineFactory, escape: str
) -> None:
    """A grandchild in a session (or process group) of its own that ignores SIGTERM and
    holds no pipe is stopped too: nothing of the job survives the cancel."""
    fake.add_config("a")
    fake.behave(
        "a.yaml",
        "compile",
        wait_for_file="never",
        grandchild_holds_pipe=True,
        grandchild_ignore_sigterm=True,
        grandchild_closes_output=True,
        **{escape: True},
    )
    engine = await make_engine()
    [job] = await engine.compile(["a.yaml"])
    [start] = await fake.wait_for_call("start", "compile")
    [ready] = await fake.wait_for_call("grandchild_ready", "compile")
    grandchild = ready["pid"]
    stat = procfs.read_stat(grandchild)
    assert stat is not None
    if escape == "grandchild_own_session":
        assert stat.session == grandchild != start["sid"]
    assert await engine.cancel(job.job_id) == [job.job_id]
    assert process_gone(grandchild)
    assert process_gone(start["pid"])
    assert job.status is JobStatus.CANCELLED


async def test_cancel_queued_job_is_immediate(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    engine = await make_engine(run=False)
    [chain] = await engine.install(["a.yaml"])
    assert await engine.cancel(chain.upload.job_id) == [chain.upload.job_id]
    assert chain.compile.status is JobStatus.QUEUED
    assert await engine.cancel(chain.compile.job_id) == [chain.compile.job_id]
    assert fake.calls() == []
    with pytest.raises(UnknownJobError) as caught:
        await engine.cancel("no-such-job")
    assert caught.value.placeholders == {"job_id": "no-such-job"}


async def test_double_cancel_inside_a_cascade_never_raises(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    fake.behave("a.yaml", "compile", wait_for_file="never")
    engine = await make_engine()
    [chain] = await engine.install(["a.yaml"])
    await fake.wait_for_call("start", "compile")
    first, second, third = await asyncio.gather(
        engine.cancel(chain.compile.job_id),
        engine.cancel(chain.upload.job_id),
        engine.cancel(chain.compile.job_id),
    )
    # The first cancel already ended the upload (cascade): the second finds it finished.
    assert chain.upload.job_id in first
    assert second == []
    assert chain.compile.job_id in third
    assert chain.compile.status is JobStatus.CANCELLED
    assert chain.upload.status is JobStatus.CANCELLED


async def test_cancel_configurations(fake: FakeEsphome, make_engine: EngineFactory) -> None:
    for name in ("a", "b"):
        fake.add_config(name)
    engine = await make_engine(run=False)
    [chain_a, chain_b] = await engine.install(["a.yaml", "b.yaml"])
    cancelled = await engine.cancel_configurations(["a.yaml"])
    assert sorted(cancelled) == sorted([chain_a.compile.job_id, chain_a.upload.job_id])
    assert chain_b.compile.status is JobStatus.QUEUED
    assert await engine.cancel_configurations(["a.yaml"]) == []


async def test_supersede_cancels_old_chain_and_flashes_once(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    fake.behave("a.yaml", "compile", wait_for_file="compile-1")
    engine = await make_engine()
    log = EventLog(engine)
    [old] = await engine.install(["a.yaml"])
    await fake.wait_for_call("start", "compile")
    fake.behave("a.yaml", "compile", wait_for_file=None)
    [new] = await engine.install(["a.yaml"])
    assert old.upload.status is JobStatus.CANCELLED
    assert "newer job" in (old.upload.error or "")
    await wait_for_status(engine, new.upload.job_id, JobStatus.COMPLETED)
    assert old.compile.status is JobStatus.CANCELLED
    assert "newer job" in (old.compile.error or "")
    first, second, upload = spans(fake)
    assert first.exit_code == -15
    assert first.end < second.start
    assert upload.subcommand == "upload"
    assert len(fake.flashed()) == 1
    # The new chain was never superseded by itself.
    assert log.statuses(new.compile.job_id) == [
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        JobStatus.COMPLETED,
    ]


async def test_clean_cancels_then_cleans(fake: FakeEsphome, make_engine: EngineFactory) -> None:
    fake.add_config("a")
    fake.behave("a.yaml", "compile", wait_for_file="never")
    engine = await make_engine()
    [chain] = await engine.install(["a.yaml"])
    await fake.wait_for_call("start", "compile")
    [clean] = await engine.clean(["a.yaml"])
    assert clean.job_type is JobType.CLEAN
    await wait_for_status(engine, clean.job_id, JobStatus.COMPLETED)
    assert chain.compile.status is JobStatus.CANCELLED
    assert chain.upload.status is JobStatus.CANCELLED
    compile_span, clean_span = spans(fake)
    assert compile_span.end < clean_span.start
    assert clean_span.argv == ("clean", str(fake.config_dir / "a.yaml"))


async def test_reset_cancels_every_lane_then_cleans_all(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    for name in ("a", "b", "c"):
        fake.add_config(name)
    engine = await make_engine()
    await engine.compile(["b.yaml"])
    await wait_until_idle(engine)
    fake.behave("a.yaml", "compile", wait_for_file="never")
    fake.behave("b.yaml", "upload", wait_for_file="never")
    [chain] = await engine.install(["a.yaml"])
    [upload] = await engine.upload(["b.yaml"])
    [queued] = await engine.compile(["c.yaml"])
    await fake.wait_for_call("start", "compile", "a.yaml")
    await fake.wait_for_call("start", "upload", "b.yaml")
    reset = await engine.reset_build_env()
    assert reset.job_type is JobType.RESET_BUILD_ENV
    assert reset.configuration == ""
    for job in (chain.compile, chain.upload, upload, queued):
        assert job.status is JobStatus.CANCELLED
        assert job.error == "Cancelled by a reset of the build environment"
    await wait_for_status(engine, reset.job_id, JobStatus.COMPLETED)
    reset_span = spans(fake)[-1]
    assert reset_span.argv == ("clean-all", str(fake.config_dir))
    assert all(span.end < reset_span.start for span in spans(fake)[:-1])


async def test_build_gate_holds_uploads_behind_a_reset(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    for name in ("a", "b"):
        fake.add_config(name)
    engine = await make_engine()
    await engine.compile(["a.yaml"])
    await wait_until_idle(engine)
    fake.behave("default", "clean-all", wait_for_file="reset-done")
    reset = await engine.reset_build_env()
    await fake.wait_for_call("start", "clean-all")
    [upload] = await engine.upload(["a.yaml"])
    [compile_b] = await engine.compile(["b.yaml"])
    assert upload.held
    assert upload.status is JobStatus.QUEUED
    assert compile_b.status is JobStatus.QUEUED
    fake.release("reset-done")
    await wait_for_status(engine, reset.job_id, JobStatus.COMPLETED)
    await wait_until_idle(engine)
    by_subcommand = {span.subcommand: span for span in spans(fake)}
    reset_span = by_subcommand["clean-all"]
    assert reset_span.end < by_subcommand["upload"].start
    assert reset_span.end < spans(fake)[-1].start
    assert engine.get(compile_b.job_id).status is JobStatus.COMPLETED  # type: ignore[union-attr]
    # The reset emptied the build: the upload ran after it and found no image.
    assert engine.get(upload.job_id).status is JobStatus.FAILED  # type: ignore[union-attr]


async def test_build_gate_holds_an_upload_behind_a_clean_of_its_configuration(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path
) -> None:
    """A queued clean and upload of one configuration can only meet after a restart."""
    fake.add_config("a")
    fake.add_config("b")
    first = await make_engine()
    await first.compile(["a.yaml", "b.yaml"])
    await wait_until_idle(first)
    [clean] = await first.clean(["a.yaml"])
    [upload] = await first.upload(["b.yaml"])
    await wait_until_idle(first)
    await first.stop()
    data = json.loads(store_path.read_text(encoding="utf-8"))
    by_id = {entry["job_id"]: entry for entry in data["jobs"]}
    clean_entry = by_id[clean.job_id] | {"status": "queued", "finished_at": None}
    upload_entry = by_id[upload.job_id] | {
        "status": "queued",
        "configuration": "a.yaml",
        "finished_at": None,
    }
    data["jobs"] = [clean_entry, upload_entry]
    store_path.write_text(json.dumps(data), encoding="utf-8")
    fake.behave("a.yaml", "clean", wait_for_file="clean-done")
    second = await make_engine()
    gated = second.get(upload.job_id)
    assert gated is not None
    assert gated.held
    await fake.wait_for_call("start", "clean", "a.yaml", count=2)
    assert gated.status is JobStatus.QUEUED
    fake.release("clean-done")
    await wait_until_idle(second)
    clean_span, upload_span = spans(fake)[-2:]
    assert clean_span.subcommand == "clean"
    assert upload_span.subcommand == "upload"
    assert clean_span.end < upload_span.start
    assert not gated.held


async def test_reset_fails_when_a_tree_survives(
    fake: FakeEsphome,
    make_engine: EngineFactory,
    store_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake.add_config("a")
    fake.behave("a.yaml", "compile", wait_for_file="compile-a")
    engine = await make_engine()
    log = EventLog(engine)
    [job] = await engine.compile(["a.yaml"])
    await fake.wait_for_call("start", "compile")

    async def survives(self: runner.JobProcess, grace: float = 0) -> bool:
        return False

    monkeypatch.setattr(runner.JobProcess, "terminate", survives)
    with pytest.raises(ResetFailedError) as caught:
        await engine.reset_build_env()
    reset_id = caught.value.placeholders["job_id"]
    assert engine.get(reset_id) is None
    assert not engine.jobs(statuses=[JobStatus.QUEUED])
    assert reset_id not in stored_jobs(store_path)
    # Subscribers saw the withdrawn reset end.
    assert log.statuses(reset_id)[-1] is JobStatus.CANCELLED
    monkeypatch.undo()
    fake.release("compile-a")
    await wait_for_status(engine, job.job_id, JobStatus.CANCELLED)
    assert job.process is None
    assert all(span.subcommand == "compile" for span in spans(fake))


async def test_a_second_reset_ends_the_first(fake: FakeEsphome, make_engine: EngineFactory) -> None:
    fake.add_config("a")
    fake.behave("a.yaml", "compile", wait_for_file="never")
    engine = await make_engine()
    await engine.compile(["a.yaml"])
    await fake.wait_for_call("start", "compile")
    first, second = await asyncio.gather(engine.reset_build_env(), engine.reset_build_env())
    assert first.status is JobStatus.CANCELLED
    await wait_for_status(engine, second.job_id, JobStatus.COMPLETED)
    assert [span.subcommand for span in spans(fake)] == ["compile", "clean-all"]


async def test_a_tree_that_cannot_be_confirmed_dead_keeps_its_record(
    fake: FakeEsphome, make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add_config("a")
    fake.behave("a.yaml", "compile", wait_for_file="compile-a")
    engine = await make_engine()
    [job] = await engine.compile(["a.yaml"])
    [start] = await fake.wait_for_call("start", "compile")

    async def survives(self: runner.JobProcess, grace: float = 0) -> bool:
        return False

    monkeypatch.setattr(runner.JobProcess, "terminate", survives)
    # cancel() cannot wait for a tree it cannot stop: it returns, the job ends with its process.
    assert await engine.cancel(job.job_id) == [job.job_id]
    fake.release("compile-a")
    await wait_for_status(engine, job.job_id, JobStatus.CANCELLED)
    # The record stays, so the next start looks for leftovers of this session.
    assert job.process is not None
    assert job.process.pid == start["sid"]
