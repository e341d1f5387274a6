"""The job table and the scheduling rules, each rule in exactly one place.

Owns: which lane a job type runs on (routing), what an upload waits for (its prerequisite and
the build gate), which jobs a new job supersedes, and which queued job a lane may start next.
Everything here is synchronous and works on the table alone, so the rules are unit-tested
without processes and the engine applies them with no `await` in between.

Rules, in words:
- compile, clean and reset run on the compile lane; uploads run on the upload lane.
- The compile lane has more than one kind of slot: this machine's compile workers, and one
  slot per build peer. A peer's slot takes only compiles, one at a time; a compile it takes
  runs on lane `remote` (source `remote`, `peer` its label) and counts against that peer
  alone. Cleans and resets always run on this machine.
- Two processes never work on the same configuration at once, whatever their lanes: a job
  waits while another job of its configuration runs (for example the superseded one, while
  it is being terminated).
- A reset is a barrier: it starts only when nothing runs on any lane, and no compile-lane job
  queued after it starts before it has finished.
- An upload is `held` while its prerequisite is still active, or while the build gate is
  closed: a reset, or a clean of its own configuration, is queued or running, or while its
  device is offline (it did not answer when the upload was about to start: the upload
  waits until the device answers again, see `offline_watch.py`). `held_reason` says which,
  in that order: "waiting for its compile", "build environment busy", "device offline".
- Which compile slot may take a compile is the routing rule (`routing.py`): the `build_on`
  option (local and peers / peers only / local only), the peers that qualify now (connected,
  ESPHome version compatible under the policy), and the compiles that fell back to this
  machine. A compile no slot qualifies for waits; its log says why.
- Two uploads never run at once to the same device: OTA uploads are told apart by
  configuration, any other port (host, IP, serial device) is the device itself.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum, auto
from typing import Final

from .input_rules import OTA_PORT
from .models import Job, JobStatus, JobType, Lane, QueueStatus
from .routing import Routing, slot_may_take

PREREQUISITE_INCOMPLETE: Final = "prerequisite did not complete"
"""The phrase every cascade-cancel error contains (users and tests look for it)."""
HELD_FOR_PREREQUISITE: Final = "waiting for its compile"
HELD_BY_BUILD_GATE: Final = "build environment busy"
HELD_DEVICE_OFFLINE: Final = "device offline"
"""The values of `Job.held_reason`, one per hold rule."""

_LANE_BY_TYPE: Final[dict[JobType, Lane]] = {
    JobType.COMPILE: Lane.COMPILE,
    JobType.CLEAN: Lane.COMPILE,
    JobType.RESET_BUILD_ENV: Lane.COMPILE,
    JobType.UPLOAD: Lane.UPLOAD,
}


def lane_for(job_type: JobType) -> Lane:
    """Return the lane a job of this type is queued on (the only routing rule)."""
    return _LANE_BY_TYPE[job_type]


@dataclass(frozen=True, slots=True)
class Slot:
    """A lane worker's place: the lane it serves and whose machine does the work."""

    lane: Lane
    """`Lane.COMPILE` or `Lane.UPLOAD` (a peer's slot serves the compile lane)."""
    peer: str | None = None
    """None: this machine; else the label of the build peer that compiles."""

    @property
    def runs_on(self) -> Lane:
        """Return the lane a job shows while this slot runs it."""
        return Lane.REMOTE if self.peer is not None else self.lane


LOCAL_COMPILE_SLOT: Final = Slot(Lane.COMPILE)
UPLOAD_SLOT: Final = Slot(Lane.UPLOAD)


class Prerequisite(Enum):
    """Where a job stands with respect to the job it depends on."""

    SATISFIED = auto()
    """No prerequisite, or it completed."""
    PENDING = auto()
    """The prerequisite is still queued or running."""
    BROKEN = auto()
    """The prerequisite failed, was cancelled, or is gone: the job must not run."""


class JobTable:
    """Every job the engine knows, in creation order (oldest first), by id."""

    __slots__ = ("_jobs",)

    def __init__(self, jobs: Iterable[Job] = ()) -> None:
        """Start with `jobs` (in creation order)."""
        self._jobs: dict[str, Job] = {job.job_id: job for job in jobs}

    def __iter__(self) -> Iterator[Job]:
        """Iterate over every job, oldest first."""
        return iter(self._jobs.values())

    def __len__(self) -> int:
        """Return the number of jobs."""
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        """Return True when a job has this id."""
        return job_id in self._jobs

    def get(self, job_id: str) -> Job | None:
        """Return the job with this id, or None."""
        return self._jobs.get(job_id)

    def add(self, job: Job) -> None:
        """Append a new job; its id must be new."""
        if job.job_id in self._jobs:
            raise ValueError(f"duplicate job id {job.job_id}")
        self._jobs[job.job_id] = job

    def remove(self, job_id: str) -> None:
        """Forget a job (pruning, or a reset that could not be placed)."""
        self._jobs.pop(job_id, None)

    def select(
        self,
        *,
        statuses: Collection[JobStatus] | None = None,
        configurations: Collection[str] | None = None,
    ) -> list[Job]:
        """Return the jobs (oldest first) with these statuses and configurations (None: any)."""
        return [
            job
            for job in self._jobs.values()
            if (statuses is None or job.status in statuses)
            and (configurations is None or job.configuration in configurations)
        ]

    def active(self) -> list[Job]:
        """Return the queued and running jobs, oldest first."""
        return [job for job in self._jobs.values() if job.status.is_active]

    def running(self, lane: Lane | None = None) -> list[Job]:
        """Return the running jobs, on one lane or on all of them."""
        return [
            job
            for job in self._jobs.values()
            if job.status is JobStatus.RUNNING and (lane is None or job.lane is lane)
        ]

    def queued(self, lane: Lane) -> list[Job]:
        """Return the queued jobs of one lane, oldest first."""
        return [
            job
            for job in self._jobs.values()
            if job.status is JobStatus.QUEUED and job.lane is lane
        ]

    def dependents(self, job_id: str) -> list[Job]:
        """Return the jobs that depend on `job_id`."""
        return [job for job in self._jobs.values() if job.depends_on == job_id]


def queue_status(table: JobTable) -> QueueStatus:
    """Return what runs on this machine's lanes and how many jobs wait."""
    return QueueStatus(
        compile_running=tuple(job.job_id for job in table.running(Lane.COMPILE)),
        upload_running=tuple(job.job_id for job in table.running(Lane.UPLOAD)),
        queue_depth=sum(1 for job in table if job.status is JobStatus.QUEUED),
    )


def prerequisite_state(job: Job, table: JobTable) -> Prerequisite:
    """Return whether `job`'s prerequisite lets it run, keeps it waiting, or rules it out."""
    if job.depends_on is None:
        return Prerequisite.SATISFIED
    prerequisite = table.get(job.depends_on)
    if prerequisite is None:
        return Prerequisite.BROKEN
    if prerequisite.status is JobStatus.COMPLETED:
        return Prerequisite.SATISFIED
    if prerequisite.status.is_active:
        return Prerequisite.PENDING
    return Prerequisite.BROKEN


def prerequisite_error(job: Job, table: JobTable) -> str:
    """Return the error of a job cancelled because its prerequisite did not complete."""
    prerequisite = table.get(job.depends_on or "")
    if prerequisite is None:
        return f"Cancelled: the {PREREQUISITE_INCOMPLETE} (job {job.depends_on} is gone)"
    return (
        f"Cancelled: the {PREREQUISITE_INCOMPLETE} "
        f"({prerequisite.job_type} job {prerequisite.job_id} {prerequisite.status})"
    )


def build_gate_closed(job: Job, table: JobTable) -> bool:
    """Return True while a reset, or a clean of `job`'s configuration, is queued or running."""
    return any(
        other.job_type is JobType.RESET_BUILD_ENV
        or (other.job_type is JobType.CLEAN and other.configuration == job.configuration)
        for other in table.active()
        if other is not job
    )


def hold_reason(job: Job, table: JobTable) -> str | None:
    """Return why a queued upload must wait now (its `held_reason`), or None: it may run."""
    if job.job_type is not JobType.UPLOAD or job.status is not JobStatus.QUEUED:
        return None
    if prerequisite_state(job, table) is Prerequisite.PENDING:
        return HELD_FOR_PREREQUISITE
    if build_gate_closed(job, table):
        return HELD_BY_BUILD_GATE
    if job.waiting_for_device:
        return HELD_DEVICE_OFFLINE
    return None


def should_hold(job: Job, table: JobTable) -> bool:
    """Return the `held` flag a queued upload must show now."""
    return hold_reason(job, table) is not None


def refresh_held(table: JobTable) -> list[Job]:
    """Set `held` and `held_reason` on every queued upload from the rules above; return the
    jobs that changed."""
    changed: list[Job] = []
    for job in table.queued(Lane.UPLOAD):
        reason = hold_reason(job, table)
        if job.held != (reason is not None) or job.held_reason != reason:
            job.held = reason is not None
            job.held_reason = reason
            changed.append(job)
    return changed


def waiting_for_device(table: JobTable) -> list[Job]:
    """Return the queued uploads held because their device did not answer."""
    return [job for job in table.queued(Lane.UPLOAD) if job.waiting_for_device]


def broken_dependents(table: JobTable) -> list[Job]:
    """Return the queued jobs whose prerequisite failed, was cancelled or is gone."""
    return [
        job
        for job in table.active()
        if job.status is JobStatus.QUEUED and prerequisite_state(job, table) is Prerequisite.BROKEN
    ]


def superseded_by(table: JobTable, configuration: str, keep: Iterable[str]) -> list[Job]:
    """Return the active jobs of `configuration` a new job (or chain) supersedes.

    `keep` holds the ids of the new chain itself, which never supersedes its own jobs.
    """
    kept = set(keep)
    return [
        job
        for job in table.active()
        if job.configuration == configuration and job.job_id not in kept
    ]


def upload_device(job: Job) -> str:
    """Return what an upload writes to: the configuration for OTA, else the port itself."""
    port = job.port or OTA_PORT
    return f"configuration:{job.configuration}" if port == OTA_PORT else f"port:{port}"


def _configuration_busy(job: Job, running: list[Job]) -> bool:
    # A reset has no configuration: its exclusivity is the barrier rule instead.
    return bool(job.configuration) and any(
        other.configuration == job.configuration for other in running
    )


_ANYWHERE: Final = Routing()


def next_job(
    table: JobTable, slot: Slot, capacity: int, routing: Routing = _ANYWHERE
) -> Job | None:
    """Return the queued job a free worker of `slot` may start now, or None.

    `capacity` is how many jobs that kind of slot may run at once (the compile workers, the
    upload slots, or 1 for a build peer); `routing` says which compile slots may take a compile.
    """
    if slot.lane is Lane.UPLOAD:
        return next_upload_job(table, capacity)
    if slot.peer is None:
        return next_compile_lane_job(table, capacity, routing)
    return next_peer_job(table, slot.peer, capacity, routing)


def next_peer_job(
    table: JobTable, peer: str, capacity: int, routing: Routing = _ANYWHERE
) -> Job | None:
    """Return the queued compile a free slot of build peer `peer` may start now, or None."""
    running = table.running()
    if any(job.job_type is JobType.RESET_BUILD_ENV for job in running):
        return None
    if len([job for job in running if job.lane is Lane.REMOTE and job.peer == peer]) >= capacity:
        return None
    for job in table.queued(Lane.COMPILE):
        if job.job_type is JobType.RESET_BUILD_ENV:
            # The barrier holds for peers too: nothing queued behind a reset overtakes it.
            return None
        if (
            job.job_type is not JobType.COMPILE
            or job.held
            or _configuration_busy(job, running)
            or not slot_may_take(job, peer, routing)
        ):
            continue
        return job
    return None


def next_compile_lane_job(
    table: JobTable, capacity: int, routing: Routing = _ANYWHERE
) -> Job | None:
    """Return the queued compile-lane job a free compile worker may start now, or None."""
    running = table.running()
    if any(job.job_type is JobType.RESET_BUILD_ENV for job in running):
        return None
    if len([job for job in running if job.lane is Lane.COMPILE]) >= capacity:
        return None
    for job in table.queued(Lane.COMPILE):
        if job.job_type is JobType.RESET_BUILD_ENV:
            # The barrier: nothing queued behind a reset overtakes it.
            return job if not job.held and not running else None
        if job.held or _configuration_busy(job, running) or not slot_may_take(job, None, routing):
            continue
        return job
    return None


def next_upload_job(table: JobTable, capacity: int) -> Job | None:
    """Return the queued upload a free upload slot may start now, or None."""
    running = table.running()
    uploads = [job for job in running if job.lane is Lane.UPLOAD]
    if len(uploads) >= capacity or any(job.job_type is JobType.RESET_BUILD_ENV for job in running):
        return None
    busy_devices = {upload_device(job) for job in uploads}
    for job in table.queued(Lane.UPLOAD):
        if (
            job.held
            or should_hold(job, table)
            or prerequisite_state(job, table) is not Prerequisite.SATISFIED
            or _configuration_busy(job, running)
            or upload_device(job) in busy_devices
        ):
            continue
        return job
    return None
