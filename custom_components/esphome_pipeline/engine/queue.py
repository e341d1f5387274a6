"""The job queue: the requests and the single writer of the job table.

Owns: `JobQueue` (install, compile, upload, clean, reset, cancel, and the dispatcher's hooks)
and every change to the job table; `FirmwareEngine` (`firmware.py`) builds on it. Each change
is made synchronously (no `await` in the middle), then `_commit` settles the table
(cascades, `held` flags, pruning), asks for a save, wakes the workers, and delivers the
events. Everything else has a room of
its own: the rules (`state.py`), new jobs (`job_factory.py`), the workers and the skip step
(`dispatcher.py`), how work is done (`executors.py`), saving (`saver.py`), crash recovery
(`recovery.py`), build records and skip decisions (`skip.py`), slow subscribers
(`streams.py`), the field changes of each transition (`transitions.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping, Sequence
import logging
from pathlib import Path
from typing import Any, Final

from .dispatcher import Dispatcher, TableHooks
from .errors import EngineStoppedError, ResetFailedError, UnknownJobError, shown
from .esphome_cli import EsphomeCli
from .events import EventHub, EventKind, JobEvent, JobReporter
from .executors import Executor, LocalExecutor
from .input_rules import OTA_PORT, validate_port
from .job_factory import InstallChain, install_chains, new_job, validated_names
from .lanes import Outcome, RunningJob, StopReason
from .models import Job, JobStatus, JobType, Lane
from .offline_watch import OfflineWatch
from .persistence import DroppedJobs, JobStore, StoredForms, prune, stored_state
from .recovery import ExitRecordKeeper
from .routing import Routing, wait_reason
from .saver import AfterSave, CoalescingSaver
from .serial_executor import serial_uploads
from .skip import BuildLedger, BuildRecord, SkipCheck
from .state import (
    JobTable,
    Slot,
    broken_dependents,
    next_job,
    prerequisite_error,
    refresh_held,
    superseded_by,
    waiting_for_device,
)
from .transitions import (
    CANCELLED_BY_RESET,
    CANCELLED_ON_REQUEST,
    RESET_WITHDRAWN,
    apply_outcome,
    end,
    mark_running,
    superseded_error,
)
from .upload_proof import NetworkUploads, ProvenUpload

__all__ = ["InstallChain", "JobQueue"]

_LOGGER = logging.getLogger(__name__)

EXIT_RECORD_DIR: Final = Path(".esphome", "esphome_pipeline")
"""Where, under the configuration folder, jobs leave their exit records (exit_record.py)."""


class JobQueue:
    """The job table and every change to it; `FirmwareEngine` adds the life cycle and queries.

    Requests (`install`, `compile`, ...) may come before the workers run: their jobs wait.
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
        network_uploads: NetworkUploads | None = None,
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
        # The upload slots' executor: serial uploads of ESP32 builds go through esptool
        # (serial_executor.py); network uploads are proven (upload_proof.py), and the uploads it
        # finds offline are watched until their device answers (offline_watch.py); all else
        # runs the CLI.
        uploads = network_uploads or NetworkUploads()
        self._uploads: Executor = serial_uploads(
            ProvenUpload(self._local, config_dir, uploads, exit_dir=self._exit_dir), config_dir
        )
        self._offline = OfflineWatch(
            config_dir, uploads, lambda: waiting_for_device(self._table), self._release_devices
        )
        self._dispatcher = Dispatcher(
            TableHooks(
                pick=lambda slot, capacity: next_job(self._table, slot, capacity, self._routing),
                start=self._start_job,
                settle=self._settle_job,
                last_build=self.last_build,
            ),
            JobReporter(self._hub, self._saver.request),
            skip_checks=skip_checks,
        )
        self._peers: dict[str, Executor] = {}
        self._routing = Routing()
        self._waiting: dict[str, str] = {}
        """Queued compiles whose log already says why they wait (job id -> reason)."""
        self.dropped = DroppedJobs()
        """What `load()` could not use of the stored jobs (none, usually)."""
        self._running = False
        self._loaded = False
        self._loading: asyncio.Future[None] | None = None
        self._stopping = False
        self._stop_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    # ------------------------------------------------------------------------ requests

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
            end(
                job,
                JobStatus.CANCELLED,
                error=RESET_WITHDRAWN,
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

    # ----------------------------------------------- what the dispatcher calls (hooks)

    def _start_job(self, job: Job, slot: Slot) -> None:
        """Mark a job the dispatcher claimed as running on `slot`."""
        mark_running(job, slot)
        self._commit([JobEvent(EventKind.STATUS, job)])

    def _settle_job(self, job: Job, outcome: Outcome) -> None:
        """Apply a run's outcome (the dispatcher has released the job's place already)."""
        self._records.settled(job.job_id)
        apply_outcome(job, outcome)
        if job.is_terminal:
            self._builds.observe(job)
        self._commit([JobEvent(EventKind.STATUS, job)])
        if outcome.device_offline:
            self._offline.watch()

    def _release_devices(self, job_ids: Collection[str]) -> list[str]:
        """Let these uploads held "device offline" run (those still waiting); return them."""
        released = [job for job in waiting_for_device(self._table) if job.job_id in job_ids]
        for job in released:
            job.waiting_for_device = False
        if released:
            self._commit([])
        return [job.job_id for job in released]

    def last_build(self, configuration: str) -> BuildRecord | None:
        """Return the configuration's last successful build, or None."""
        return self._builds.get(configuration)

    # ------------------------------------------------------------------------- changes

    async def flush(self) -> None:
        """Wait until the store holds every change made so far."""
        await self._saver.flush()

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
            stopping += self._cancel_now(victims, superseded_error(configuration), events)
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
                end(job, JobStatus.CANCELLED, error=error)
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

    def _commit(self, events: list[JobEvent]) -> None:
        """Settle the table after a change, save it, wake the lanes, then deliver `events`."""
        announced = {event.job.job_id for event in events}
        while broken := broken_dependents(self._table):
            for job in broken:
                end(job, JobStatus.CANCELLED, error=prerequisite_error(job, self._table))
                events.append(JobEvent(EventKind.STATUS, job))
                announced.add(job.job_id)
        for job in refresh_held(self._table):
            if job.job_id not in announced:
                events.append(JobEvent(EventKind.STATUS, job))
        for job in prune(self._table, self._history_limit):
            self._table.remove(job.job_id)
        events += self._note_waiting()
        self._saver.request()
        self._dispatcher.wake()
        for event in events:
            self._hub.emit(event)

    def _note_waiting(self) -> list[JobEvent]:
        """Write once into each queued compile's log why no slot may take it (routing)."""
        noted: list[JobEvent] = []
        waiting: dict[str, str] = {}
        for job in self._table.queued(Lane.COMPILE):
            reason = wait_reason(job, self._routing)
            if reason is None:
                continue
            waiting[job.job_id] = reason
            if self._waiting.get(job.job_id) != reason:
                job.output.append(reason)
                noted.append(JobEvent(EventKind.OUTPUT, job, reason))
        self._waiting = waiting
        return noted

    def _prepare_save(self) -> tuple[dict[str, Any], AfterSave]:
        """Take the snapshot the saver writes, and what to do once it is stored."""
        state = stored_state(self._stored_forms.forms(self._table), self._builds.to_dict())
        settled = self._records.take()

        async def after(stored: bool) -> None:
            await self._records.after_save(settled, stored)

        return state, after
