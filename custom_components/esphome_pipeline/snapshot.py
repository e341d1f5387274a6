"""What the entities show, as plain data: the snapshot and the pure function that builds it.

Owns: the snapshot dataclasses and how a configuration's state is derived from the job table
(its latest compile and upload, the installed fingerprint, the combined install progress).
No Home Assistant import and no I/O: the coordinator hands in what it read and publishes the
result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    latest: dict[tuple[str, JobType], Job] = {}
    for job in jobs:  # oldest first, so the newest of each kind wins
        latest[(job.configuration, job.job_type)] = job
    by_id = {job.job_id: job for job in jobs}
    states: dict[str, ConfigurationState] = {}
    for name, node in nodes.items():
        compile_job = latest.get((name, JobType.COMPILE))
        upload_job = latest.get((name, JobType.UPLOAD))
        in_progress, percentage = install_progress(upload_job, by_id)
        states[name] = ConfigurationState(
            node=node,
            compile=None if compile_job is None else JobView.of(compile_job),
            upload=None if upload_job is None else JobView.of(upload_job),
            installed=installed.get(name),
            install_in_progress=in_progress,
            install_percentage=percentage,
        )
    return PipelineSnapshot(configurations=states, queue=queue, engine_running=engine_running)


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
