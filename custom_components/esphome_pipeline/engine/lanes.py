"""Lane workers: claim a runnable job, have it run, hand the outcome back.

Owns: `RunningJob` (one claimed job, its process and the request to stop it), `Outcome`, and
`lane_worker` (the loop a worker task runs for one slot, see `state.Slot`). Which job a slot
may start, how a job runs (skip checks, executors) and what happens to the table when it
ends belong to the dispatcher and the engine, reached only through the `LaneHost` protocol:
this module never touches the job table itself.

Workers sleep on an `asyncio.Event` that the engine sets on every change, so a free worker
claims a job in the loop iteration right after the change that made it runnable (no polling).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum, auto
import logging
from typing import TYPE_CHECKING, Protocol

from .models import Job, JobStatus, SkipReason

if TYPE_CHECKING:
    from .runner import JobProcess
    from .state import Slot

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
    skipped: SkipReason | None = None
    """Set when the job completed without doing its work (a skip check said it was done)."""
    device_offline: bool = False
    """With status QUEUED: the upload's device did not answer; the job waits, held, until it
    does (instead of running again at once)."""


class RunningJob:
    """A job a worker claimed: its process once spawned, and any request to stop it."""

    __slots__ = (
        "_spawned",
        "_stop_asked",
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
        self._stop_asked = asyncio.Event()
        self._termination: asyncio.Task[bool] | None = None

    def stop_requested(self) -> bool:
        """Return True once someone asked the job to stop."""
        return self.stop_reason is not None

    def prepare_retry(self) -> None:
        """Let the job start another process (a retry): a stop request from now on waits for
        that spawn and stops it. Only while no stop was requested."""
        self.process = None
        self._spawned = asyncio.get_running_loop().create_future()

    async def stop_request(self) -> None:
        """Return once someone asked the job to stop (for work done between processes)."""
        await self._stop_asked.wait()

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
        self._stop_asked.set()
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

    def stopped_outcome(self, *, tree_dead: bool = True, exit_code: int | None = None) -> Outcome:
        """Return the outcome of a job that was asked to stop (cancelled, or queued again)."""
        if self.stop_reason is StopReason.SHUTDOWN:
            return Outcome(status=JobStatus.QUEUED, tree_dead=tree_dead)
        return Outcome(
            status=JobStatus.CANCELLED,
            exit_code=exit_code,
            error=self.cancel_error,
            tree_dead=tree_dead,
        )


class LaneHost(Protocol):
    """What a lane worker needs: the dispatcher."""

    def claim(self, slot: Slot) -> RunningJob | None:
        """Mark the next job `slot` may run as running and return it, or None."""

    async def run(self, running: RunningJob, slot: Slot) -> Outcome:
        """Do the claimed job's work (or decide it is already done) and return the outcome."""

    def finish(self, running: RunningJob, outcome: Outcome) -> None:
        """Apply the outcome to the table, release the slot, then announce it."""


async def lane_worker(slot: Slot, host: LaneHost, wakeup: asyncio.Event) -> None:
    """Run the jobs `slot` may take, one after another, until cancelled."""
    while True:
        running = host.claim(slot)
        if running is None:
            # No await between the failed claim and clear(): a change made after this point
            # sets the event again, so no wake-up is ever lost.
            wakeup.clear()
            await wakeup.wait()
            continue
        try:
            outcome = await host.run(running, slot)
        except Exception as err:
            # A bug must not kill the lane: the job fails (or ends cancelled if asked to).
            _LOGGER.exception("Job %s crashed", running.job.job_id)
            running.spawned(None)
            outcome = (
                running.stopped_outcome()
                if running.stop_requested()
                else Outcome(status=JobStatus.FAILED, error=f"Internal error: {err!r}")
            )
        host.finish(running, outcome)
        # Yield once before claiming again: spawning forks inside the loop, so a worker that
        # this job's end woke (its upload, typically) claims its job first, not a fork later.
        await asyncio.sleep(0)
