"""Unit tests of the scheduling rules in state.py (no processes)."""

from __future__ import annotations

import pytest

from custom_components.esphome_pipeline.engine.models import Job, JobStatus, JobType, Lane
from custom_components.esphome_pipeline.engine.state import (
    HELD_BY_BUILD_GATE,
    HELD_DEVICE_OFFLINE,
    HELD_FOR_PREREQUISITE,
    PREREQUISITE_INCOMPLETE,
    JobTable,
    Prerequisite,
    broken_dependents,
    build_gate_closed,
    hold_reason,
    lane_for,
    next_compile_lane_job,
    next_upload_job,
    prerequisite_error,
    prerequisite_state,
    refresh_held,
    should_hold,
    superseded_by,
    upload_device,
    waiting_for_device,
)

from .conftest import job


def _finish(item: Job) -> None:
    """End a job (a function, so type checkers do not narrow the status it had before)."""
    item.status = JobStatus.COMPLETED


def _held(item: Job) -> bool:
    return item.held


def test_routing() -> None:
    assert lane_for(JobType.COMPILE) is Lane.COMPILE
    assert lane_for(JobType.CLEAN) is Lane.COMPILE
    assert lane_for(JobType.RESET_BUILD_ENV) is Lane.COMPILE
    assert lane_for(JobType.UPLOAD) is Lane.UPLOAD


def test_table_basics() -> None:
    first = job("a.yaml", JobType.COMPILE)
    second = job("b.yaml", JobType.COMPILE, JobStatus.RUNNING)
    table = JobTable([first])
    table.add(second)
    assert list(table) == [first, second]
    assert len(table) == 2
    assert first.job_id in table
    assert table.get("nope") is None
    with pytest.raises(ValueError, match="duplicate"):
        table.add(first)
    assert table.running() == [second]
    assert table.queued(Lane.COMPILE) == [first]
    table.remove(first.job_id)
    table.remove(first.job_id)  # removing twice is harmless
    assert list(table) == [second]


def test_prerequisite_states() -> None:
    compile_job = job("a.yaml", JobType.COMPILE)
    upload = job("a.yaml", JobType.UPLOAD, depends_on=compile_job.job_id)
    lone = job("a.yaml", JobType.UPLOAD)
    table = JobTable([compile_job, upload, lone])
    assert prerequisite_state(lone, table) is Prerequisite.SATISFIED
    assert prerequisite_state(upload, table) is Prerequisite.PENDING
    compile_job.status = JobStatus.RUNNING
    assert prerequisite_state(upload, table) is Prerequisite.PENDING
    compile_job.status = JobStatus.COMPLETED
    assert prerequisite_state(upload, table) is Prerequisite.SATISFIED
    for status in (JobStatus.FAILED, JobStatus.CANCELLED):
        compile_job.status = status
        assert prerequisite_state(upload, table) is Prerequisite.BROKEN
        assert broken_dependents(table) == [upload]
        error = prerequisite_error(upload, table)
        assert PREREQUISITE_INCOMPLETE in error
        assert compile_job.job_id in error
    table.remove(compile_job.job_id)
    assert prerequisite_state(upload, table) is Prerequisite.BROKEN
    assert PREREQUISITE_INCOMPLETE in prerequisite_error(upload, table)


def test_build_gate_and_held() -> None:
    upload = job("a.yaml", JobType.UPLOAD)
    other_clean = job("b.yaml", JobType.CLEAN)
    table = JobTable([upload, other_clean])
    assert not build_gate_closed(upload, table)
    assert not should_hold(upload, table)
    own_clean = job("a.yaml", JobType.CLEAN, JobStatus.RUNNING)
    table.add(own_clean)
    assert build_gate_closed(upload, table)
    assert refresh_held(table) == [upload]
    assert _held(upload)
    assert refresh_held(table) == []
    _finish(own_clean)
    assert refresh_held(table) == [upload]
    assert not _held(upload)
    reset = job("", JobType.RESET_BUILD_ENV)
    table.add(reset)
    assert should_hold(upload, table)
    # Only queued uploads are ever held.
    assert not should_hold(other_clean, table)


def test_hold_reasons_in_order() -> None:
    """Prerequisite first, then the build gate, then the offline device; none: it may run."""
    compile_job = job("a.yaml", JobType.COMPILE, JobStatus.RUNNING)
    upload = job("a.yaml", JobType.UPLOAD, depends_on=compile_job.job_id)
    upload.waiting_for_device = True
    clean = job("a.yaml", JobType.CLEAN)
    table = JobTable([compile_job, upload, clean])
    assert hold_reason(upload, table) == HELD_FOR_PREREQUISITE
    _finish(compile_job)
    assert hold_reason(upload, table) == HELD_BY_BUILD_GATE
    _finish(clean)
    assert refresh_held(table) == [upload]
    assert (upload.held, upload.held_reason) == (True, HELD_DEVICE_OFFLINE)
    assert waiting_for_device(table) == [upload]
    assert next_upload_job(table, 4) is None
    upload.waiting_for_device = False
    assert refresh_held(table) == [upload]
    assert (upload.held, upload.held_reason) == (False, None)
    assert next_upload_job(table, 4) is upload
    assert hold_reason(compile_job, table) is None


def test_supersede_keeps_own_chain_and_history() -> None:
    old = job("a.yaml", JobType.COMPILE, JobStatus.RUNNING)
    done = job("a.yaml", JobType.COMPILE, JobStatus.COMPLETED)
    other = job("b.yaml", JobType.COMPILE)
    new = job("a.yaml", JobType.COMPILE)
    table = JobTable([old, done, other, new])
    assert superseded_by(table, "a.yaml", {new.job_id}) == [old]


def test_upload_device() -> None:
    assert upload_device(job("a.yaml", JobType.UPLOAD, port="OTA")) == "configuration:a.yaml"
    assert upload_device(job("a.yaml", JobType.UPLOAD)) == "configuration:a.yaml"
    assert upload_device(job("a.yaml", JobType.UPLOAD, port="10.0.0.2")) == "port:10.0.0.2"
    assert upload_device(job("b.yaml", JobType.UPLOAD, port="10.0.0.2")) == "port:10.0.0.2"


def test_compile_lane_order_capacity_and_busy_configuration() -> None:
    first = job("a.yaml", JobType.COMPILE)
    second = job("b.yaml", JobType.CLEAN)
    table = JobTable([first, second])
    assert next_compile_lane_job(table, 1) is first
    first.status = JobStatus.RUNNING
    assert next_compile_lane_job(table, 1) is None
    assert next_compile_lane_job(table, 2) is second
    # A job waits while another job of its configuration runs, on any lane.
    busy = job("b.yaml", JobType.UPLOAD, JobStatus.RUNNING)
    table.add(busy)
    assert next_compile_lane_job(table, 2) is None


def test_reset_is_a_barrier() -> None:
    running = job("a.yaml", JobType.UPLOAD, JobStatus.RUNNING)
    reset = job("", JobType.RESET_BUILD_ENV)
    after = job("b.yaml", JobType.COMPILE)
    table = JobTable([running, reset, after])
    # Something runs: the reset waits, and nothing behind it overtakes it.
    assert next_compile_lane_job(table, 4) is None
    running.status = JobStatus.COMPLETED
    reset.held = True
    assert next_compile_lane_job(table, 4) is None
    reset.held = False
    assert next_compile_lane_job(table, 4) is reset
    reset.status = JobStatus.RUNNING
    assert next_compile_lane_job(table, 4) is None
    assert next_upload_job(JobTable([reset, job("c.yaml", JobType.UPLOAD)]), 4) is None


def test_held_compile_lane_job_is_skipped() -> None:
    held = job("a.yaml", JobType.COMPILE, held=True)
    free = job("b.yaml", JobType.COMPILE)
    assert next_compile_lane_job(JobTable([held, free]), 1) is free


def test_upload_lane_rules() -> None:
    compile_job = job("a.yaml", JobType.COMPILE)
    chained = job("a.yaml", JobType.UPLOAD, depends_on=compile_job.job_id, held=True)
    serial_b = job("b.yaml", JobType.UPLOAD, port="/dev/ttyUSB0")
    serial_c = job("c.yaml", JobType.UPLOAD, port="/dev/ttyUSB0")
    ota_d = job("d.yaml", JobType.UPLOAD)
    table = JobTable([compile_job, chained, serial_b, serial_c, ota_d])
    assert next_upload_job(table, 4) is serial_b
    serial_b.status = JobStatus.RUNNING
    # Same serial device: c waits; d (OTA, other configuration) may go.
    assert next_upload_job(table, 4) is ota_d
    assert next_upload_job(table, 1) is None
    ota_d.status = JobStatus.RUNNING
    assert next_upload_job(table, 4) is None
    # The chained upload goes once its compile completed and its held flag was refreshed.
    compile_job.status = JobStatus.COMPLETED
    assert next_upload_job(table, 4) is None
    assert refresh_held(table) == [chained]
    assert next_upload_job(table, 4) is chained
    # An unheld upload whose gate closed meanwhile does not start either.
    table.add(job("a.yaml", JobType.CLEAN))
    assert next_upload_job(table, 4) is None
