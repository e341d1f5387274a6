"""The dispatcher: lane workers, the jobs they run, and how each job gets done.

Owns: the worker tasks (one per slot place: the compile workers, the upload slots, one per
build peer), their wake-up events, the running jobs, the claim (through the engine, which
alone writes the table), the skip step between claim and run, the choice of executor by slot,
and the hand-back of each outcome. A build peer joins or leaves with `add_slot` /
`remove_slot` without touching the other workers; idle peers are offered work first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
import logging

from .executors import Executor, JobSink
from .lanes import Outcome, RunningJob, StopReason, lane_worker
from .models import Job, JobStatus
from .skip import BuildRecord, SkipCheck, decide_skip
from .state import Slot

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class TableHooks:
    """How the dispatcher reaches the engine, the single writer of the job table."""

    pick: Callable[[Slot, int], Job | None]
    """Return the job a free worker of the slot may start now (read-only), or None."""
    start: Callable[[Job, Slot], None]
    """Mark the job running on the slot, settle the table and announce it."""
    settle: Callable[[Job, Outcome], None]
    """Apply a run's outcome, settle the table and announce it."""
    last_build: Callable[[str], BuildRecord | None]
    """Return a configuration's last successful build, for the skip checks."""


@dataclass(kw_only=True, slots=True)
class _Place:
    """One kind of slot: how many jobs it may run at once, who runs them, its workers."""

    capacity: int
    executor: Executor
    wakeup: asyncio.Event
    workers: list[asyncio.Task[None]]


class Dispatcher:
    """Runs the lane workers and is their `LaneHost`."""

    def __init__(
        self,
        hooks: TableHooks,
        sink: JobSink,
        *,
        skip_checks: Sequence[SkipCheck] = (),
    ) -> None:
        """Dispatch through `hooks`; running jobs report to `sink`."""
        self._hooks = hooks
        self._sink = sink
        self._skip_checks = tuple(skip_checks)
        self._places: dict[Slot, _Place] = {}
        self._running: dict[str, RunningJob] = {}
        self._slot_of: dict[str, Slot] = {}
        self._stopping = False

    # ------------------------------------------------------------------ the engine's side

    def add_slot(self, slot: Slot, executor: Executor, capacity: int) -> None:
        """Start `capacity` workers for `slot`, each running jobs with `executor`."""
        if slot in self._places or capacity < 1 or self._stopping:
            raise ValueError(f"cannot add {capacity} workers for {slot}")
        loop = asyncio.get_running_loop()
        wakeup = asyncio.Event()
        wakeup.set()
        name = f"{slot.lane} lane" if slot.peer is None else f"build peer {slot.peer}"
        workers = [
            loop.create_task(lane_worker(slot, self, wakeup), name=name) for _ in range(capacity)
        ]
        self._places[slot] = _Place(
            capacity=capacity, executor=executor, wakeup=wakeup, workers=workers
        )

    async def remove_slot(self, slot: Slot) -> None:
        """Stop `slot`'s workers; what they ran goes back to the queue for another slot."""
        place = self._places.pop(slot, None)
        if place is None:
            return
        await self._stop_workers(slot, place)
        self.wake()

    def wake(self) -> None:
        """Tell every idle worker that the table changed; build peers hear it first.

        Woken workers run in the order they were woken, so an idle peer claims a runnable
        compile before this machine's workers do: they take what no idle peer took.
        """
        for _, place in sorted(self._places.items(), key=lambda item: item[0].peer is None):
            place.wakeup.set()

    def running(self, job_id: str) -> RunningJob | None:
        """Return the running job with this id, or None."""
        return self._running.get(job_id)

    async def shutdown(self) -> None:
        """Stop every running job (back to queued) and every worker. Idempotent."""
        self._stopping = True
        places, self._places = self._places, {}
        await asyncio.gather(*(self._stop_workers(slot, place) for slot, place in places.items()))

    async def _stop_workers(self, slot: Slot, place: _Place) -> None:
        # The place is gone already, so a worker that finishes here claims nothing new.
        mine = [
            running for job_id, running in self._running.items() if self._slot_of[job_id] == slot
        ]
        await asyncio.gather(*(running.stop(StopReason.SHUTDOWN) for running in mine))
        for worker in place.workers:
            worker.cancel()
        await asyncio.gather(*place.workers, return_exceptions=True)

    # --------------------------------------------------------------- the workers' side

    def claim(self, slot: Slot) -> RunningJob | None:
        """Mark the next job `slot` may run as running and return it (None: nothing to do)."""
        place = self._places.get(slot)
        if self._stopping or place is None:
            return None
        job = self._hooks.pick(slot, place.capacity)
        if job is None:
            return None
        running = RunningJob(job)
        # Registered before the engine announces it: a listener may cancel it at once.
        self._running[job.job_id] = running
        self._slot_of[job.job_id] = slot
        self._hooks.start(job, slot)
        return running

    async def run(self, running: RunningJob, slot: Slot) -> Outcome:
        """Skip the job when its work is done already, else run it on the slot's executor."""
        job = running.job
        if self._skip_checks and not job.force:
            reason = await decide_skip(
                job, self._hooks.last_build(job.configuration), self._skip_checks
            )
            if running.stop_requested():
                running.spawned(None)
                return running.stopped_outcome()
            if reason is not None:
                running.spawned(None)
                return Outcome(status=JobStatus.COMPLETED, skipped=reason)
        place = self._places.get(slot)
        if place is None:
            running.spawned(None)
            return running.stopped_outcome()
        return await place.executor.run(running, self._sink)

    def finish(self, running: RunningJob, outcome: Outcome) -> None:
        """Release the job's place, then let the engine apply and announce the outcome."""
        del self._running[running.job.job_id]
        del self._slot_of[running.job.job_id]
        self._hooks.settle(running.job, outcome)
        running.finished.set_result(None)
