"""The firmware engine: the public API of the two-lane job queue.

Owns: `FirmwareEngine` (install, compile, upload, clean, reset, cancel, queries, events,
load/run/stop) and every change to the job table. Each change is made synchronously (no
`await` in the middle), then the table is settled (cascades, `held` flags, pruning), saved,
the lanes are woken, and the events go out. The rules themselves live in `state.py`; running
processes in `lanes.py`; storage and restore rules in `persistence.py`.

`jobs()` lists jobs in creation order, oldest first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
import logging
from pathlib import Path
from typing import Final

from .errors import EngineStoppedError, InvalidRequestError, ResetFailedError, UnknownJobError
from .esphome_cli import EsphomeCli, validate_configuration_name, validate_port
from .events import EventHub, EventKind, JobEvent, JobListener
from .exit_record import (
    discard_exit_records,
    exit_record_path,
    read_exit_record,
    with_exit_record,
)
from .lanes import Outcome, RunningJob, StopReason, lane_worker
from .models import Job, JobStatus, JobType, Lane, ProcessRecord, QueueStatus, utc_now_iso
from .persistence import (
    RESTART_MARKER,
    JobStore,
    prune,
    recorded_sessions,
    restore,
    stored_form,
)
from .runner import reap_leftovers
from .state import (
    JobTable,
    broken_dependents,
    lane_for,
    next_compile_lane_job,
    next_upload_job,
    prerequisite_error,
    refresh_held,
    superseded_by,
)

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT: Final = "OTA"
EXIT_RECORD_DIR: Final = Path(".esphome", "esphome_pipeline")
"""Where, under the configuration folder, jobs leave their exit records (exit_record.py)."""
CANCELLED_ON_REQUEST: Final = "Cancelled on request"
CANCELLED_BY_RESET: Final = "Cancelled by a reset of the build environment"
LEFTOVER_SURVIVED: Final = "Not run again: processes of its interrupted run could not be stopped"


def _superseded_error(configuration: str) -> str:
    return f"Cancelled: a newer job for {configuration} replaced it"


@dataclass(frozen=True, slots=True)
class InstallChain:
    """The two jobs of one install: the compile and the upload that depends on it."""

    compile: Job
    upload: Job


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
    ) -> None:
        """Create an idle engine; nothing runs and nothing is read until `load`/`run`."""
        if compile_workers < 1 or upload_slots < 1 or history_limit < 0:
            raise ValueError(
                "compile_workers and upload_slots must be at least 1, history_limit at least 0"
            )
        self._config_dir = config_dir
        self._exit_dir = config_dir / EXIT_RECORD_DIR
        # Jobs whose outcome is known: their exit records go once the store holds it.
        self._settled_records: set[str] = set()
        self._cli = cli
        self._store = store
        self._compile_workers = compile_workers
        self._upload_slots = upload_slots
        self._history_limit = history_limit
        self._table = JobTable()
        self._hub = EventHub()
        self._running: dict[str, RunningJob] = {}
        self._wakeups = {Lane.COMPILE: asyncio.Event(), Lane.UPLOAD: asyncio.Event()}
        self._environment: dict[str, str] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._loaded = False
        self._loading: asyncio.Future[None] | None = None
        self._stopping = False
        self._stop_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        # Saving: every change bumps the revision; one save task writes the newest snapshot.
        self._revision = 0
        self._saved_revision = 0
        self._save_task: asyncio.Task[None] | None = None
        self._save_waiters: list[tuple[int, asyncio.Future[None]]] = []

    # ----------------------------------------------------------------- properties, queries

    @property
    def config_dir(self) -> Path:
        """The ESPHome configuration folder the CLI runs in."""
        return self._config_dir

    @property
    def compile_workers(self) -> int:
        """How many compile-lane jobs may run at once."""
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

    def queue_status(self) -> QueueStatus:
        """Return what runs on each lane and how many jobs wait."""
        return QueueStatus(
            compile_running=tuple(job.job_id for job in self._table.running(Lane.COMPILE)),
            upload_running=tuple(job.job_id for job in self._table.running(Lane.UPLOAD)),
            queue_depth=sum(1 for job in self._table if job.status is JobStatus.QUEUED),
        )

    def subscribe(self, callback: JobListener) -> Callable[[], None]:
        """Call `callback(JobEvent)` in the loop for every event; return the unsubscriber."""
        return self._hub.subscribe(callback)

    # ------------------------------------------------------------------------- requests

    async def install(
        self,
        configurations: Sequence[str],
        *,
        port: str = DEFAULT_PORT,
        force: bool = False,
        fingerprints: Mapping[str, str] | None = None,
    ) -> list[InstallChain]:
        """Queue a compile and a dependent upload per configuration (one chain each)."""
        await self._ready()
        names = _validated_names(configurations)
        port = validate_port(port)
        labels = dict(fingerprints or {})
        chains: list[InstallChain] = []
        for name in names:
            compile_job = _new_job(name, JobType.COMPILE, force=force, fingerprint=labels.get(name))
            upload_job = _new_job(
                name,
                JobType.UPLOAD,
                port=port,
                depends_on=compile_job.job_id,
                held=True,
                fingerprint=labels.get(name),
            )
            chains.append(InstallChain(compile_job, upload_job))
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
        labels = dict(fingerprints or {})
        jobs = [
            _new_job(name, JobType.COMPILE, force=force, fingerprint=labels.get(name))
            for name in _validated_names(configurations)
        ]
        self._place(jobs)
        await self.flush()
        return jobs

    async def upload(self, configurations: Sequence[str], *, port: str = DEFAULT_PORT) -> list[Job]:
        """Queue an upload of the current build per configuration."""
        await self._ready()
        names = _validated_names(configurations)
        port = validate_port(port)
        jobs = [_new_job(name, JobType.UPLOAD, port=port) for name in names]
        self._place(jobs)
        await self.flush()
        return jobs

    async def clean(self, configurations: Sequence[str]) -> list[Job]:
        """Cancel each configuration's active jobs, then queue `clean` for it.

        Returns once the process trees of the cancelled jobs are gone (like a reset), so no
        upload of these configurations runs any more when it returns.
        """
        await self._ready()
        jobs = [_new_job(name, JobType.CLEAN) for name in _validated_names(configurations)]
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
        job = _new_job("", JobType.RESET_BUILD_ENV)
        # Held until the trees it cancels are confirmed dead, so it cannot start early.
        job.held = True
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
        if self._loading is not None:
            await asyncio.shield(self._loading)
        job = self._table.get(job_id)
        if job is None:
            raise UnknownJobError(f"No job has the id {job_id!r}", job_id=str(job_id))
        if job.is_terminal:
            return []
        return await self._cancel([job])

    async def cancel_configurations(self, configurations: Sequence[str]) -> list[str]:
        """Cancel every active job of these configurations; return the ids cancelled."""
        names = set(_validated_names(configurations))
        if self._loading is not None:
            await asyncio.shield(self._loading)
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
            await self._restore()
        finally:
            self._loading.set_result(None)
            self._loading = None

    async def _restore(self) -> None:
        entries = await self._store.load() or []
        # Reap first, then read the exit records: a record found after the session is gone
        # can only come from a process that finished on its own, never from one we stopped.
        records = list(recorded_sessions(entries).items())
        results = await asyncio.gather(*(reap_leftovers(record) for _, record in records))
        survivors = {job_id for (job_id, _), dead in zip(records, results, strict=True) if not dead}
        exit_codes = await asyncio.get_running_loop().run_in_executor(
            None, self._read_exit_records, [job_id for job_id, _ in records]
        )
        restored = restore(entries, finished_at=utc_now_iso(), exit_codes=exit_codes)
        for job in restored.jobs:
            if job.job_id in survivors:
                _LOGGER.warning(
                    "Processes of job %s (session %s) from an earlier run could not be stopped",
                    job.job_id,
                    restored.leftovers[job.job_id].pid,
                )
                if job.status.is_active:
                    # Running it again would put two processes on one configuration.
                    self._end(job, JobStatus.FAILED, error=LEFTOVER_SURVIVED)
        for job in restored.jobs:
            self._table.add(job)
        self._commit([])
        await self.flush()
        await asyncio.get_running_loop().run_in_executor(None, discard_exit_records, self._exit_dir)

    def _discard_settled_records(self, job_ids: set[str]) -> None:
        """Delete the exit records of jobs the store now shows finished or queued. Blocking."""
        for job_id in job_ids:
            exit_record_path(self._exit_dir, job_id).unlink(missing_ok=True)

    def _read_exit_records(self, job_ids: list[str]) -> dict[str, int]:
        """Return the exit status each job's process recorded, for those that did. Blocking."""
        codes = {
            job_id: read_exit_record(exit_record_path(self._exit_dir, job_id)) for job_id in job_ids
        }
        return {job_id: code for job_id, code in codes.items() if code is not None}

    async def run(self) -> None:
        """Run every lane worker until `stop()` (or until this task is cancelled)."""
        if self._workers or self._stopping:
            raise RuntimeError("the engine runs once")
        loop = asyncio.get_running_loop()
        lanes = [Lane.COMPILE] * self._compile_workers + [Lane.UPLOAD] * self._upload_slots
        view = _LaneView(self)
        self._workers = [
            loop.create_task(lane_worker(lane, view, self._wakeups[lane]), name=f"{lane} lane")
            for lane in lanes
        ]
        try:
            await self._stopped.wait()
        finally:
            # Also when this task is cancelled: no process tree may outlive the engine.
            await self.stop()

    async def stop(self) -> None:
        """Stop the lanes; running jobs are terminated and stored as queued. Idempotent."""
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self._shutdown())
        await asyncio.shield(self._stop_task)

    async def flush(self) -> None:
        """Wait until the store holds every change made so far."""
        target = self._revision
        if self._saved_revision >= target:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._save_waiters.append((target, waiter))
        await waiter

    async def _shutdown(self) -> None:
        self._stopping = True
        stopping = list(self._running.values())
        await asyncio.gather(*(running.stop(StopReason.SHUTDOWN) for running in stopping))
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        await self.flush()
        self._stopped.set()

    # ------------------------------------------- what the lane workers call (_LaneView)

    def _claim(self, lane: Lane) -> RunningJob | None:
        """Mark the next runnable job of `lane` running and return it (None: nothing to do)."""
        if self._stopping:
            return None
        if lane is Lane.COMPILE:
            job = next_compile_lane_job(self._table, self._compile_workers)
        else:
            job = next_upload_job(self._table, self._upload_slots)
        if job is None:
            return None
        job.status = JobStatus.RUNNING
        job.started_at = utc_now_iso()
        job.held = False
        running = RunningJob(job)
        self._running[job.job_id] = running
        self._commit([JobEvent(EventKind.STATUS, job)])
        return running

    def _argv(self, job: Job) -> list[str]:
        """Return the command line of `job`, wrapped to leave an exit record."""
        return with_exit_record(
            self._cli.argv(job, self._config_dir), exit_record_path(self._exit_dir, job.job_id)
        )

    def _environment_for_jobs(self) -> dict[str, str]:
        """Return the child environment (computed once)."""
        if self._environment is None:
            self._environment = self._cli.environment()
        return self._environment

    def _process_started(self, job: Job, record: ProcessRecord) -> None:
        """Store the process session of a running job, so a restart can reap leftovers."""
        job.process = record
        self._request_save()

    def _output(self, job: Job, line: str, replaces_previous: bool) -> None:
        """Add a line to a job's log and announce it (output alone does not trigger a save)."""
        job.output.append(line, replace_last=replaces_previous)
        self._hub.emit(JobEvent(EventKind.OUTPUT, job, line))

    def _progress(self, job: Job, value: int) -> None:
        """Record and announce a job's new, higher progress."""
        job.progress = value
        self._hub.emit(JobEvent(EventKind.PROGRESS, job))

    def _finish(self, running: RunningJob, outcome: Outcome) -> None:
        """Apply a run's outcome: release the slot, settle, save, wake the lanes, announce."""
        job = running.job
        del self._running[job.job_id]
        self._settled_records.add(job.job_id)
        if outcome.status is JobStatus.QUEUED:
            job.status = JobStatus.QUEUED
            job.started_at = None
            job.progress = None
            job.output.append(RESTART_MARKER)
        else:
            self._end(job, outcome.status, error=outcome.error, exit_code=outcome.exit_code)
        if outcome.tree_dead:
            job.process = None
        self._commit([JobEvent(EventKind.STATUS, job)])
        running.finished.set_result(None)

    # -------------------------------------------------------------------------- changes

    async def _ready(self) -> None:
        """Wait for a `load()` in progress (restored jobs come first), refuse when stopped."""
        if self._loading is not None:
            await asyncio.shield(self._loading)
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
            running = self._running.get(job.job_id)
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
    ) -> None:
        job.status = status
        job.held = False
        job.error = error
        job.exit_code = exit_code
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
        self._request_save()
        for wakeup in self._wakeups.values():
            wakeup.set()
        for event in events:
            self._hub.emit(event)

    def _request_save(self) -> None:
        self._revision += 1
        if self._save_task is None or self._save_task.done():
            self._save_task = asyncio.get_running_loop().create_task(
                self._save_pending(), name="save firmware jobs"
            )

    async def _save_pending(self) -> None:
        while self._saved_revision < self._revision:
            # Let the lane workers woken by the same change claim their jobs first: the
            # snapshot below takes the loop for a moment, a hand-off should not wait for it.
            await asyncio.sleep(0)
            revision = self._revision
            snapshot = [stored_form(job) for job in self._table]
            settled, self._settled_records = self._settled_records, set()
            try:
                await self._store.save(snapshot)
            except Exception:
                _LOGGER.exception("Could not save the firmware job queue")
                # Keep the records: the store may still say these jobs are running.
                self._settled_records |= settled
            else:
                if settled:
                    await asyncio.get_running_loop().run_in_executor(
                        None, self._discard_settled_records, settled
                    )
            self._saved_revision = revision
            waiting = self._save_waiters
            self._save_waiters = []
            for target, waiter in waiting:
                if target > revision:
                    self._save_waiters.append((target, waiter))
                elif not waiter.done():
                    waiter.set_result(None)


class _LaneView:
    """The engine as its lane workers see it (`LaneHost`), kept off the public API."""

    __slots__ = ("_engine",)

    def __init__(self, engine: FirmwareEngine) -> None:
        self._engine = engine

    @property
    def config_dir(self) -> Path:
        return self._engine.config_dir

    def claim(self, lane: Lane) -> RunningJob | None:
        return self._engine._claim(lane)

    def argv(self, job: Job) -> list[str]:
        return self._engine._argv(job)

    def environment(self) -> dict[str, str]:
        return self._engine._environment_for_jobs()

    def process_started(self, job: Job, record: ProcessRecord) -> None:
        self._engine._process_started(job, record)

    def output(self, job: Job, line: str, replaces_previous: bool) -> None:
        self._engine._output(job, line, replaces_previous)

    def progress(self, job: Job, value: int) -> None:
        self._engine._progress(job, value)

    def finish(self, running: RunningJob, outcome: Outcome) -> None:
        self._engine._finish(running, outcome)


def _validated_names(configurations: Sequence[str]) -> list[str]:
    """Validate every name before anything is queued; drop repeats, keep the order."""
    if isinstance(configurations, str):
        raise InvalidRequestError("configurations must be a list of names, not one string")
    names = [validate_configuration_name(name) for name in configurations]
    if not names:
        raise InvalidRequestError("No configuration given")
    return list(dict.fromkeys(names))


def _new_job(
    configuration: str,
    job_type: JobType,
    *,
    port: str | None = None,
    depends_on: str | None = None,
    held: bool = False,
    force: bool = False,
    fingerprint: str | None = None,
) -> Job:
    return Job(
        configuration=configuration,
        job_type=job_type,
        lane=lane_for(job_type),
        port=port,
        depends_on=depends_on,
        held=held,
        force=force,
        fingerprint=fingerprint,
    )
