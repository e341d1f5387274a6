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

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .engine.fingerprint import NodeInfo
from .engine.models import Job, JobStatus, JobType, Lane, QueueStatus
from .engine.state import HELD_DEVICE_OFFLINE
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
    held_reason: str | None = None
    """Why a held job waits (the engine's `Job.held_reason`): its compile, the build
    environment, or its device being offline."""
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
            held_reason=job.held_reason,
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
    latest = LatestJobs(jobs)
    by_id = {job.job_id: job for job in jobs}
    states = {
        name: configuration_state(
            name,
            node,
            latest,
            installed=installed.get(name),
            installed_build=(installed_builds or {}).get(name),
            job_by_id=by_id.get,
        )
        for name, node in nodes.items()
    }
    return PipelineSnapshot(
        configurations=states,
        queue=queue,
        engine_running=engine_running,
        hub=hub_state(queue, jobs),
    )


def updated_snapshot(
    snapshot: PipelineSnapshot,
    configurations: Collection[str],
    *,
    nodes: Mapping[str, NodeInfo],
    latest: LatestJobs,
    installed: Mapping[str, str],
    installed_builds: Mapping[str, Mapping[str, Any]],
    job_by_id: Callable[[str], Job | None],
    queue: tuple[QueueStatus, Callable[[], Sequence[Job]]] | None,
) -> tuple[PipelineSnapshot, list[str], bool]:
    """Return `snapshot` with these configurations (and the queue, when given) brought up to
    date, which configurations changed, and whether the queue or hub changed.

    A published snapshot is never changed in place: what changed is copied.
    """
    current = snapshot.configurations
    changed: list[str] = []
    updated: dict[str, ConfigurationState] | None = None
    for name in configurations:
        if (node := nodes.get(name)) is None:
            continue
        state = configuration_state(
            name,
            node,
            latest,
            installed=installed.get(name),
            installed_build=installed_builds.get(name),
            job_by_id=job_by_id,
        )
        if current.get(name) != state:
            if updated is None:
                updated = dict(current)
            updated[name] = state
            changed.append(name)
    status, hub = snapshot.queue, snapshot.hub
    if queue is not None:
        status, jobs = queue
        hub = hub_state(status, jobs())
    queue_changed = status != snapshot.queue or hub != snapshot.hub
    if not changed and not queue_changed:
        return snapshot, changed, False
    return (
        replace(
            snapshot,
            configurations=current if updated is None else updated,
            queue=status,
            hub=hub,
        ),
        changed,
        queue_changed,
    )


def configuration_state(
    configuration: str,
    node: NodeInfo,
    latest: LatestJobs,
    *,
    installed: str | None,
    installed_build: Mapping[str, Any] | None = None,
    job_by_id: Callable[[str], Job | None],
) -> ConfigurationState:
    """Return one configuration's state: the whole snapshot is this, per configuration.

    The coordinator calls it for the configurations whose jobs changed, so the work of a
    change does not grow with the fleet.
    """
    compile_job = latest.of(configuration, JobType.COMPILE)
    clean_job = latest.of(configuration, JobType.CLEAN)
    upload_job = latest.of(configuration, JobType.UPLOAD)
    if (
        compile_job is not None
        and clean_job is not None
        and clean_job.status is JobStatus.COMPLETED
        and clean_job.created_at > compile_job.created_at
    ):
        compile_job = None  # its build files are gone
    in_progress, percentage = install_progress(upload_job, job_by_id)
    compile_view = None if compile_job is None else JobView.of(compile_job)
    upload_view = None if upload_job is None else JobView.of(upload_job)
    return ConfigurationState(
        node=node,
        compile=compile_view,
        upload=upload_view,
        installed=installed,
        installed_build=installed_build,
        install_in_progress=in_progress,
        install_percentage=percentage,
        last_error=last_error(compile_view, upload_view),
        active=any(
            job is not None and job.status.is_active
            for job in (latest.of(configuration, JobType.COMPILE), clean_job, upload_job)
        ),
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


def install_progress(
    upload: Job | None, job_by_id: Callable[[str], Job | None]
) -> tuple[bool, int | None]:
    """Return (in progress, percentage) of a configuration's latest upload and its compile."""
    if upload is None or upload.is_terminal or upload.held_reason == HELD_DEVICE_OFFLINE:
        # Waiting for a device that is offline is no install in progress: it may take days.
        return False, None
    compile_job = job_by_id(upload.depends_on) if upload.depends_on else None
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


class LatestJobs:
    """The newest job of each kind per configuration, kept up to date from job events.

    A job is newer than the one it replaces when it is seen for the first time: the engine
    announces every job when it is placed, and places them in creation order. A job that was
    replaced while still active (superseded, being terminated) is remembered until its last
    event, so that event cannot make it the latest again.
    """

    __slots__ = ("_latest", "_replaced")

    def __init__(self, jobs: Iterable[Job] = ()) -> None:
        """Start from `jobs`, oldest first (the engine's table)."""
        self._latest: dict[tuple[str, JobType], Job] = {}
        self._replaced: set[str] = set()
        for job in jobs:
            self.observe(job)

    def of(self, configuration: str, job_type: JobType) -> Job | None:
        """Return the configuration's newest job of this type, or None."""
        return self._latest.get((configuration, job_type))

    def observe(self, job: Job) -> bool:
        """Take in an event of `job`; return True when it is its kind's newest job."""
        key = (job.configuration, job.job_type)
        current = self._latest.get(key)
        if current is job:
            return True
        if job.job_id in self._replaced:
            if job.is_terminal:
                self._replaced.discard(job.job_id)
            return False
        if current is not None and not current.is_terminal:
            self._replaced.add(current.job_id)
        self._latest[key] = job
        return True
