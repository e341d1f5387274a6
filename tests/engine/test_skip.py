"""Skip decisions and build records: a job whose work is done completes with no process."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from custom_components.esphome_pipeline.engine.firmware import FirmwareEngine
from custom_components.esphome_pipeline.engine.models import (
    Job,
    JobStatus,
    JobType,
    SkipReason,
)
from custom_components.esphome_pipeline.engine.persistence import (
    FileJobStore,
    split_stored,
    stored_state,
)
from custom_components.esphome_pipeline.engine.skip import BuildLedger, BuildRecord
from tests.fakes import FakeEsphome, fake_cli

from .conftest import EngineFactory, job, stored_jobs, wait_for_status, wait_until_idle


class BuildIsCurrent:
    """A stand-in for the warm path's check: the build is current when the labels match."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, BuildRecord | None]] = []

    async def __call__(self, job: Job, build: BuildRecord | None) -> SkipReason | None:
        self.asked.append((job.job_id, build))
        if job.job_type is not JobType.COMPILE or build is None:
            return None
        return SkipReason.UNCHANGED if build.fingerprint == job.fingerprint else None


async def test_compile_of_an_unchanged_configuration_starts_no_process(
    fake: FakeEsphome, make_engine: EngineFactory, store_path: Path
) -> None:
    fake.add_config("a")
    check = BuildIsCurrent()
    engine = await make_engine(skip_checks=[check])
    [first] = await engine.install(["a.yaml"], fingerprints={"a.yaml": "v1"})
    await wait_for_status(engine, first.upload.job_id, JobStatus.COMPLETED)
    record = engine.last_build("a.yaml")
    assert record is not None
    assert (record.fingerprint, record.job_id) == ("v1", first.compile.job_id)
    compiles = len(fake.calls("start", subcommand="compile"))

    [second] = await engine.install(["a.yaml"], fingerprints={"a.yaml": "v1"})
    await wait_for_status(engine, second.upload.job_id, JobStatus.COMPLETED)
    assert second.compile.status is JobStatus.COMPLETED
    assert second.compile.skipped is SkipReason.UNCHANGED
    assert second.compile.exit_code is None
    assert "the build is current" in second.compile.output.lines[-1]
    assert len(fake.calls("start", subcommand="compile")) == compiles
    # The record still points at the build in place, and the store says so.
    assert engine.last_build("a.yaml") == record
    await engine.flush()
    assert stored_jobs(store_path)[second.compile.job_id]["skipped"] == "unchanged"


async def test_force_never_skips(fake: FakeEsphome, make_engine: EngineFactory) -> None:
    fake.add_config("a")
    check = BuildIsCurrent()
    engine = await make_engine(skip_checks=[check])
    [first] = await engine.compile(["a.yaml"], fingerprints={"a.yaml": "v1"})
    await wait_for_status(engine, first.job_id, JobStatus.COMPLETED)
    [forced] = await engine.install(["a.yaml"], force=True, fingerprints={"a.yaml": "v1"})
    await wait_for_status(engine, forced.upload.job_id, JobStatus.COMPLETED)
    assert forced.compile.skipped is None
    assert forced.upload.force
    assert len(fake.calls("start", subcommand="compile")) == 2
    assert all(job_id != forced.compile.job_id for job_id, _ in check.asked)


async def test_a_failing_check_lets_the_job_run(
    fake: FakeEsphome, make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_config("a")

    async def broken(job: Job, build: BuildRecord | None) -> SkipReason | None:
        raise RuntimeError("device lookup exploded")

    engine = await make_engine(skip_checks=[broken])
    with caplog.at_level(logging.ERROR):
        [compile_job] = await engine.compile(["a.yaml"])
        await wait_for_status(engine, compile_job.job_id, JobStatus.COMPLETED)
    assert compile_job.skipped is None
    assert "skip check failed" in caplog.text
    assert len(fake.calls("start", subcommand="compile")) == 1


async def test_cancel_while_a_check_runs_starts_nothing(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    asked = asyncio.Event()
    release = asyncio.Event()

    async def slow(job: Job, build: BuildRecord | None) -> SkipReason | None:
        asked.set()
        await release.wait()
        return SkipReason.DEVICE_CURRENT

    engine = await make_engine(skip_checks=[slow])
    [compile_job] = await engine.compile(["a.yaml"])
    await asked.wait()
    cancelling = asyncio.get_running_loop().create_task(engine.cancel(compile_job.job_id))
    await wait_for_status(engine, compile_job.job_id, JobStatus.RUNNING)
    release.set()
    assert await cancelling == [compile_job.job_id]
    assert compile_job.status is JobStatus.CANCELLED
    assert compile_job.skipped is None
    assert fake.calls("start") == []


async def test_clean_and_reset_forget_build_records(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    fake.add_config("b")
    engine = await make_engine()
    await engine.compile(["a.yaml", "b.yaml"], fingerprints={"a.yaml": "1", "b.yaml": "2"})
    await wait_until_idle(engine)
    assert engine.last_build("a.yaml") is not None
    await engine.clean(["a.yaml"])
    await wait_until_idle(engine)
    assert engine.last_build("a.yaml") is None
    assert engine.last_build("b.yaml") is not None
    await engine.reset_build_env()
    await wait_until_idle(engine)
    assert engine.last_build("b.yaml") is None


async def test_build_records_survive_a_restart(
    fake: FakeEsphome, make_engine: EngineFactory
) -> None:
    fake.add_config("a")
    engine = await make_engine()
    [compile_job] = await engine.compile(["a.yaml"], fingerprints={"a.yaml": "v7"})
    await wait_for_status(engine, compile_job.job_id, JobStatus.COMPLETED)
    await engine.stop()
    again = await make_engine(run=False)
    record = again.last_build("a.yaml")
    assert record is not None
    assert record.fingerprint == "v7"


async def test_a_store_of_the_first_layout_rebuilds_build_records(
    fake: FakeEsphome, store_path: Path
) -> None:
    built = job("a.yaml", JobType.COMPILE, JobStatus.COMPLETED, fingerprint="old")
    failed = job("b.yaml", JobType.COMPILE, JobStatus.FAILED, fingerprint="bad")
    await FileJobStore(store_path).save(
        {"jobs": [built.to_dict(), failed.to_dict()]}  # no "builds": the first layout
    )
    engine = FirmwareEngine(
        config_dir=fake.config_dir, cli=fake_cli(), store=FileJobStore(store_path)
    )
    await engine.load()
    record = engine.last_build("a.yaml")
    assert record is not None
    assert record.fingerprint == "old"
    assert engine.last_build("b.yaml") is None


def test_ledger_rules_and_json_form() -> None:
    ledger = BuildLedger()
    queued_clean = job("a.yaml", JobType.CLEAN, JobStatus.CANCELLED)
    assert not ledger.observe(queued_clean)  # never ran: the files are still there
    done = job("a.yaml", JobType.COMPILE, JobStatus.COMPLETED, fingerprint="f", finished_at="t")
    assert ledger.observe(done)
    skipped = job("a.yaml", JobType.COMPILE, JobStatus.COMPLETED, skipped=SkipReason.UNCHANGED)
    assert not ledger.observe(skipped)
    assert not ledger.observe(job("a.yaml", JobType.COMPILE, JobStatus.FAILED))
    assert not ledger.observe(job("a.yaml", JobType.UPLOAD, JobStatus.COMPLETED))
    again = BuildLedger.from_dict(ledger.to_dict())
    assert again.get("a.yaml") == ledger.get("a.yaml")
    ran_reset = job("", JobType.RESET_BUILD_ENV, JobStatus.FAILED, started_at="t")
    assert ledger.observe(ran_reset)
    assert not ledger.observe(ran_reset)  # nothing left to forget
    ran_clean = job("a.yaml", JobType.CLEAN, JobStatus.COMPLETED, started_at="t")
    assert not ledger.observe(ran_clean)


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "x",
        {"a.yaml": "not a record"},
        {"a.yaml": {"configuration": 1, "job_id": "j", "finished_at": "t"}},
        {
            "a.yaml": {
                "configuration": "a.yaml",
                "job_id": "j",
                "finished_at": "t",
                "fingerprint": 3,
            }
        },
    ],
)
def test_ledger_ignores_unusable_records(data: object) -> None:
    assert BuildLedger.from_dict(data).to_dict() == {}


def test_the_store_layout_passes_jobs_on_as_stored() -> None:
    # Restore judges the job entries and reports what it cannot use (test_restore_shapes).
    assert split_stored(None) == (None, None)
    assert split_stored("garbage") == ("garbage", None)
    assert split_stored([{"job_id": "1"}]) == ([{"job_id": "1"}], None)
    assert split_stored({"jobs": "no", "builds": {}}) == ("no", {})
    assert split_stored(stored_state([], {})) == ([], {})
