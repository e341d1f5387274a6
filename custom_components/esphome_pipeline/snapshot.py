"""What the entities show, as plain data: the snapshot and the pure function that builds it.

Owns: the snapshot dataclasses and how a configuration's state is derived from the job table
(its latest compile and upload, the installed fingerprint, the combined install progress).
No Home Assistant import and no I/O: the coordinator hands in what it read and publishes the
result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .engine.fingerprint import NodeInfo
from .engine.models import Job, JobStatus, JobType, QueueStatus

COMPILE_SHARE = 0.8
"""Share of an install's percentage given to the compile; the upload gets the rest.

A build takes minutes and an OTA upload seconds, so this keeps the bar moving evenly."""


@dataclass(frozen=True, kw_only=True, slots=True)
class JobView:
    """The fields entities show of one job, copied when the snapshot is taken."""

    job_id: str
    status: JobStatus
    progress: int | None
    held: bool

    @classmethod
    def of(cls, job: Job) -> JobView:
        """Copy the fields of a live job."""
        return cls(job_id=job.job_id, status=job.status, progress=job.progress, held=job.held)


@dataclass(frozen=True, kw_only=True, slots=True)
class ConfigurationState:
    """One configuration as entities see it."""

    node: NodeInfo
    compile: JobView | None
    upload: JobView | None
    installed: str | None
    install_in_progress: bool
    install_percentage: int | None


@dataclass(frozen=True, kw_only=True, slots=True)
class PipelineSnapshot:
    """Everything the entities of one entry show."""

    configurations: Mapping[str, ConfigurationState]
    queue: QueueStatus
    engine_running: bool


def build_snapshot(
    *,
    nodes: Mapping[str, NodeInfo],
    jobs: Sequence[Job],
    installed: Mapping[str, str],
    queue: QueueStatus,
    engine_running: bool,
) -> PipelineSnapshot:
    """Return the snapshot of these configurations over `jobs` (oldest first)."""
    latest = LatestJobs(jobs)
    by_id = {job.job_id: job for job in jobs}
    states = {
        name: configuration_state(
            name, node, latest, installed=installed.get(name), job_by_id=by_id.get
        )
        for name, node in nodes.items()
    }
    return PipelineSnapshot(configurations=states, queue=queue, engine_running=engine_running)


def configuration_state(
    configuration: str,
    node: NodeInfo,
    latest: LatestJobs,
    *,
    installed: str | None,
    job_by_id: Callable[[str], Job | None],
) -> ConfigurationState:
    """Return one configuration's state: the whole snapshot is this, per configuration.

    The coordinator calls it for the configurations whose jobs changed, so the work of a
    change does not grow with the fleet.
    """
    compile_job = latest.of(configuration, JobType.COMPILE)
    upload_job = latest.of(configuration, JobType.UPLOAD)
    in_progress, percentage = install_progress(upload_job, job_by_id)
    return ConfigurationState(
        node=node,
        compile=None if compile_job is None else JobView.of(compile_job),
        upload=None if upload_job is None else JobView.of(upload_job),
        installed=installed,
        install_in_progress=in_progress,
        install_percentage=percentage,
    )


def install_progress(
    upload: Job | None, job_by_id: Callable[[str], Job | None]
) -> tuple[bool, int | None]:
    """Return (in progress, percentage) of a configuration's latest upload and its compile."""
    if upload is None or upload.is_terminal:
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
