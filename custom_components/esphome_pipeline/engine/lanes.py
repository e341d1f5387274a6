"""Lane workers: take a runnable job, run its process, and hand the outcome back.

Owns: `RunningJob` (one claimed job, its process and the request to stop it), `execute`
(spawn, stream output and progress, decide the outcome), and `lane_worker` (the loop a
worker task runs). Which job a lane may start, and what happens to the table when a job
ends, belong to the engine (`queue.py`) through the `LaneHost` protocol: this module never
touches the job table itself.

Workers sleep on an `asyncio.Event` that the engine sets on every change, so a free worker
claims a job in the loop iteration right after the change that made it runnable (no polling).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum, auto
import logging
from pathlib import Path
from typing import Protocol

from .exit_record import COMMAND_NOT_STARTED
from .models import Job, JobStatus, Lane, ProcessRecord
from .output import ProgressTracker, failure_summary, indicates_failure
from .runner import JobProcess

_LOGGER = logging.getLogger(__name__)


class StopReason(Enum):
    """Why a running job is being stopped."""

    CANCEL = auto()
    """It ends `cancelled` (a cancel, a supersede, a clean or a reset)."""
    SHUTDOWN = auto()
    """The engine stops: the job goes back to `queued` and runs again on the next start."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """How a run ended. `status` QUEUED means: put the job back (engine shutdown)."""

    status: JobStatus
    exit_code: int | None = None
    error: str | None = None
    tree_dead: bool = True
    """False when the process tree could not be confirmed dead (its record is kept)."""


class RunningJob:
    """A job a worker claimed: its process once spawned, and any request to stop it."""

    __slots__ = (
        "_spawned",
        "_termination",
        "cancel_error",
        "finished",
        "job",
        "process",
        "stop_reason",
    )

    def __init__(self, job: Job) -> None:
        """Track `job`, which the engine has just marked running."""
        loop = asyncio.get_running_loop()
        self.job = job
        self.process: JobProcess | None = None
        self.stop_reason: StopReason | None = None
        self.cancel_error: str | None = None
        self.finished: asyncio.Future[None] = loop.create_future()
        """Resolved by the engine once the job's outcome is in the table."""
        self._spawned: asyncio.Future[None] = loop.create_future()
        self._termination: asyncio.Task[bool] | None = None

    def stop_requested(self) -> bool:
        """Return True once someone asked the job to stop."""
        return self.stop_reason is not None

    def spawned(self, process: JobProcess | None) -> None:
        """Record the outcome of the spawn attempt (None: nothing was started)."""
        self.process = process
        if not self._spawned.done():
            self._spawned.set_result(None)

    def request_stop(self, reason: StopReason, error: str | None = None) -> None:
        """Ask for the job to stop; its process tree is terminated in the background.

        A cancel wins over a shutdown: a job cancelled while the engine stops stays cancelled.
        """
        if self.stop_reason is None or reason is StopReason.CANCEL:
            if self.stop_reason is not StopReason.CANCEL:
                self.cancel_error = error
            self.stop_reason = reason
        if self._termination is None:
            self._termination = asyncio.get_running_loop().create_task(
                self._terminate(), name=f"terminate job {self.job.job_id}"
            )

    async def _terminate(self) -> bool:
        await self._spawned
        if self.process is None:
            return True
        return await self.process.terminate()

    async def tree_dead(self) -> bool:
        """Wait for a requested termination; True when no process of the job remains."""
        if self._termination is None:
            return True
        return await asyncio.shield(self._termination)

    async def stop(self, reason: StopReason, error: str | None = None) -> bool:
        """Stop the job and wait until its outcome is recorded; False if the tree survived.

        When the tree cannot be confirmed dead this returns at once (the job ends when its
        process finally does).
        """
        self.request_stop(reason, error)
        if not await self.tree_dead():
            return False
        await asyncio.shield(self.finished)
        return True


class LaneHost(Protocol):
    """What a lane worker needs from the engine."""

    @property
    def config_dir(self) -> Path:
        """The folder the CLI runs in."""

    def claim(self, lane: Lane) -> RunningJob | None:
        """Mark the next runnable job of `lane` running and return it, or None."""

    def argv(self, job: Job) -> list[str]:
        """Return the command line that does `job`."""

    def environment(self) -> dict[str, str]:
        """Return the child environment."""

    def process_started(self, job: Job, record: ProcessRecord) -> None:
        """Record the process session of a running job (for crash safety)."""

    def output(self, job: Job, line: str, replaces_previous: bool) -> None:
        """Add a line to a job's log."""

    def progress(self, job: Job, value: int) -> None:
        """Record a job's new, higher progress."""

    def finish(self, running: RunningJob, outcome: Outcome) -> None:
        """Apply the outcome to the table, release the slot, then announce it."""


def _stopped_outcome(running: RunningJob, *, tree_dead: bool, exit_code: int | None) -> Outcome:
    if running.stop_reason is StopReason.SHUTDOWN:
        return Outcome(status=JobStatus.QUEUED, tree_dead=tree_dead)
    return Outcome(
        status=JobStatus.CANCELLED,
        exit_code=exit_code,
        error=running.cancel_error,
        tree_dead=tree_dead,
    )


async def execute(running: RunningJob, host: LaneHost) -> Outcome:
    """Run a claimed job's process to its end and return the outcome."""
    job = running.job
    if running.stop_requested():
        running.spawned(None)
        return _stopped_outcome(running, tree_dead=True, exit_code=None)
    try:
        process = await JobProcess.start(
            host.argv(job), cwd=host.config_dir, env=host.environment()
        )
    except OSError as err:
        running.spawned(None)
        if running.stop_requested():
            return _stopped_outcome(running, tree_dead=True, exit_code=None)
        return Outcome(status=JobStatus.FAILED, error=f"Could not start the ESPHome command: {err}")
    running.spawned(process)
    host.process_started(job, process.record)
    tracker = ProgressTracker()

    def on_line(line: str, replaces_previous: bool) -> None:
        host.output(job, line, replaces_previous)
        value = tracker.feed(line)
        if value is not None:
            host.progress(job, value)

    try:
        exit_code = await process.stream(on_line)
    except BaseException:
        # The worker itself is being cancelled: never leave the tree running behind it.
        await asyncio.shield(process.terminate())
        raise
    tree_dead = await running.tree_dead()
    if not tree_dead:
        # The process ended after all: check again whether anything of its session is left.
        tree_dead = await process.terminate()
    if running.stop_requested():
        # A stop request wins over whatever the process reported while dying.
        return _stopped_outcome(running, tree_dead=tree_dead, exit_code=exit_code)
    if exit_code in COMMAND_NOT_STARTED:
        reason = job.output.lines[-1] if job.output.lines else f"exit code {exit_code}"
        return Outcome(
            status=JobStatus.FAILED,
            exit_code=exit_code,
            error=f"Could not start the ESPHome command: {reason}",
        )
    if exit_code != 0:
        error = f"ESPHome {job.job_type} failed with exit code {exit_code}"
        summary = failure_summary(job.output.lines)
        return Outcome(
            status=JobStatus.FAILED,
            exit_code=exit_code,
            error=error if summary is None else f"{error}: {summary}",
        )
    if indicates_failure(job.output.lines):
        return Outcome(
            status=JobStatus.FAILED,
            exit_code=exit_code,
            error=f"ESPHome {job.job_type} exited with 0 but its output shows an error",
        )
    return Outcome(status=JobStatus.COMPLETED, exit_code=exit_code)


async def lane_worker(lane: Lane, host: LaneHost, wakeup: asyncio.Event) -> None:
    """Run jobs of `lane` one after another until cancelled."""
    while True:
        running = host.claim(lane)
        if running is None:
            # No await between the failed claim and clear(): a change made after this point
            # sets the event again, so no wake-up is ever lost.
            wakeup.clear()
            await wakeup.wait()
            continue
        try:
            outcome = await execute(running, host)
        except Exception as err:
            # A bug must not kill the lane: the job fails (or ends cancelled if asked to).
            _LOGGER.exception("Job %s crashed", running.job.job_id)
            running.spawned(None)
            outcome = (
                _stopped_outcome(running, tree_dead=True, exit_code=None)
                if running.stop_reason is not None
                else Outcome(status=JobStatus.FAILED, error=f"Internal error: {err!r}")
            )
        host.finish(running, outcome)
        # Yield once before claiming again: spawning forks inside the loop, so a worker that
        # this job's end woke (its upload, typically) claims its job first, not a fork later.
        await asyncio.sleep(0)
