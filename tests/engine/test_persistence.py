"""Tests of the file store, the stored form, the restore rules and history pruning."""

from __future__ import annotations

from dataclasses import fields
from enum import StrEnum
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from custom_components.esphome_pipeline.engine.models import (
    OUTPUT_LINE_LIMIT,
    Job,
    JobStatus,
    JobType,
    Lane,
    ProcessRecord,
    SkipReason,
)
from custom_components.esphome_pipeline.engine.persistence import (
    RESTART_MARKER,
    STORED_TERMINAL_LINES,
    FileJobStore,
    StoredForms,
    prune,
    recorded_sessions,
    restore,
    stored_form,
    stored_state,
)
from custom_components.esphome_pipeline.engine.state import PREREQUISITE_INCOMPLETE

from .conftest import job

NOW = "2026-11-22T00:00:00+00:00"


async def test_file_store_round_trip(tmp_path: Path) -> None:
    store = FileJobStore(tmp_path / "nested" / "jobs.json")
    assert await store.load() is None
    jobs = [stored_form(job("a.yaml", JobType.COMPILE))]
    builds = {"a.yaml": {"fingerprint": "f"}}
    await store.save(stored_state(jobs, builds))
    assert await store.load() == stored_state(jobs, builds)
    await store.save(stored_state([], {}))
    assert await store.load() == stored_state([], {})
    # Only the file itself is left: the temporary file was renamed over it.
    assert [path.name for path in (tmp_path / "nested").iterdir()] == ["jobs.json"]


@pytest.mark.parametrize("content", ["{not json", '{"jobs": {}}', "[1, 2]"])
async def test_file_store_unreadable(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(content, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert await FileJobStore(path).load() is None
    assert "job file" in caplog.text


async def test_file_store_failed_write_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "jobs.json"
    store = FileJobStore(path)
    await store.save(stored_state([{"old": True}], {}))

    def refuse(self: Path, target: Path) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        await store.save(stored_state([{"new": True}], {}))
    monkeypatch.undo()
    assert await store.load() == stored_state([{"old": True}], {})
    assert [entry.name for entry in tmp_path.iterdir()] == ["jobs.json"]


def test_stored_forms_encode_a_job_again_only_when_it_changed() -> None:
    """A save reuses the form of every job that did not change since the last save."""
    finished = job("a.yaml", JobType.COMPILE, JobStatus.COMPLETED, finished_at=NOW)
    active = job("b.yaml", JobType.COMPILE, JobStatus.RUNNING)
    forms = StoredForms()
    first = forms.forms([finished, active])
    assert first == [stored_form(finished), stored_form(active)]
    second = forms.forms([finished, active])
    assert second[0] is first[0]
    assert second[1] is first[1]
    # Touched again after all (never in the engine): encoded anew, not served stale.
    finished.output.append("late line")
    third = forms.forms([finished])
    assert third[0] is not first[0]
    assert third == [stored_form(finished)]
    # A job that left the table is forgotten; a new object under the same id is encoded.
    assert forms.forms([]) == []
    again = Job.from_dict(finished.to_dict())
    assert forms.forms([again])[0] is not third[0]


def _changed(value: object) -> object:
    """Return a different value of the same kind (for every field a job has)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, StrEnum):
        return next(member for member in type(value) if member is not value)
    if isinstance(value, ProcessRecord):
        return ProcessRecord(pid=value.pid + 1, start_time=value.start_time)
    return f"{value}-changed"


def test_stored_forms_see_every_change_of_a_job() -> None:
    """Every field, a new line, a redrawn last line and dropped lines each make a new form."""
    record = ProcessRecord(pid=7, start_time=8)
    running = job(
        "a.yaml", JobType.UPLOAD, JobStatus.RUNNING, progress=5, process=record, port="OTA"
    )
    running.skipped = SkipReason.UNCHANGED
    running.exit_code = 0
    forms = StoredForms()
    for item in fields(Job):
        if item.name == "output":
            continue
        before = forms.forms([running])[0]
        setattr(running, item.name, _changed(getattr(running, item.name)))
        after = forms.forms([running])[0]
        assert after is not before, item.name
        assert after == stored_form(running), item.name
    changes = [
        lambda: running.output.append("a line"),
        lambda: running.output.append("a redraw", replace_last=True),
        lambda: running.output.append("another line"),
    ]
    for change in changes:
        before = forms.forms([running])[0]
        change()
        assert forms.forms([running])[0] == stored_form(running) != before
    # The log is full: a new line drops the oldest, the length stays the same.
    full = job("b.yaml", JobType.COMPILE, JobStatus.RUNNING)
    for number in range(OUTPUT_LINE_LIMIT):
        full.output.append(f"line {number}")
    before = forms.forms([full])[0]
    full.output.append("one more")
    after = forms.forms([full])[0]
    assert after == stored_form(full) != before
    assert after["output"]["elided"] == 1


def test_stored_form_bounds_finished_output() -> None:
    active = job("a.yaml", JobType.COMPILE, JobStatus.RUNNING)
    finished = job("a.yaml", JobType.COMPILE, JobStatus.FAILED)
    for number in range(STORED_TERMINAL_LINES + 50):
        active.output.append(f"line {number}")
        finished.output.append(f"line {number}")
    assert len(stored_form(active)["output"]["lines"]) == STORED_TERMINAL_LINES + 50
    output = stored_form(finished)["output"]
    assert len(output["lines"]) == STORED_TERMINAL_LINES
    assert output["lines"][-1] == f"line {STORED_TERMINAL_LINES + 49}"
    assert output["elided"] == 50
    short = job("a.yaml", JobType.COMPILE, JobStatus.COMPLETED)
    short.output.append("only")
    assert stored_form(short) == short.to_dict()


def test_restore_two_passes(caplog: pytest.LogCaptureFixture) -> None:
    record = ProcessRecord(pid=123, start_time=456)
    running_compile = job(
        "a.yaml", JobType.COMPILE, JobStatus.RUNNING, started_at=NOW, progress=40, process=record
    )
    running_compile.output.append("half way")
    held_upload = job("a.yaml", JobType.UPLOAD, held=True, depends_on=running_compile.job_id)
    done_compile = job("b.yaml", JobType.COMPILE, JobStatus.COMPLETED)
    ready_upload = job("b.yaml", JobType.UPLOAD, held=True, depends_on=done_compile.job_id)
    failed_compile = job("c.yaml", JobType.COMPILE, JobStatus.FAILED)
    doomed_upload = job("c.yaml", JobType.UPLOAD, held=True, depends_on=failed_compile.job_id)
    orphan_upload = job("d.yaml", JobType.UPLOAD, held=True, depends_on="gone")
    stray_held_clean = job("e.yaml", JobType.CLEAN, held=True)
    entries: list[Any] = [
        stored_form(item)
        for item in (
            running_compile,
            held_upload,
            done_compile,
            ready_upload,
            failed_compile,
            doomed_upload,
            orphan_upload,
            stray_held_clean,
        )
    ]
    entries += ["not a job", {"job_id": "x"}, stored_form(done_compile)]
    with caplog.at_level(logging.WARNING):
        restored = restore(entries, finished_at=NOW)
    # One warning for all three, grouped by reason.
    assert [record.getMessage() for record in caplog.records] == [
        "Dropped 3 stored job entries that are not usable jobs: 'configuration' is missing (1); "
        "duplicate job id (1); not an object (1)"
    ]
    assert restored.dropped.count == 3
    assert restored.dropped.reasons == {
        "not an object": 1,
        "'configuration' is missing": 1,
        "duplicate job id": 1,
    }
    assert restored.leftovers == {running_compile.job_id: record}
    jobs = {item.job_id: item for item in restored.jobs}
    assert len(jobs) == 8
    again = jobs[running_compile.job_id]
    assert again.status is JobStatus.QUEUED
    assert again.started_at is None
    assert again.progress is None
    assert again.process is None
    assert list(again.output.lines) == ["half way", RESTART_MARKER]
    assert jobs[held_upload.job_id].status is JobStatus.QUEUED
    assert jobs[held_upload.job_id].held
    assert jobs[ready_upload.job_id].status is JobStatus.QUEUED
    assert not jobs[ready_upload.job_id].held
    for cancelled in (doomed_upload, orphan_upload):
        restored_job = jobs[cancelled.job_id]
        assert restored_job.status is JobStatus.CANCELLED
        assert PREREQUISITE_INCOMPLETE in (restored_job.error or "")
        assert restored_job.finished_at == NOW
        assert not restored_job.held
    assert not jobs[stray_held_clean.job_id].held
    # Creation order is kept.
    assert [item.job_id for item in restored.jobs][:2] == [
        running_compile.job_id,
        held_upload.job_id,
    ]


def test_prune_keeps_active_newest_per_kind_and_prerequisites() -> None:
    old_a = job("a.yaml", JobType.COMPILE, JobStatus.COMPLETED)
    needed = job("b.yaml", JobType.COMPILE, JobStatus.COMPLETED)
    waiting = job("b.yaml", JobType.UPLOAD, depends_on=needed.job_id)
    new_a = job("a.yaml", JobType.COMPILE, JobStatus.FAILED)
    newer_b = job("b.yaml", JobType.COMPILE, JobStatus.COMPLETED)
    active = job("c.yaml", JobType.CLEAN, JobStatus.RUNNING)
    upload_a = job("a.yaml", JobType.UPLOAD, JobStatus.CANCELLED)
    jobs = [old_a, needed, waiting, new_a, newer_b, active, upload_a]
    # Cap 0: only what the rules protect survives.
    assert prune(jobs, 0) == [old_a]
    # Four finished jobs are protected; a cap of five leaves room for the older one.
    assert prune(jobs, 4) == [old_a]
    assert prune(jobs, 5) == []


def test_prune_cap_drops_oldest_unprotected() -> None:
    history = [job("a.yaml", JobType.COMPILE, JobStatus.COMPLETED) for _ in range(5)]
    dropped = prune(history, 3)
    assert dropped == history[:2]
    assert prune(history, 1) == history[:4]


def test_stored_json_is_plain(tmp_path: Path) -> None:
    item = job("a.yaml", JobType.UPLOAD, port="/dev/ttyUSB0", fingerprint="abc")
    text = json.dumps(stored_form(item))
    assert Job.from_dict(json.loads(text)).to_dict() == item.to_dict()


def test_recorded_sessions_skips_what_is_not_a_job() -> None:
    job = Job(configuration="a.yaml", job_type=JobType.COMPILE, lane=Lane.COMPILE)
    job.process = ProcessRecord(pid=4242, start_time=7)
    entries = [{"job_id": "broken"}, "not even a dict", stored_form(job)]
    assert recorded_sessions(entries) == {job.job_id: job.process}
