"""Persistence of the job table: the store interface, a JSON file store, restore and pruning.

Owns: `JobStore` (load all / save all, atomic) and the layout of what it holds (`stored_state`,
`split_stored`), `FileJobStore` for use outside Home Assistant,
the stored form of a job (`stored_form`: what is written, and what the in-memory state is
compared with; `StoredForms` computes a job's form again only when the job changed), the
restore rules applied on start (`restore`), and history pruning (`prune`).

Restore trusts nothing it reads: whatever the store holds (any JSON, of any shape), it returns
the usable jobs and drops the rest, counted by reason (`DroppedJobs`), with one warning.

Stored output is bounded: an active job keeps its whole in-memory log (at most 2,000 lines),
a finished job keeps its last `STORED_TERMINAL_LINES` lines, the rest counted as elided.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
import json
import logging
from operator import attrgetter
import os
from pathlib import Path
import tempfile
from typing import Any, Final, Protocol

from .errors import InvalidRequestError
from .input_rules import is_configuration_file_name, validate_port
from .models import (
    Job,
    JobStatus,
    JobType,
    Lane,
    ProcessRecord,
    StoredJobError,
    recorded_process,
)
from .state import JobTable, Prerequisite, lane_for, prerequisite_error, prerequisite_state

_LOGGER = logging.getLogger(__name__)

STORED_TERMINAL_LINES: Final = 200
"""Lines of output a finished job keeps in storage."""
RESTART_MARKER: Final = "— restarted: this job was interrupted and runs again —"
"""Appended to the log of a job that was running when the engine stopped or died."""
COMPLETED_AWAY_MARKER: Final = "— completed while the engine was not running —"
"""Appended to the log of a job whose process completed on its own after the engine died."""
FILE_FORMAT_VERSION: Final = 1


JOBS_KEY: Final = "jobs"
BUILDS_KEY: Final = "builds"


class JobStore(Protocol):
    """Where the engine's state lives between runs: the job table and the build records."""

    async def load(self) -> Any:
        """Return what `save` last stored, or None if nothing is stored.

        The engine reads it with `split_stored`, which tolerates any shape.
        """

    async def save(self, state: dict[str, Any]) -> None:
        """Replace the stored state with `state` (`stored_state`'s layout): all or nothing."""


def stored_state(jobs: Any, builds: Any) -> dict[str, Any]:
    """Return the document a `JobStore` saves: the stored jobs and the build records."""
    return {JOBS_KEY: jobs, BUILDS_KEY: builds}


def split_stored(stored: Any) -> tuple[Any, Any]:
    """Return (job entries, build records) of what a store loaded, whatever its shape.

    A bare list is the first layout (jobs only). The job entries are passed on as stored:
    `restore` judges them and reports what it cannot use (a missing document gives None).
    """
    if isinstance(stored, Mapping):
        return stored.get(JOBS_KEY), stored.get(BUILDS_KEY)
    return stored, None


class FileJobStore:
    """A `JobStore` in one JSON file, replaced atomically (temp file, fsync, rename)."""

    def __init__(self, path: Path) -> None:
        """Store in `path`; its folder is created on the first save."""
        self.path = path

    async def load(self) -> dict[str, Any] | None:
        """Read the file in an executor; a missing or unreadable file gives None (logged)."""
        return await asyncio.get_running_loop().run_in_executor(None, self._read)

    async def save(self, state: dict[str, Any]) -> None:
        """Encode and write the file in an executor (`state` must not change meanwhile)."""
        await asyncio.get_running_loop().run_in_executor(None, self._write, state)

    def _read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError as err:
            _LOGGER.warning("Ignoring the unreadable job file %s: %s", self.path, err)
            return None
        if not isinstance(data, dict) or not isinstance(data.get(JOBS_KEY), list):
            _LOGGER.warning("Ignoring the job file %s: it holds no job list", self.path)
            return None
        return stored_state(data[JOBS_KEY], data.get(BUILDS_KEY))

    def _write(self, state: dict[str, Any]) -> None:
        text = json.dumps({"version": FILE_FORMAT_VERSION, **state}, ensure_ascii=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as temp:
                temp.write(text)
                temp.flush()
                os.fsync(temp.fileno())
            Path(temp_name).replace(self.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise


def stored_form(job: Job) -> dict[str, Any]:
    """Return the JSON form of `job` as stored (finished jobs keep a shorter log)."""
    data = job.to_dict()
    if job.is_terminal and len(job.output.lines) > STORED_TERMINAL_LINES:
        lines = list(job.output.lines)
        dropped = len(lines) - STORED_TERMINAL_LINES
        data["output"] = {
            "lines": lines[dropped:],
            "elided": job.output.elided + dropped,
        }
    return data


class StoredForms:
    """The stored forms of a table's jobs, each computed again only when its job changed.

    A save runs after every change of the table, and a bulk of 500 devices keeps a thousand
    jobs active for minutes. Without this, every save re-encoded every job: its cost grew with
    the table, and the thousands of new dicts and lists of each snapshot lived until the next
    save, long enough for Python's young collections to move them into the old generation,
    which brought the next full collection (a pause of the whole loop) nearer. A finished
    job's form, and a queued job's, never change again until the job does.
    """

    __slots__ = ("_forms",)

    def __init__(self) -> None:
        """Start with nothing cached."""
        self._forms: dict[str, tuple[Job, tuple[object, ...], dict[str, Any]]] = {}

    def forms(self, jobs: Iterable[Job]) -> list[dict[str, Any]]:
        """Return the stored form of each job, in order; forget jobs that are gone."""
        forms: list[dict[str, Any]] = []
        cached: dict[str, tuple[Job, tuple[object, ...], dict[str, Any]]] = {}
        for job in jobs:
            key = _form_key(job)
            entry = self._forms.get(job.job_id)
            if entry is None or entry[0] is not job or entry[1] != key:
                entry = (job, key, stored_form(job))
            cached[job.job_id] = entry
            forms.append(entry[2])
        self._forms = cached
        return forms


_JOB_FIELDS: Final = attrgetter(*(item.name for item in fields(Job) if item.name != "output"))
"""Every field of a job but its log, as a tuple (each holds a value that is replaced, never
changed in place: strings, numbers, enums, a frozen `ProcessRecord`)."""


def _form_key(job: Job) -> tuple[object, ...]:
    """Return what a job's stored form is made of, cheaply comparable with an earlier key.

    The log only grows at its end, drops its oldest lines (counted in `elided`) or redraws its
    last line, so its length, `elided` and last line tell whether it changed.
    """
    lines = job.output.lines
    return (_JOB_FIELDS(job), job.output.elided, len(lines), lines[-1] if lines else None)


@dataclass(slots=True)
class DroppedJobs:
    """Stored entries `restore` could not use: how many, and why (reason: count)."""

    reasons: dict[str, int] = field(default_factory=dict)
    """Each reason is a short phrase without any stored value, so equal damage groups."""

    @property
    def count(self) -> int:
        """Return how many entries were dropped."""
        return sum(self.reasons.values())

    def add(self, reason: str) -> None:
        """Count one more entry dropped for `reason`."""
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def summary(self) -> str:
        """Return the reasons in one line, the most frequent first: `'lane' is missing (2); ...`."""
        ordered = sorted(self.reasons.items(), key=lambda item: (-item[1], item[0]))
        return "; ".join(f"{reason} ({count})" for reason, count in ordered)


NOT_A_LIST: Final = "the stored jobs are not a list"


@dataclass(kw_only=True, slots=True)
class Restored:
    """The outcome of `restore`: the jobs to keep, the sessions to reap first, what was dropped."""

    jobs: list[Job] = field(default_factory=list)
    leftovers: dict[str, ProcessRecord] = field(default_factory=dict)
    """Process sessions recorded by stored entries (by job id) that may still be running:
    every one `recorded_sessions` finds, including those of entries that were dropped."""
    dropped: DroppedJobs = field(default_factory=DroppedJobs)
    """Entries that were not usable jobs (the Home Assistant layer raises a repair issue)."""


def recorded_sessions(entries: object) -> dict[str, ProcessRecord]:
    """Return the process sessions stored jobs recorded (by job id): leftovers to reap first.

    Tolerant: `entries` may be anything; an entry counts when its job id and process record
    can be read, even if the rest of it is too damaged to restore (its process may still run).
    The first record of an id wins.
    """
    sessions: dict[str, ProcessRecord] = {}
    if not isinstance(entries, list):
        return sessions
    for entry in entries:
        found = recorded_process(entry)
        if found is not None:
            sessions.setdefault(*found)
    return sessions


def restore(
    entries: object,
    *,
    finished_at: str,
    exit_codes: Mapping[str, int] | None = None,
) -> Restored:
    """Rebuild the job table from stored entries, in two passes. Never raises on their content.

    `entries` is what the store held: normally a list of stored jobs, but anything is accepted.
    Pass 1: parse each entry; one that is not a usable job (see `Job.from_dict`, and
    `_usable`: a configuration file name, a lane that fits its type, a valid upload port, a
    unique id) is dropped and counted in `dropped`. A job that was running and whose process
    completed on its own meanwhile (exit status 0 in `exit_codes`) ends completed, so it never
    runs twice; any other job that was running goes back to queued, keeping its log plus
    `RESTART_MARKER`. Every recorded process session becomes a leftover to reap before
    anything runs again.
    Pass 2, in creation order: a queued job whose prerequisite is still active is held (only
    uploads are ever held); one whose prerequisite completed is released; one whose
    prerequisite is missing, failed, cancelled, or not older than itself (a stored prerequisite
    always comes first) is cancelled with an error (stamped `finished_at`).
    One warning names how many entries were dropped and why.
    """
    restored = Restored()
    if entries is None:
        entries = []
    elif not isinstance(entries, list):
        restored.dropped.add(NOT_A_LIST)
        entries = []
    restored.leftovers = recorded_sessions(entries)
    seen: set[str] = set()
    for entry in entries:
        try:
            job = Job.from_dict(entry)
            _usable(job, seen)
        except StoredJobError as err:
            restored.dropped.add(err.reason)
            continue
        seen.add(job.job_id)
        job.process = None
        if job.status is JobStatus.RUNNING:
            # Only a clean exit counts: a leftover that failed may have died of the engine's
            # death itself (its output pipe broke), so the job runs again.
            if (exit_codes or {}).get(job.job_id) == 0:
                _completed_away(job, finished_at)
            else:
                job.status = JobStatus.QUEUED
                job.started_at = None
                job.progress = None
                job.output.append(RESTART_MARKER)
        restored.jobs.append(job)
    _settle_prerequisites(restored.jobs, finished_at)
    if restored.dropped.count:
        _LOGGER.warning(
            "Dropped %d stored job entries that are not usable jobs: %s",
            restored.dropped.count,
            restored.dropped.summary(),
        )
    return restored


def _usable(job: Job, seen: set[str]) -> None:
    """Raise StoredJobError unless `job` obeys the rules a parsed job alone cannot show."""
    if job.job_id in seen:
        raise StoredJobError("duplicate job id")
    if job.job_type is JobType.RESET_BUILD_ENV:
        if job.configuration:
            raise StoredJobError("a reset names a configuration")
    elif not is_configuration_file_name(job.configuration):
        raise StoredJobError("'configuration' is not a configuration file name")
    # A compile may also have been claimed by a build peer (the remote lane).
    if job.lane is not lane_for(job.job_type) and not (
        job.job_type is JobType.COMPILE and job.lane is Lane.REMOTE
    ):
        raise StoredJobError("'lane' does not fit the job type")
    if job.job_type is JobType.UPLOAD and job.port is not None:
        try:
            valid = validate_port(job.port) == job.port
        except InvalidRequestError:
            valid = False
        if not valid:
            raise StoredJobError("'port' is not a valid upload port")


def _settle_prerequisites(jobs: list[Job], finished_at: str) -> None:
    """Pass 2 of `restore`: hold, release or cancel queued jobs by their prerequisite."""
    # The table grows in creation order, so a prerequisite must be older than its dependent:
    # no cycle can keep jobs waiting for each other forever.
    table = JobTable()
    for job in jobs:
        if job.status is JobStatus.QUEUED:
            state = prerequisite_state(job, table)
            if state is Prerequisite.BROKEN:
                job.status = JobStatus.CANCELLED
                job.held = False
                job.error = prerequisite_error(job, table)
                job.finished_at = finished_at
            else:
                # Only uploads are ever held (a reset is held only while it is being placed).
                job.held = job.job_type is JobType.UPLOAD and state is Prerequisite.PENDING
        else:
            job.held = False
        table.add(job)


def prune(jobs: Iterable[Job], history_limit: int) -> list[Job]:
    """Return the jobs to drop from history (the input is in creation order).

    Kept: every active job; every finished job an active job depends on; the newest finished
    job per (configuration, job_type); then the newest other finished jobs while the number of
    finished jobs stays within `history_limit`. The per-(configuration, job_type) guarantee
    wins over the cap when both cannot hold.
    """
    ordered = list(jobs)
    needed = {job.depends_on for job in ordered if job.status.is_active and job.depends_on}
    keep: set[str] = set()
    newest_seen: set[tuple[str, JobType]] = set()
    for job in reversed(ordered):
        if (
            job.status.is_active
            or job.job_id in needed
            or (job.configuration, job.job_type) not in newest_seen
        ):
            keep.add(job.job_id)
        if job.is_terminal:
            newest_seen.add((job.configuration, job.job_type))
    room = history_limit - sum(1 for job in ordered if job.is_terminal and job.job_id in keep)
    for job in reversed(ordered):
        if room <= 0:
            break
        if job.job_id not in keep:
            keep.add(job.job_id)
            room -= 1
    return [job for job in ordered if job.job_id not in keep]


def _completed_away(job: Job, finished_at: str) -> None:
    """End a job whose process completed on its own while no engine was running."""
    job.status = JobStatus.COMPLETED
    job.exit_code = 0
    job.error = None
    job.held = False
    job.finished_at = finished_at
    job.output.append(COMPLETED_AWAY_MARKER)
