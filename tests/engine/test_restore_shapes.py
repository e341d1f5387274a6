"""Restore against damaged stores: any JSON shape is handled, bad entries are dropped and counted.

The examples name the damage seen in the field (issue 8, defect 3); the Hypothesis tests feed
random JSON (and job-shaped objects with random values) and check that restore never raises,
every kept job is a valid job, and the table rules hold.
"""

from __future__ import annotations

from datetime import datetime
import logging
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from custom_components.esphome_pipeline.engine.input_rules import (
    is_configuration_file_name,
    validate_port,
)
from custom_components.esphome_pipeline.engine.models import (
    Job,
    JobOutput,
    JobSource,
    JobStatus,
    JobType,
    Lane,
    ProcessRecord,
    SkipReason,
    StoredJobError,
)
from custom_components.esphome_pipeline.engine.persistence import (
    NOT_A_LIST,
    Restored,
    recorded_sessions,
    restore,
    stored_form,
)
from custom_components.esphome_pipeline.engine.state import lane_for
from tests.json_shapes import any_json

from .conftest import job

NOW = "2026-11-22T00:00:00+00:00"


def _valid() -> dict[str, Any]:
    return stored_form(job("a.yaml", JobType.COMPILE))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"output": "a string"}, "'output' is not an object"),
        ({"output": ["a", "list"]}, "'output' is not an object"),
        ({"output": {"lines": "text"}}, "'output.lines' is not a list of text"),
        ({"output": {"lines": [1, None]}}, "'output.lines' is not a list of text"),
        ({"output": {"lines": [], "elided": "3"}}, "'output.elided' is not a whole number"),
        ({"output": {"lines": [], "elided": -1}}, "'output.elided' is out of range"),
        ({"job_id": None}, "'job_id' is missing"),
        ({"job_id": 17}, "'job_id' is not text"),
        ({"job_id": ""}, "'job_id' is not a job id"),
        ({"job_id": "x" * 65}, "'job_id' is not a job id"),
        ({"job_id": "a\nb"}, "'job_id' is not a job id"),
        ({"configuration": ["a.yaml"]}, "'configuration' is not text"),
        ({"configuration": "../etc/x.yaml"}, "'configuration' is not a configuration file name"),
        ({"configuration": "secrets.yaml"}, "'configuration' is not a configuration file name"),
        ({"job_type": "flash"}, "'job_type' is not a job type"),
        ({"job_type": 1}, "'job_type' is not a job type"),
        ({"status": {"queued": True}}, "'status' is not a job status"),
        ({"lane": None}, "'lane' is missing"),
        ({"lane": "upload"}, "'lane' does not fit the job type"),
        ({"source": "peer"}, "'source' is not a job source"),
        ({"skipped": "yes"}, "'skipped' is not a skip reason"),
        ({"held": "nope"}, "'held' is not true or false"),
        ({"force": 1}, "'force' is not true or false"),
        ({"progress": "50"}, "'progress' is not a whole number"),
        ({"progress": 101}, "'progress' is out of range"),
        ({"progress": 1.5}, "'progress' is not a whole number"),
        ({"exit_code": True}, "'exit_code' is not a whole number"),
        ({"error": ["boom"]}, "'error' is not text"),
        ({"created_at": None}, "'created_at' is missing"),
        ({"created_at": "yesterday"}, "'created_at' is not an ISO 8601 time"),
        ({"finished_at": 5}, "'finished_at' is not text"),
        ({"depends_on": {}}, "'depends_on' is not text"),
        ({"process": "pid 5"}, "'process' is not an object"),
        ({"process": {"pid": 5}}, "'process' lacks its pid or start time"),
        ({"process": {"pid": "5", "start_time": 1}}, "'process.pid' is not a whole number"),
        ({"process": {"pid": 5, "start_time": 1.0}}, "'process.start_time' is not a whole number"),
    ],
)
def test_entry_with_a_bad_field_is_dropped(
    change: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each field of the wrong type or value drops its entry with a reason naming the field."""
    bad = {**_valid(), **change}
    good = _valid()
    with caplog.at_level(logging.WARNING):
        restored = restore([bad, good], finished_at=NOW)
    assert [item.job_id for item in restored.jobs] == [good["job_id"]]
    assert restored.dropped.reasons == {reason: 1}
    assert len(caplog.records) == 1
    assert reason in caplog.records[0].getMessage()
    # The reason never echoes the stored value.
    for value in change.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in reason


def test_from_dict_raises_only_stored_job_error() -> None:
    """The from_dict family has one documented error, a ValueError with a reason."""
    shapes: list[object] = [None, [], "job", 5, {"output": 5}]
    for data in shapes:
        with pytest.raises(StoredJobError) as caught:
            Job.from_dict(data)
        assert isinstance(caught.value, ValueError)
        assert caught.value.reason
    with pytest.raises(StoredJobError):
        ProcessRecord.from_dict(None)
    with pytest.raises(StoredJobError):
        JobOutput.from_dict(7)


def test_missing_optional_fields_take_defaults() -> None:
    """Only the identity fields are required; unknown keys are ignored."""
    minimal = {
        "job_id": "j1",
        "configuration": "a.yaml",
        "job_type": "upload",
        "status": "completed",
        "lane": "upload",
        "created_at": NOW,
        "from_a_future_version": [1, 2],
    }
    restored = restore([minimal], finished_at=NOW)
    assert restored.dropped.count == 0
    kept = restored.jobs[0]
    assert (kept.held, kept.force, kept.port, kept.process) == (False, False, None, None)
    assert kept.source is JobSource.LOCAL
    assert list(kept.output.lines) == []
    # An output object without its lines is an empty log.
    partial = {**minimal, "output": {"elided": 3}}
    assert restore([partial], finished_at=NOW).jobs[0].output.elided == 3


def test_output_beyond_the_limit_is_counted_as_elided() -> None:
    """A log longer than any engine writes keeps its newest lines and counts the rest."""
    entry = {**_valid(), "output": {"lines": [str(n) for n in range(2100)], "elided": 5}}
    kept = restore([entry], finished_at=NOW).jobs[0]
    assert kept.output.lines[0] == "100"
    assert kept.output.elided == 105


@pytest.mark.parametrize("stored", ["jobs", {"job_id": "x"}, 42, True, 1.5])
def test_stored_jobs_that_are_not_a_list(stored: object) -> None:
    """Whatever the store holds instead of a list counts as one dropped entry."""
    restored = restore(stored, finished_at=NOW)
    assert restored.jobs == []
    assert restored.dropped.reasons == {NOT_A_LIST: 1}
    assert recorded_sessions(stored) == {}


def test_nothing_stored_drops_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """None (nothing stored) and an empty list are quiet."""
    with caplog.at_level(logging.WARNING):
        nothing: list[object] = [None, []]
        for stored in nothing:
            restored = restore(stored, finished_at=NOW)
            assert restored.jobs == []
            assert restored.dropped.count == 0
    assert caplog.records == []


def test_session_of_a_dropped_entry_is_still_reaped() -> None:
    """An entry too damaged to restore may name a process that still runs: it is a leftover."""
    running = job(
        "a.yaml", JobType.COMPILE, JobStatus.RUNNING, process=ProcessRecord(pid=99, start_time=3)
    )
    entry = {**stored_form(running), "output": "garbage"}
    restored = restore([entry], finished_at=NOW)
    assert restored.jobs == []
    assert restored.leftovers == {running.job_id: ProcessRecord(pid=99, start_time=3)}
    assert recorded_sessions([entry, {"job_id": 5, "process": {"pid": 1, "start_time": 1}}]) == {
        running.job_id: ProcessRecord(pid=99, start_time=3)
    }


def test_bad_upload_ports_and_resets_with_a_configuration_are_dropped() -> None:
    """A stored port is passed to ESPHome: it must be one the actions would accept."""
    upload = stored_form(job("a.yaml", JobType.UPLOAD, JobStatus.COMPLETED))
    reset = stored_form(job("", JobType.RESET_BUILD_ENV, JobStatus.COMPLETED))
    restored = restore(
        [
            {**upload, "port": "--flash-everything"},
            {**upload, "job_id": "u2", "port": " OTA"},
            {**upload, "job_id": "u3", "port": "10.0.0.9"},
            {**reset, "configuration": "a.yaml"},
            reset,
        ],
        finished_at=NOW,
    )
    assert [item.job_id for item in restored.jobs] == ["u3", reset["job_id"]]
    assert restored.dropped.reasons == {
        "'port' is not a valid upload port": 2,
        "a reset names a configuration": 1,
    }


def test_a_remote_compile_is_kept() -> None:
    """A compile claimed by a build peer shows the remote lane; only a compile may."""
    compile_ = {**_valid(), "lane": "remote"}
    clean = {**stored_form(job("a.yaml", JobType.CLEAN)), "lane": "remote"}
    restored = restore([compile_, clean], finished_at=NOW)
    assert [item.lane for item in restored.jobs] == [Lane.REMOTE]
    assert restored.dropped.reasons == {"'lane' does not fit the job type": 1}


def test_prerequisite_must_come_first() -> None:
    """A dependency on itself or on a later entry cannot be waited for: the job is cancelled."""
    compile_ = job("a.yaml", JobType.COMPILE)
    early = job("a.yaml", JobType.UPLOAD, held=True, depends_on=compile_.job_id)
    selfish = job("b.yaml", JobType.UPLOAD, held=True)
    selfish.depends_on = selfish.job_id
    first = job("c.yaml", JobType.UPLOAD, held=True)
    second = job("c.yaml", JobType.UPLOAD, held=True, depends_on=first.job_id)
    first.depends_on = second.job_id
    entries = [stored_form(item) for item in (early, compile_, selfish, first, second)]
    restored = restore(entries, finished_at=NOW)
    statuses = {item.job_id: item.status for item in restored.jobs}
    assert statuses == {
        early.job_id: JobStatus.CANCELLED,
        compile_.job_id: JobStatus.QUEUED,
        selfish.job_id: JobStatus.CANCELLED,
        first.job_id: JobStatus.CANCELLED,
        second.job_id: JobStatus.CANCELLED,
    }
    assert all(not item.held for item in restored.jobs)


def test_finished_jobs_are_never_held() -> None:
    """`held` is a queued upload's flag; a stored `held: true` on a finished job is cleared."""
    done = stored_form(job("a.yaml", JobType.UPLOAD, JobStatus.COMPLETED, held=True))
    assert not restore([done], finished_at=NOW).jobs[0].held


# --------------------------------------------------------------------------- Hypothesis

JOB_IDS = ("j1", "j2", "j3", "j4", "j5", "j6")
OPTIONAL_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "held": st.booleans(),
    "source": st.sampled_from([str(item) for item in JobSource]),
    "peer": st.none() | st.text(max_size=5),
    "port": st.none() | st.sampled_from(["OTA", "10.0.0.9", "/dev/ttyUSB0", "-x"]),
    "progress": st.none() | st.integers(min_value=-1, max_value=101),
    "skipped": st.none() | st.sampled_from([str(item) for item in SkipReason]),
    "exit_code": st.none() | st.integers(min_value=-9, max_value=9),
    "error": st.none() | st.text(max_size=5),
    "started_at": st.none() | st.just(NOW),
    "finished_at": st.none() | st.just(NOW),
    "force": st.booleans(),
    "fingerprint": st.none() | st.text(max_size=5),
    "process": st.none()
    | st.fixed_dictionaries(
        {"pid": st.integers(min_value=2, max_value=2**22), "start_time": st.integers()}
    ),
    "output": st.none()
    | st.fixed_dictionaries(
        {"lines": st.lists(st.text(max_size=5), max_size=3), "elided": st.integers(0, 9)}
    ),
}
FIELD_NAMES = (
    "job_id", "configuration", "job_type", "status", "lane", "created_at", "depends_on",
    *OPTIONAL_FIELDS,
)  # fmt: skip


@st.composite
def job_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible stored job (often a valid one), then a few fields removed or replaced."""
    job_type = draw(st.sampled_from(JobType))
    entry: dict[str, Any] = {
        "job_id": draw(st.sampled_from(JOB_IDS)),
        "configuration": ""
        if job_type is JobType.RESET_BUILD_ENV
        else draw(st.sampled_from(["a.yaml", "b.yml", "a.yaml", "../x.yaml"])),
        "job_type": str(job_type),
        "status": str(draw(st.sampled_from(JobStatus))),
        "lane": str(draw(st.sampled_from([lane_for(job_type)] * 8 + list(Lane)))),
        "created_at": draw(st.sampled_from([NOW, "2026-01-01T00:00:00", NOW])),
        "depends_on": draw(st.none() | st.sampled_from(JOB_IDS)),
        **draw(st.fixed_dictionaries({}, optional=OPTIONAL_FIELDS)),
    }
    damaged = st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=2, unique=True)
    for key in draw(st.one_of(st.just([]), st.just([]), damaged)):
        if draw(st.booleans()):
            entry.pop(key, None)
        else:
            entry[key] = draw(any_json)
    return entry


stored_entries = st.one_of(*[job_shaped()] * 4, any_json)
stored_documents = st.one_of(st.lists(stored_entries, max_size=8), any_json)


def _check(entries: object, restored: Restored) -> None:
    """The invariants every restore result keeps, whatever it was given."""
    jobs = restored.jobs
    ids = [item.job_id for item in jobs]
    assert len(set(ids)) == len(ids)
    given_count = len(entries) if isinstance(entries, list) else (0 if entries is None else 1)
    assert len(jobs) + restored.dropped.count == given_count
    assert restored.dropped.count == sum(restored.dropped.reasons.values())
    assert all(count > 0 for count in restored.dropped.reasons.values())
    position = {job_id: index for index, job_id in enumerate(ids)}
    for index, item in enumerate(jobs):
        # A valid job: its own stored form reads back to the same job.
        assert Job.from_dict(stored_form(item)).to_dict() == item.to_dict()
        assert isinstance(item.job_type, JobType)
        assert isinstance(item.status, JobStatus)
        datetime.fromisoformat(item.created_at)
        assert item.process is None
        assert item.status is not JobStatus.RUNNING
        if item.job_type is JobType.RESET_BUILD_ENV:
            assert item.configuration == ""
        else:
            assert is_configuration_file_name(item.configuration)
        assert item.lane in (lane_for(item.job_type), Lane.REMOTE)
        if item.job_type is JobType.UPLOAD and item.port is not None:
            assert validate_port(item.port) == item.port
        assert not item.held or (item.job_type is JobType.UPLOAD and item.status.is_active)
        if item.status.is_active and item.depends_on is not None:
            # No active job waits on a missing, later, failed or cancelled prerequisite.
            assert position.get(item.depends_on, len(jobs)) < index
            prerequisite = jobs[position[item.depends_on]]
            assert prerequisite.status in (JobStatus.COMPLETED, JobStatus.QUEUED)
            if item.job_type is JobType.UPLOAD:
                assert item.held is (prerequisite.status is JobStatus.QUEUED)
    assert set(restored.leftovers) <= set(recorded_sessions(entries))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=stored_documents,
    exit_codes=st.dictionaries(st.sampled_from(JOB_IDS), st.integers(-1, 1)),
)
def test_restore_never_raises_and_keeps_the_rules(
    document: object, exit_codes: dict[str, int]
) -> None:
    """Random JSON and random job-shaped objects: restore never raises, the rules hold."""
    restored = restore(document, finished_at=NOW, exit_codes=exit_codes)
    _check(document, restored)
    # Restoring what was restored gives the same jobs and drops nothing.
    again = restore([stored_form(item) for item in restored.jobs], finished_at=NOW)
    assert again.dropped.count == 0
    assert [item.to_dict() for item in again.jobs] == [item.to_dict() for item in restored.jobs]


@settings(max_examples=200, deadline=None)
@given(entry=stored_entries)
def test_from_dict_raises_nothing_but_stored_job_error(entry: object) -> None:
    """Job.from_dict either builds a job or raises StoredJobError, for any JSON."""
    try:
        parsed = Job.from_dict(entry)
    except StoredJobError:
        return
    assert Job.from_dict(parsed.to_dict()).to_dict() == parsed.to_dict()
