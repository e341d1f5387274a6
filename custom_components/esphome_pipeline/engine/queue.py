"""The firmware engine: the public API of the job queue, and the single writer of its table.

Owns: `FirmwareEngine` (install, compile, upload, clean, reset, cancel, queries, events,
load/run/stop) and every change to the job table. Each change is made synchronously (no
`await` in the middle), then `_commit` settles the table (cascades, `held` flags, pruning),
asks for a save, wakes the workers, and delivers the events. Everything else has a room of
its own: the rules (`state.py`), new jobs (`job_factory.py`), the workers and the skip step
(`dispatcher.py`), how work is done (`executors.py`), saving (`saver.py`), crash recovery
(`recovery.py`), build records and skip decisions (`skip.py`), slow subscribers
(`streams.py`).

`jobs()` lists jobs in creation order, oldest first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
import logging
from pathlib import Path
from typing import Any, Final

from .dispatcher import Dispatcher, TableHooks
from .errors import EngineStoppedError, ResetFailedError, UnknownJobError, shown
from .esphome_cli import EsphomeCli
from .events import EventHub, EventKind, JobEvent, JobListener, JobReporter
from .executors import Executor, LocalExecutor
from .input_rules import OTA_PORT, validate_port
from .job_factory import InstallChain, install_chains, new_job, validated_names
from .lanes import Outcome, RunningJob, StopReason
from .models import (
    Job,
    JobSource,
    JobStatus,
    JobType,
    Lane,
    QueueStatus,
    SkipReason,
    utc_now_iso,
)
from .persistence import (
    RESTART_MARKER,
    DroppedJobs,
    JobStore,
    StoredForms,
    prune,
    split_stored,
    stored_state,
)
from .recovery import ExitRecordKeeper, discard_all_exit_records, recover
from .saver import AfterSave, CoalescingSaver
from .skip import BuildLedger, BuildRecord, SkipCheck
from .state import (
    LOCAL_COMPILE_SLOT,
    UPLOAD_SLOT,
    JobTable,
    Slot,
    broken_dependents,
    lane_for,
    next_job,
    prerequisite_error,
    refresh_held,
    superseded_by,
)
from .streams import DEFAULT_MAX_LINES, JobStream

__all__ = ["FirmwareEngine", "InstallChain"]

_LOGGER = logging.getLogger(__name__)

EXIT_RECORD_DIR: Final = Path(".esphome", "esphome_pipeline")
"""Where, under the configuration folder, jobs leave their exit records (exit_record.py)."""
CANCELLED_ON_REQUEST: Final = "Cancelled on request"
CANCELLED_BY_RESET: Final = "Cancelled by a reset of the build environment"


def _superseded_error(configuration: str) -> str:
    return f"Cancelled: a newer job for {configuration} replaced it"


def _skipped_line(reason: SkipReason) -> str:
    return {
        SkipReason.UNCHANGED: "— skipped: the build is current, nothing to compile —",
        SkipReason.DEVICE_CURRENT: "— skipped: the device already runs this build —",
    }[reason]


class FirmwareEngine:
    """A compile lane and an upload lane running ESPHome CLI jobs, persisted in a `JobStore`.

    Call `load()` once, then run `run()` as a background task; `stop()` ends it. Requests
    (`install`, `compile`, ...) may come before `run()` starts: their jobs wait in the queue.
    """

    def __init__(
        self,
        *,
        config_dir: Path,
        cli: EsphomeCli,
        store: JobStore,
        compile_workers: int = 1,
        upload_slots: int = 4,
        history_limit: int = 200,
        skip_checks: Sequence[SkipCheck] = (),
    ) -> None:
        """Create an idle engine; nothing runs and nothing is read until `load`/`run`."""
        if compile_workers < 1 or upload_slots < 1 or history_limit < 0:
            raise ValueError(
                "compile_workers and upload_slots must be at least 1, history_limit at least 0"
            )
        self._config_dir = config_dir
        self._exit_dir = config_dir / EXIT_RECORD_DIR
        self._store = store
        self._compile_workers = compile_workers
        self._upload_slots = upload_slots
        self._history_limit = history_limit
        self._table = JobTable()
        self._builds = BuildLedger()
        self._hub = EventHub()
        self._records = ExitRecordKeeper(self._exit_dir)
        self._stored_forms = StoredForms()
        self._saver = CoalescingSaver(self._prepare_save, store.save)
        self._local = LocalExecutor(cli=cli, config_dir=config_dir, exit_dir=self._exit_dir)
        self._dispatcher = Dispatcher(
            TableHooks(
                pick=lambda slot, capacity: next_job(self._table, slot, capacity),
                start=self._start_job,
                settle=self._settle_job,
                last_build=self.last_build,
            ),
            JobReporter(self._hub, self._saver.request),
            skip_checks=skip_checks,
        )
        self._peers: dict[str, Executor] = {}
        self.dropped = DroppedJobs()
        """What `load()` could not use of the stored jobs (none, usually)."""
        self._running = False
        self._loaded = False
        self._loading: asyncio.Future[None] | None = None
        self._stopping = False
        self._stop_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    # ----------------------------------------------------------------- properties, queries

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

    def jobs(
        self,
        *,
        statuses: Collection[JobStatus] | None = None,
        configurations: Collection[str] | None = None,
    ) -> list[Job]:
        """Return the jobs (oldest first), optionally only these statuses / configurations."""
        return [
            job
            for job in self._table
            if (statuses is None or job.status in statuses)
            and (configurations is None or job.configuration in configurations)
        ]

    def get(self, job_id: str) -> Job | None:
        """Return the job with this id, or None."""
        return self._table.get(job_id)

    def last_build(self, configuration: str) -> BuildRecord | None:
        """Return the configuration's last successful build, or None."""
        return self._builds.get(configuration)

    def queue_status(self) -> QueueStatus:
        """Return what runs on each lane and how many jobs wait."""
        return QueueStatus(
            compile_running=tuple(job.job_id for job in self._table.running(Lane.COMPILE)),
            upload_running=tuple(job.job_id for job in self._table.running(Lane.UPLOAD)),
            queue_depth=sum(1 for job in self._table if job.status is JobStatus.QUEUED),
        )

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

    # ------------------------------------------------------------------------- requests

    async def install(
        self,
        configurations: Sequence[str],
        *,
        port: str = OTA_PORT,
        force: bool = False,
        fingerprints: Mapping[str, str] | None = None,
    ) -> list[InstallChain]:
        """Queue a compile and a dependent upload per configuration (one chain each)."""
        await self._ready()
        names = validated_names(configurations)
        port = validate_port(port)
        chains = install_chains(names, port=port, force=force, fingerprints=fingerprints or {})
        self._place([job for chain in chains for job in (chain.compile, chain.upload)])
        await self.flush()
        return chains

    async def compile(
        self,
        configurations: Sequence[str],
        *,
        force: bool = False,
        fingerprints: Mapping[str, str] | None = None,
    ) -> list[Job]:
        """Queue a compile per configuration."""
        await self._ready()
        labels = fingerprints or {}
        jobs = [
            new_job(name, JobType.COMPILE, force=force, fingerprint=labels.get(name))
            for name in validated_names(configurations)
        ]
        self._place(jobs)
        await self.flush()
        return jobs

    async def upload(
        self, configurations: Sequence[str], *, port: str = OTA_PORT, force: bool = False
    ) -> list[Job]:
        """Queue an upload of the current build per configuration."""
        await self._ready()
        names = validated_names(configurations)
        port = validate_port(port)
        jobs = [new_job(name, JobType.UPLOAD, port=port, force=force) for name in names]
        self._place(jobs)
        await self.flush()
        return jobs

    async def clean(self, configurations: Sequence[str]) -> list[Job]:
        """Cancel each configuration's active jobs, then queue `clean` for it.

        Returns once the process trees of the cancelled jobs are gone (like a reset), so no
        upload of these configurations runs any more when it returns.
        """
        await self._ready()
        jobs = [new_job(name, JobType.CLEAN) for name in validated_names(configurations)]
        stopping = self._place(jobs)
        await asyncio.gather(*(running.stop(StopReason.CANCEL) for running in stopping))
        await self.flush()
        return jobs

    async def reset_build_env(self) -> Job:
        """Cancel every active job on every lane, then queue `clean-all`.

        Returns once every cancelled process tree is confirmed dead. If one cannot be, the
        reset is withdrawn (its job removed) and ResetFailedError is raised.
        """
        await self._ready()
        # Held until the trees it cancels are confirmed dead, so it cannot start early.
        job = new_job("", JobType.RESET_BUILD_ENV, held=True)
        events: list[JobEvent] = []
        stopping = self._cancel_now(self._table.active(), CANCELLED_BY_RESET, events)
        self._table.add(job)
        self._commit(events)
        confirmed = all(
            await asyncio.gather(
                *(running.stop(StopReason.CANCEL, CANCELLED_BY_RESET) for running in stopping)
            )
        )
        if job.is_terminal:
            # A later reset (or a cancel) already ended this one while we waited.
            await self.flush()
            return job
        if not confirmed:
            self._table.remove(job.job_id)
            self._end(
                job,
                JobStatus.CANCELLED,
                error="Reset withdrawn: a running job could not be stopped",
            )
            self._commit([JobEvent(EventKind.STATUS, job)])
            await self.flush()
            raise ResetFailedError(
                "The build environment was not reset: a running job could not be stopped",
                job_id=job.job_id,
            )
        job.held = False
        self._commit([JobEvent(EventKind.STATUS, job)])
        await self.flush()
        return job

    async def cancel(self, job_id: str) -> list[str]:
        """Cancel a job and the jobs that depend on it; return the ids cancelled.

        A queued job ends at once; a running one returns once its process tree is dead.
        Raises UnknownJobError for an unknown id; a finished job gives [].
        """
        await self._loaded_fully()
        job = self._table.get(job_id)
        if job is None:
            raise UnknownJobError(f"No job has the id '{shown(job_id)}'", job_id=str(job_id))
        if job.is_terminal:
            return []
        return await self._cancel([job])

    async def cancel_configurations(self, configurations: Sequence[str]) -> list[str]:
        """Cancel every active job of these configurations; return the ids cancelled."""
        names = set(validated_names(configurations))
        await self._loaded_fully()
        return await self._cancel(
            [job for job in self._table.active() if job.configuration in names]
        )

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
        self._dispatcher.add_slot(UPLOAD_SLOT, self._local, self._upload_slots)
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

    async def remove_build_peer(self, label: str) -> None:
        """Stop using build peer `label`; the compile it ran goes back to the queue."""
        if self._peers.pop(label, None) is not None:
            await self._dispatcher.remove_slot(Slot(Lane.COMPILE, peer=label))

    async def stop(self) -> None:
        """Stop the lanes; running jobs are terminated and stored as queued. Idempotent."""
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self._shutdown())
        await asyncio.shield(self._stop_task)

    async def flush(self) -> None:
        """Wait until the store holds every change made so far."""
        await self._saver.flush()

    async def _shutdown(self) -> None:
        self._stopping = True
        await self._dispatcher.shutdown()
        await self.flush()
        self._stopped.set()

    # ------------------------------------------------ what the dispatcher calls (hooks)

    def _start_job(self, job: Job, slot: Slot) -> None:
        """Mark a job the dispatcher claimed as running on `slot`."""
        job.status = JobStatus.RUNNING
        job.started_at = utc_now_iso()
        job.held = False
        if slot.peer is not None:
            job.lane, job.source, job.peer = slot.runs_on, JobSource.REMOTE, slot.peer
        self._commit([JobEvent(EventKind.STATUS, job)])

    def _settle_job(self, job: Job, outcome: Outcome) -> None:
        """Apply a run's outcome (the dispatcher has released the job's place already)."""
        self._records.settled(job.job_id)
        if outcome.status is JobStatus.QUEUED:
            # Back in the queue, on the lane its type routes to, for any slot to take.
            job.status = JobStatus.QUEUED
            job.started_at = None
            job.progress = None
            job.lane, job.source, job.peer = lane_for(job.job_type), JobSource.LOCAL, None
            job.output.append(RESTART_MARKER)
        else:
            if outcome.skipped is not None:
                job.output.append(_skipped_line(outcome.skipped))
            self._end(
                job,
                outcome.status,
                error=outcome.error,
                exit_code=outcome.exit_code,
                skipped=outcome.skipped,
            )
            self._builds.observe(job)
        if outcome.tree_dead:
            job.process = None
        self._commit([JobEvent(EventKind.STATUS, job)])

    # -------------------------------------------------------------------------- changes

    async def _loaded_fully(self) -> None:
        """Wait for a `load()` in progress (restored jobs come first)."""
        if self._loading is not None:
            await asyncio.shield(self._loading)

    async def _ready(self) -> None:
        """Wait for a `load()` in progress, refuse when stopped."""
        await self._loaded_fully()
        if self._stopping:
            raise EngineStoppedError("The firmware engine is stopped")

    def _place(self, jobs: list[Job]) -> list[RunningJob]:
        """Add new jobs, superseding their configurations' other active jobs, in one step.

        Returns the superseded jobs that were running: they are being terminated.
        """
        keep = {job.job_id for job in jobs}
        events: list[JobEvent] = []
        stopping: list[RunningJob] = []
        for configuration in dict.fromkeys(job.configuration for job in jobs):
            victims = superseded_by(self._table, configuration, keep)
            stopping += self._cancel_now(victims, _superseded_error(configuration), events)
        for job in jobs:
            self._table.add(job)
            events.append(JobEvent(EventKind.STATUS, job))
        self._commit(events)
        return stopping

    def _cancel_now(
        self, jobs: Iterable[Job], error: str, events: list[JobEvent]
    ) -> list[RunningJob]:
        """End queued jobs now and ask running ones to stop; return the running ones.

        Every caller passes active jobs only, so nothing is ended twice.
        """
        stopping: list[RunningJob] = []
        for job in jobs:
            running = self._dispatcher.running(job.job_id)
            if running is None:
                self._end(job, JobStatus.CANCELLED, error=error)
                events.append(JobEvent(EventKind.STATUS, job))
            else:
                running.request_stop(StopReason.CANCEL, error)
                stopping.append(running)
        return stopping

    async def _cancel(self, jobs: list[Job]) -> list[str]:
        targets = {job.job_id: job for job in jobs if job.status.is_active}
        for job in list(targets.values()):
            for dependent in self._table.dependents(job.job_id):
                if dependent.status.is_active:
                    targets.setdefault(dependent.job_id, dependent)
        events: list[JobEvent] = []
        stopping = self._cancel_now(targets.values(), CANCELLED_ON_REQUEST, events)
        self._commit(events)
        await asyncio.gather(*(running.stop(StopReason.CANCEL) for running in stopping))
        await self.flush()
        asked = {running.job.job_id for running in stopping}
        return [
            job_id
            for job_id, job in targets.items()
            if job.status is JobStatus.CANCELLED or job_id in asked
        ]

    def _end(
        self,
        job: Job,
        status: JobStatus,
        *,
        error: str | None = None,
        exit_code: int | None = None,
        skipped: SkipReason | None = None,
    ) -> None:
        job.status = status
        job.held = False
        job.error = error
        job.exit_code = exit_code
        job.skipped = skipped
        job.finished_at = utc_now_iso()

    def _commit(self, events: list[JobEvent]) -> None:
        """Settle the table after a change, save it, wake the lanes, then deliver `events`."""
        announced = {event.job.job_id for event in events}
        while broken := broken_dependents(self._table):
            for job in broken:
                self._end(job, JobStatus.CANCELLED, error=prerequisite_error(job, self._table))
                events.append(JobEvent(EventKind.STATUS, job))
                announced.add(job.job_id)
        for job in refresh_held(self._table):
            if job.job_id not in announced:
                events.append(JobEvent(EventKind.STATUS, job))
        for job in prune(self._table, self._history_limit):
            self._table.remove(job.job_id)
        self._saver.request()
        self._dispatcher.wake()
        for event in events:
            self._hub.emit(event)

    def _prepare_save(self) -> tuple[dict[str, Any], AfterSave]:
        """Take the snapshot the saver writes, and what to do once it is stored."""
        state = stored_state(self._stored_forms.forms(self._table), self._builds.to_dict())
        settled = self._records.take()

        async def after(stored: bool) -> None:
            await self._records.after_save(settled, stored)

        return state, after
