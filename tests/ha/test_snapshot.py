"""The snapshot, built from plain data without Home Assistant."""

from __future__ import annotations

from custom_components.esphome_pipeline.engine.fingerprint import NodeInfo
from custom_components.esphome_pipeline.engine.models import (
    Job,
    JobStatus,
    JobType,
    Lane,
    QueueStatus,
)
from custom_components.esphome_pipeline.snapshot import (
    ConfigurationState,
    LatestJobs,
    build_snapshot,
)

IDLE_QUEUE = QueueStatus(compile_running=(), upload_running=(), queue_depth=0)
KITCHEN = NodeInfo(name="kitchen", friendly_name=None, platform="esp32", fingerprint="f" * 12)


def _chain(compile_progress: int | None, upload_progress: int | None) -> tuple[Job, Job]:
    compile_job = Job(
        configuration="kitchen.yaml",
        job_type=JobType.COMPILE,
        lane=Lane.COMPILE,
        status=JobStatus.RUNNING,
        progress=compile_progress,
    )
    upload_job = Job(
        configuration="kitchen.yaml",
        job_type=JobType.UPLOAD,
        lane=Lane.UPLOAD,
        depends_on=compile_job.job_id,
        held=True,
        progress=upload_progress,
    )
    return compile_job, upload_job


def _state(*jobs: Job, installed: dict[str, str] | None = None) -> ConfigurationState:
    snapshot = build_snapshot(
        nodes={"kitchen.yaml": KITCHEN},
        jobs=jobs,
        installed=installed or {},
        queue=IDLE_QUEUE,
        engine_running=True,
    )
    assert snapshot.queue is IDLE_QUEUE
    assert snapshot.engine_running is True
    return snapshot.configurations["kitchen.yaml"]


def test_configuration_without_jobs() -> None:
    """No job: nothing in progress; the installed fingerprint comes from the record."""
    state = _state(installed={"kitchen.yaml": "a" * 12})
    assert state.node is KITCHEN
    assert (state.compile, state.upload) == (None, None)
    assert state.installed == "a" * 12
    assert (state.install_in_progress, state.install_percentage) == (False, None)


def test_install_progress_combines_compile_and_upload() -> None:
    """The compile is 80% of the bar, the upload the rest; unknown compile progress is None."""
    compile_job, upload_job = _chain(None, None)
    state = _state(compile_job, upload_job)
    assert state.upload is not None
    assert state.upload.held is True
    assert (state.install_in_progress, state.install_percentage) == (True, None)

    compile_job, upload_job = _chain(50, None)
    assert _state(compile_job, upload_job).install_percentage == 40

    compile_job, upload_job = _chain(100, 50)
    compile_job.status = JobStatus.COMPLETED
    upload_job.status = JobStatus.RUNNING
    assert _state(compile_job, upload_job).install_percentage == 90

    upload_job.status = JobStatus.COMPLETED
    assert _state(compile_job, upload_job).install_in_progress is False


def test_upload_waiting_for_its_offline_device_is_no_install_in_progress() -> None:
    """Held "device offline": the sensors show the reason; the update is not in progress."""
    compile_job, upload_job = _chain(100, None)
    compile_job.status = JobStatus.COMPLETED
    upload_job.held, upload_job.held_reason = True, "device offline"
    state = _state(compile_job, upload_job)
    assert state.upload is not None
    assert state.upload.waiting
    assert state.upload.held_reason == "device offline"
    assert (state.install_in_progress, state.install_percentage) == (False, None)


def test_newest_job_of_each_kind_wins() -> None:
    """The sensors show the latest compile and upload; a plain upload shows its own progress."""
    old_compile, old_upload = _chain(10, None)
    new_upload = Job(
        configuration="kitchen.yaml", job_type=JobType.UPLOAD, lane=Lane.UPLOAD, progress=30
    )
    state = _state(old_compile, old_upload, new_upload)
    assert state.compile is not None
    assert state.compile.job_id == old_compile.job_id
    assert state.upload is not None
    assert state.upload.job_id == new_upload.job_id
    assert (state.install_in_progress, state.install_percentage) == (True, 30)


def test_latest_jobs_ignore_a_replaced_job_until_it_ends() -> None:
    """A superseded job still being stopped never becomes the latest again, even on its end."""
    old = Job(
        configuration="kitchen.yaml",
        job_type=JobType.COMPILE,
        lane=Lane.COMPILE,
        status=JobStatus.RUNNING,
    )
    latest = LatestJobs([old])
    new = Job(configuration="kitchen.yaml", job_type=JobType.COMPILE, lane=Lane.COMPILE)
    assert latest.observe(new) is True
    assert latest.observe(old) is False  # a late event of the old job, still running
    old.status = JobStatus.CANCELLED
    assert latest.observe(old) is False  # its last event: forgotten from now on
    assert latest.of("kitchen.yaml", JobType.COMPILE) is new
    assert latest.observe(new) is True
    assert latest.of("kitchen.yaml", JobType.UPLOAD) is None
