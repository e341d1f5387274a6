"""What the entities show, as plain data: the snapshot and the pure function that builds it.

Owns: the snapshot dataclasses and how a configuration's state is derived from the job table
(its latest compile and upload, its last error, whether it has active jobs, the installed
fingerprint, the combined install progress) and how the hub's view of the queue is derived
(which configurations run on each lane, how many devices wait, what runs next).
No Home Assistant import and no I/O: the coordinator hands in what it read and publishes the
result.

A clean that completed after a configuration's latest compile wipes what that compile built:
the compile is not shown any more (its sensor says `idle`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .engine.fingerprint import NodeInfo
from .engine.models import Job, JobStatus, JobType, Lane, QueueStatus
from .outcomes import cancel_reason, error_message

COMPILE_SHARE = 0.8
"""Share of an install's percentage given to the compile; the upload gets the rest.

A build takes minutes and an OTA upload seconds, so this keeps the bar moving evenly."""


@dataclass(frozen=True, kw_only=True, slots=True)
class JobView:
    """The fields entities show of one job, copied when the snapshot is taken."""

    job_id: str
    configuration: str
    job_type: JobType
    status: JobStatus
    progress: int | None
    held: bool
    error: str | None = None
    """What went wrong, as people read it (ESPHome's message, or why it was cancelled)."""
    cancel_reason: str | None = None
    """For a cancelled job: "cancelled on request", "superseded", ... (outcomes.py)."""
    finished_at: str | None = None

    @classmethod
    def of(cls, job: Job) -> JobView:
        """Copy the fields of a live job."""
        return cls(
            job_id=job.job_id,
            configuration=job.configuration,
            job_type=job.job_type,
            status=job.status,
            progress=job.progress,
            held=job.held,
            error=error_message(job.status, job.error),
            cancel_reason=cancel_reason(job.status, job.error),
            finished_at=job.finished_at,
        )

    @property
    def waiting(self) -> bool:
        """True while the job is queued behind its prerequisite or the build gate."""
        return self.status is JobStatus.QUEUED and self.held


@dataclass(frozen=True, kw_only=True, slots=True)
class ConfigurationState:
    """One configuration as entities see it."""

    node: NodeInfo
    compile: JobView | None
    upload: JobView | None
    installed: str | None
    install_in_progress: bool
    installed_build: Mapping[str, Any] | None = None
    """What the installed build was made of (release.ReleaseRecorder), when recorded."""
    install_percentage: int | None
    last_error: JobView | None = None
    """The latest compile or upload that failed (else one that was cancelled), while it is
    the latest of its kind."""
    active: bool = False
    """True while one of the configuration's jobs is queued or running."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LaneView:
    """What runs on one lane: the job ids and, in the same order, their configurations."""

    jobs: tuple[str, ...] = ()
    configurations: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class HubState:
    """The queue as the hub device shows it."""

    compile_lane: LaneView = field(default_factory=LaneView)
    upload_lane: LaneView = field(default_factory=LaneView)
    devices_waiting: int = 0
    """Configurations with at least one queued job (a reset counts as one)."""
    jobs_waiting: int = 0
    """Queued jobs."""
    next_job: JobView | None = None
    """The queued job a free worker takes next: the oldest runnable compile-lane job, else
    the oldest runnable upload."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PipelineSnapshot:
    """Everything the entities of one entry show."""

    configurations: Mapping[str, ConfigurationState]
    queue: QueueStatus
    engine_running: bool
    hub: HubState = field(default_factory=HubState)


def build_snapshot(
    *,
    nodes: Mapping[str, NodeInfo],
    jobs: Sequence[Job],
    installed: Mapping[str, str],
    queue: QueueStatus,
    engine_running: bool,
    installed_builds: Mapping[str, Mapping[str, Any]] | None = None,
) -> PipelineSnapshot:
    """Return the snapshot of these configurations over `jobs` (oldest first)."""
    latest: dict[tuple[str, JobType], Job] = {}
    position: dict[str, int] = {}
    active: set[str] = set()
    for index, job in enumerate(jobs):  # oldest first, so the newest of each kind wins
        latest[(job.configuration, job.job_type)] = job
        position[job.job_id] = index
        if job.status.is_active:
            active.add(job.configuration)
    by_id = {job.job_id: job for job in jobs}
    states: dict[str, ConfigurationState] = {}
    for name, node in nodes.items():
        compile_job = latest.get((name, JobType.COMPILE))
        clean_job = latest.get((name, JobType.CLEAN))
        if (
            compile_job is not None
            and clean_job is not None
            and clean_job.status is JobStatus.COMPLETED
            and position[clean_job.job_id] > position[compile_job.job_id]
        ):
            compile_job = None  # its build files are gone
        upload_job = latest.get((name, JobType.UPLOAD))
        in_progress, percentage = install_progress(upload_job, by_id)
        compile_view = None if compile_job is None else JobView.of(compile_job)
        upload_view = None if upload_job is None else JobView.of(upload_job)
        states[name] = ConfigurationState(
            node=node,
            compile=compile_view,
            upload=upload_view,
            installed=installed.get(name),
            installed_build=(installed_builds or {}).get(name),
            install_in_progress=in_progress,
            install_percentage=percentage,
            last_error=last_error(compile_view, upload_view),
            active=name in active,
        )
    return PipelineSnapshot(
        configurations=states,
        queue=queue,
        engine_running=engine_running,
        hub=hub_state(queue, jobs),
    )


def last_error(*views: JobView | None) -> JobView | None:
    """Return the view that explains a problem best: a failure before a cancel, newest first."""
    for status in (JobStatus.FAILED, JobStatus.CANCELLED):
        ended = [view for view in views if view is not None and view.status is status]
        if ended:
            return max(ended, key=lambda view: view.finished_at or "")
    return None


def hub_state(queue: QueueStatus, jobs: Sequence[Job]) -> HubState:
    """Return the hub's view of the queue: lanes by configuration, waiting devices, the next job."""
    by_id = {job.job_id: job for job in jobs}
    queued = [job for job in jobs if job.status is JobStatus.QUEUED]
    runnable = [job for job in queued if not job.held]
    upcoming = next(
        (job for lane in (Lane.COMPILE, Lane.UPLOAD) for job in runnable if job.lane is lane),
        None,
    )
    return HubState(
        compile_lane=_lane_view(queue.compile_running, by_id),
        upload_lane=_lane_view(queue.upload_running, by_id),
        devices_waiting=len({job.configuration for job in queued}),
        jobs_waiting=len(queued),
        next_job=None if upcoming is None else JobView.of(upcoming),
    )


def _lane_view(job_ids: Sequence[str], jobs: Mapping[str, Job]) -> LaneView:
    return LaneView(
        jobs=tuple(job_ids),
        configurations=tuple(
            jobs[job_id].configuration if job_id in jobs else "" for job_id in job_ids
        ),
    )


def install_progress(upload: Job | None, jobs: Mapping[str, Job]) -> tuple[bool, int | None]:
    """Return (in progress, percentage) of a configuration's latest upload and its compile."""
    if upload is None or upload.is_terminal:
        return False, None
    compile_job = jobs.get(upload.depends_on) if upload.depends_on else None
    if compile_job is None:
        return True, upload.progress
    if compile_job.status is JobStatus.COMPLETED:
        compile_part = 100
    elif compile_job.progress is None:
        return True, None
    else:
        compile_part = compile_job.progress
    upload_part = upload.progress or 0
    return True, round(compile_part * COMPILE_SHARE + upload_part * (1 - COMPILE_SHARE))
