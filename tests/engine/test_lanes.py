"""Lane concurrency with real processes: the fake CLI's call log proves who ran when."""

from __future__ import annotations

from custom_components.esphome_pipeline.engine.models import JobStatus
from tests.fakes import FakeEsphome

from .conftest import (
    COMPILE_LANE_SUBCOMMANDS,
    EngineFactory,
    EventLog,
    max_concurrency,
    spans,
    wait_for_status,
    wait_until_idle,
)


async def test_one_compile_worker_runs_one_job_at_a_time(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    names = [fake.add_config(name) for name in ("a", "b", "c", "d")]
    fake.behave("default", "compile", duration=0.05)
    engine = await make_engine()
    await engine.compile(names[:3])
    await engine.clean(names[3:])
    await wait_until_idle(engine)
    compile_lane = [span for span in spans(fake) if span.subcommand in COMPILE_LANE_SUBCOMMANDS]
    assert len(compile_lane) == 4
    assert max_concurrency(compile_lane) == 1


async def test_two_compile_workers_run_two_jobs_at_once(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    names = [fake.add_config(name) for name in ("a", "b", "c")]
    fake.behave("default", "compile", wait_for_file="go")
    engine = await make_engine(compile_workers=2)
    assert engine.compile_workers == 2
    jobs = await engine.compile(names)
    # Both block until released, so seeing two starts proves two ran at once.
    await fake.wait_for_call("start", "compile", count=2)
    assert engine.get(jobs[2].job_id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    assert len(engine.queue_status().compile_running) == 2
    fake.release("go")
    await wait_until_idle(engine)
    found = spans(fake)
    assert max_concurrency(found) == 2
    assert all(job.status is JobStatus.COMPLETED for job in engine.jobs())


async def test_bulk_install_overlaps_next_compile_with_upload(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    fake.add_config("b")
    fake.behave("a.yaml", "upload", wait_for_file="upload-a")
    fake.behave("b.yaml", "compile", wait_for_file="compile-b")
    engine = await make_engine()
    log = EventLog(engine)
    chain_a, chain_b = await engine.install(["a.yaml", "b.yaml"])
    # b's compile finishes only after a's upload started, a's upload only after b's compile
    # ended: the two processes provably ran at the same time.
    await fake.wait_for_call("start", "upload", "a.yaml")
    fake.release("compile-b")
    await wait_for_status(engine, chain_b.compile.job_id, JobStatus.COMPLETED)
    assert engine.get(chain_a.upload.job_id).status is JobStatus.RUNNING  # type: ignore[union-attr]
    fake.release("upload-a")
    await wait_until_idle(engine)
    by_key = {(span.subcommand, span.configuration): span for span in spans(fake)}
    upload_a = by_key["upload", "a.yaml"]
    compile_b = by_key["compile", "b.yaml"]
    assert by_key["compile", "a.yaml"].end < compile_b.start
    assert by_key["compile", "a.yaml"].end < upload_a.start
    assert upload_a.overlaps(compile_b)
    assert compile_b.end < upload_a.end
    assert sorted(record["configuration"] for record in fake.flashed()) == ["a.yaml", "b.yaml"]
    # Events: each upload runs only after its own compile completed.
    for chain in (chain_a, chain_b):
        assert log.index(chain.compile.job_id, JobStatus.COMPLETED) < log.index(
            chain.upload.job_id, JobStatus.RUNNING
        )


async def test_uploads_to_one_port_never_overlap(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    names = [fake.add_config(name) for name in ("a", "b", "c")]
    engine = await make_engine(upload_slots=4)
    await engine.compile(names)
    await wait_until_idle(engine)
    fake.behave("a.yaml", "upload", wait_for_file="upload-a")
    fake.behave("c.yaml", "upload", wait_for_file="upload-c")
    first, second = await engine.upload(["a.yaml", "b.yaml"], port="192.168.1.50")
    [other] = await engine.upload(["c.yaml"], port="OTA")
    await fake.wait_for_call("start", "upload", "a.yaml")
    await fake.wait_for_call("start", "upload", "c.yaml")
    # b targets the device a is flashing: it waits, not held (no prerequisite, no gate).
    assert engine.get(second.job_id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    assert not engine.get(second.job_id).held  # type: ignore[union-attr]
    fake.release("upload-a")
    fake.release("upload-c")
    await wait_until_idle(engine)
    by_configuration = {
        span.configuration: span for span in spans(fake) if span.subcommand == "upload"
    }
    assert by_configuration["a.yaml"].end < by_configuration["b.yaml"].start
    assert by_configuration["a.yaml"].overlaps(by_configuration["c.yaml"])
    assert engine.get(other.job_id).status is JobStatus.COMPLETED  # type: ignore[union-attr]
    assert engine.get(first.job_id).port == "192.168.1.50"  # type: ignore[union-attr]


async def test_upload_slots_bound_concurrent_uploads(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    names = [fake.add_config(name) for name in ("a", "b", "c")]
    engine = await make_engine(upload_slots=2)
    assert engine.upload_slots == 2
    await engine.compile(names)
    await wait_until_idle(engine)
    fake.behave("default", "upload", wait_for_file="go")
    jobs = await engine.upload(names)
    await fake.wait_for_call("start", "upload", count=2)
    assert engine.get(jobs[2].job_id).status is JobStatus.QUEUED  # type: ignore[union-attr]
    fake.release("go")
    await wait_until_idle(engine)
    uploads = [span for span in spans(fake) if span.subcommand == "upload"]
    assert len(uploads) == 3
    assert max_concurrency(uploads) == 2


async def test_jobs_wait_for_their_configuration_across_lanes(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    engine = await make_engine()
    await engine.compile(["a.yaml"])
    await wait_until_idle(engine)
    fake.behave("a.yaml", "upload", wait_for_file="upload-a")
    [upload] = await engine.upload(["a.yaml"])
    await fake.wait_for_call("start", "upload", "a.yaml")
    # A compile of the same configuration supersedes the upload, and starts only once the
    # upload's process is gone: two processes never work on one configuration.
    [compile_job] = await engine.compile(["a.yaml"])
    await wait_until_idle(engine)
    upload_span, compile_span = spans(fake)[-2:]
    assert upload_span.subcommand == "upload"
    assert upload_span.end < compile_span.start
    assert engine.get(upload.job_id).status is JobStatus.CANCELLED  # type: ignore[union-attr]
    assert engine.get(compile_job.job_id).status is JobStatus.COMPLETED  # type: ignore[union-attr]
