"""Job transitions: how a job's fields change when its status changes, each in one place.

Owns: marking a job running on a slot, ending it (with its error, exit code and skip reason),
putting an interrupted job back in the queue, and the error texts of cancellations. These are
field changes of one job only; deciding when they happen, and settling the table afterwards,
belongs to the engine (`queue.py`), their only caller.
"""

from __future__ import annotations

from typing import Final

from .lanes import Outcome
from .models import Job, JobSource, JobStatus, SkipReason, utc_now_iso
from .persistence import RESTART_MARKER
from .state import Slot, lane_for

CANCELLED_ON_REQUEST: Final = "Cancelled on request"
CANCELLED_BY_RESET: Final = "Cancelled by a reset of the build environment"
RESET_WITHDRAWN: Final = "Reset withdrawn: a running job could not be stopped"
DEVICE_OFFLINE_MARKER: Final = (
    "— device offline: the upload waits and starts by itself when the device answers —"
)
_SKIPPED_LINES: Final = {
    SkipReason.UNCHANGED: "— skipped: the build is current, nothing to compile —",
    SkipReason.DEVICE_CURRENT: "— skipped: the device already runs this build —",
}


def superseded_error(configuration: str) -> str:
    """Return the error of a job a newer job of its configuration replaced."""
    return f"Cancelled: a newer job for {configuration} replaced it"


def mark_running(job: Job, slot: Slot) -> None:
    """Start a claimed job on `slot` (a build peer's slot shows lane and source remote)."""
    job.status = JobStatus.RUNNING
    job.started_at = utc_now_iso()
    job.held = False
    job.held_reason = None
    job.waiting_for_device = False
    if slot.peer is not None:
        job.lane, job.source, job.peer = slot.runs_on, JobSource.REMOTE, slot.peer


def end(
    job: Job,
    status: JobStatus,
    *,
    error: str | None = None,
    exit_code: int | None = None,
    skipped: SkipReason | None = None,
) -> None:
    """End a job with `status` now."""
    job.status = status
    job.held = False
    job.held_reason = None
    job.waiting_for_device = False
    job.error = error
    job.exit_code = exit_code
    job.skipped = skipped
    job.finished_at = utc_now_iso()


def apply_outcome(job: Job, outcome: Outcome) -> None:
    """Apply how a run ended: back to the queue (engine stopped, device offline) or ended."""
    if outcome.status is JobStatus.QUEUED:
        # Back on the lane its type routes to, for any slot to take.
        job.status = JobStatus.QUEUED
        job.started_at = None
        job.progress = None
        job.lane, job.source, job.peer = lane_for(job.job_type), JobSource.LOCAL, None
        # The engine's settle step holds an upload waiting for its device (state.py).
        job.waiting_for_device = outcome.device_offline
        job.output.append(DEVICE_OFFLINE_MARKER if outcome.device_offline else RESTART_MARKER)
    else:
        if outcome.skipped is not None:
            job.output.append(_SKIPPED_LINES[outcome.skipped])
        end(
            job,
            outcome.status,
            error=outcome.error,
            exit_code=outcome.exit_code,
            skipped=outcome.skipped,
        )
    if outcome.tree_dead:
        job.process = None
