"""Persistence of the job table: the store interface, a JSON file store, restore and pruning.

Owns: `JobStore` (load all / save all, atomic) and the layout of what it holds (`stored_state`,
`split_stored`), `FileJobStore` for use outside Home Assistant,
the stored form of a job (`stored_form`: what is written, and what the in-memory state is
compared with), the restore rules applied on start (`restore`), and history pruning (`prune`).

Stored output is bounded: an active job keeps its whole in-memory log (at most 2,000 lines),
a finished job keeps its last `STORED_TERMINAL_LINES` lines, the rest counted as elided.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
import json
import logging
import os
from pathlib import Path
import tempfile
from typing import Any, Final, Protocol

from .models import Job, JobStatus, JobType, ProcessRecord
from .state import JobTable, Prerequisite, prerequisite_error, prerequisite_state

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


def stored_state(jobs: list[Any], builds: Any) -> dict[str, Any]:
    """Return the document a `JobStore` saves: the stored jobs and the build records."""
    return {JOBS_KEY: jobs, BUILDS_KEY: builds}


def split_stored(stored: Any) -> tuple[list[Any], Any]:
    """Return (job entries, build records) of what a store loaded, whatever its shape.

    A bare list is the first layout (jobs only); anything unusable gives no entries.
    """
    if isinstance(stored, list):
        return stored, None
    if isinstance(stored, Mapping):
        jobs = stored.get(JOBS_KEY)
        return (jobs if isinstance(jobs, list) else []), stored.get(BUILDS_KEY)
    return [], None


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


@dataclass(kw_only=True, slots=True)
class Restored:
    """The outcome of `restore`: the jobs to keep and the process sessions to reap first."""

    jobs: list[Job] = field(default_factory=list)
    leftovers: dict[str, ProcessRecord] = field(default_factory=dict)
    """Process sessions recorded by the jobs (by job id) that may still be running."""


def recorded_sessions(entries: Iterable[Any]) -> dict[str, ProcessRecord]:
    """Return the process sessions stored jobs recorded (by job id): leftovers to reap first.

    Tolerant: entries that are not valid jobs are ignored here (`restore` reports them).
    """
    sessions: dict[str, ProcessRecord] = {}
    for entry in entries:
        try:
            job = Job.from_dict(entry)
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
        if job.process is not None:
            sessions.setdefault(job.job_id, job.process)
    return sessions


def restore(
    entries: Iterable[Any],
    *,
    finished_at: str,
    exit_codes: Mapping[str, int] | None = None,
) -> Restored:
    """Rebuild the job table from stored entries, in two passes.

    Pass 1: parse each entry (a corrupt one is skipped with a warning). A job that was running
    and whose process completed on its own meanwhile (exit status 0 in `exit_codes`) ends
    completed, so it never runs twice; any other job that was running goes back to queued,
    keeping its log plus `RESTART_MARKER`. Every recorded process session becomes a
    leftover to reap before anything runs again.
    Pass 2: a queued job whose prerequisite is still active is held; one whose prerequisite
    completed is released; one whose prerequisite is missing, failed or cancelled is cancelled
    with an error (stamped `finished_at`).
    """
    restored = Restored()
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            _LOGGER.warning("Skipping stored job #%d: not an object", index)
            continue
        try:
            job = Job.from_dict(entry)
        except (KeyError, TypeError, ValueError) as err:
            _LOGGER.warning("Skipping stored job #%d: it is not a valid job (%s)", index, err)
            continue
        if job.job_id in seen:
            _LOGGER.warning("Skipping stored job #%d: duplicate job id %s", index, job.job_id)
            continue
        seen.add(job.job_id)
        if job.process is not None:
            restored.leftovers[job.job_id] = job.process
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

    table = JobTable(restored.jobs)
    for job in restored.jobs:
        if job.status is not JobStatus.QUEUED:
            continue
        state = prerequisite_state(job, table)
        if state is Prerequisite.BROKEN:
            job.status = JobStatus.CANCELLED
            job.held = False
            job.error = prerequisite_error(job, table)
            job.finished_at = finished_at
        elif job.job_type is JobType.UPLOAD:
            job.held = state is Prerequisite.PENDING
        else:
            # Only uploads are ever held (a reset is held only while it is being placed).
            job.held = False
    return restored


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
