"""The firmware engine: the job queue with its life cycle, its queries and its build peers.

Owns: `FirmwareEngine`, the public API. Its requests and every change to the job table come
from `JobQueue` (`queue.py`, the single writer); this module adds what surrounds them: load
(crash recovery), run and stop (the dispatcher's workers), build peers joining and leaving,
and the read side (jobs, queue status, subscriptions and bounded streams).

`jobs()` lists jobs in creation order, oldest first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from pathlib import Path

from .errors import EngineStoppedError
from .events import JobListener
from .executors import Executor
from .job_factory import InstallChain
from .models import Job, JobStatus, Lane, QueueStatus
from .persistence import split_stored
from .queue import EXIT_RECORD_DIR, JobQueue
from .recovery import discard_all_exit_records, recover
from .routing import Routing
from .skip import BuildLedger
from .state import LOCAL_COMPILE_SLOT, UPLOAD_SLOT, Slot, queue_status
from .streams import DEFAULT_MAX_LINES, JobStream

__all__ = ["EXIT_RECORD_DIR", "FirmwareEngine", "InstallChain"]


class FirmwareEngine(JobQueue):
    """A compile lane and an upload lane running ESPHome CLI jobs, persisted in a `JobStore`.

    Call `load()` once, then run `run()` as a background task; `stop()` ends it. Requests
    (`install`, `compile`, ...) may come before `run()` starts: their jobs wait in the queue.
    """

    @property
    def config_dir(self) -> Path:
        """The ESPHome configuration folder the CLI runs in."""
        return self._config_dir

    @property
    def compile_workers(self) -> int:
        """How many compile-lane jobs may run at once on this machine."""
        return self._compile_workers

    @property
    def upload_slots(self) -> int:
        """How many uploads may run at once."""
        return self._upload_slots

    # ------------------------------------------------------------------------- queries

    def jobs(
        self,
        *,
        statuses: Collection[JobStatus] | None = None,
        configurations: Collection[str] | None = None,
    ) -> list[Job]:
        """Return the jobs (oldest first), optionally only these statuses / configurations."""
        return self._table.select(statuses=statuses, configurations=configurations)

    def get(self, job_id: str) -> Job | None:
        """Return the job with this id, or None."""
        return self._table.get(job_id)

    def queue_status(self) -> QueueStatus:
        """Return what runs on each lane and how many jobs wait."""
        return queue_status(self._table)

    def subscribe(self, callback: JobListener) -> Callable[[], None]:
        """Call `callback(JobEvent)` in the loop for every event; return the unsubscriber.

        The callback runs inside the engine's step: it must not wait. A subscriber that may
        be slow opens a stream instead (`open_stream`).
        """
        return self._hub.subscribe(callback)

    def open_stream(
        self, *, job_id: str | None = None, max_lines: int = DEFAULT_MAX_LINES
    ) -> JobStream:
        """Return a bounded, coalescing stream of events (of one job, or all); close it after."""
        accept = None if job_id is None else (lambda event: event.job.job_id == job_id)
        return JobStream(self._hub.subscribe, accept=accept, max_lines=max_lines)

    # ---------------------------------------------------------------------- life cycle

    async def load(self) -> None:
        """Restore the stored jobs (two passes) and reap processes a killed run left behind.

        Call once, before `run()` and before any request; requests made while it runs wait
        for it. Emits no events: read `jobs()`.
        """
        if self._loaded or len(self._table):
            raise RuntimeError("load() runs once, before any job is queued")
        self._loaded = True
        self._loading = asyncio.get_running_loop().create_future()
        try:
            entries, builds = split_stored(await self._store.load())
            recovered = await recover(entries, self._exit_dir)
            self._builds = BuildLedger.from_dict(builds)
            self.dropped = recovered.dropped
            for job in recovered.jobs:
                self._table.add(job)
                if builds is None and job.is_terminal:
                    # A store of the first layout has no build records: rebuild them.
                    self._builds.observe(job)
            self._commit([])
            await self.flush()
            await discard_all_exit_records(self._exit_dir)
        finally:
            self._loading.set_result(None)
            self._loading = None

    async def run(self) -> None:
        """Run every lane worker until `stop()` (or until this task is cancelled)."""
        if self._running or self._stopping:
            raise RuntimeError("the engine runs once")
        self._running = True
        # Peers first: their workers then claim before this machine's at the first start too.
        for label, executor in self._peers.items():
            self._dispatcher.add_slot(Slot(Lane.COMPILE, peer=label), executor, 1)
        self._dispatcher.add_slot(LOCAL_COMPILE_SLOT, self._local, self._compile_workers)
        self._dispatcher.add_slot(UPLOAD_SLOT, self._uploads, self._upload_slots)
        try:
            await self._stopped.wait()
        finally:
            # Also when this task is cancelled: no process tree may outlive the engine.
            await self.stop()

    def add_build_peer(self, label: str, executor: Executor) -> None:
        """Let build peer `label` take compiles, one at a time, run by `executor`."""
        if self._stopping:
            raise EngineStoppedError("The firmware engine is stopped")
        if label in self._peers:
            raise ValueError(f"build peer {label!r} is already added")
        self._peers[label] = executor
        if self._running:
            self._dispatcher.add_slot(Slot(Lane.COMPILE, peer=label), executor, 1)

    def device_seen(self, configuration: str) -> list[str]:
        """The configuration's device is back (zeroconf saw it): its uploads held "device
        offline" run now. Returns the ids released (none when none waited for it)."""
        return self._offline.device_seen(configuration)

    @property
    def routing(self) -> Routing:
        """Where compiles may run now (see `routing.py`)."""
        return self._routing

    def set_routing(self, routing: Routing) -> None:
        """Route compiles by `routing` from now on; waiting compiles are looked at again."""
        if routing == self._routing:
            # Peer status changes often (each queue report): only a new routing is news.
            return
        self._routing = routing
        self._commit([])

    async def remove_build_peer(self, label: str) -> None:
        """Stop using build peer `label`; the compile it ran goes back to the queue."""
        if self._peers.pop(label, None) is not None:
            await self._dispatcher.remove_slot(Slot(Lane.COMPILE, peer=label))

    async def stop(self) -> None:
        """Stop the lanes; running jobs are terminated and stored as queued. Idempotent."""
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self._shutdown())
        await asyncio.shield(self._stop_task)

    async def _shutdown(self) -> None:
        self._stopping = True
        await self._offline.stop()
        await self._dispatcher.shutdown()
        await self.flush()
        self._stopped.set()
