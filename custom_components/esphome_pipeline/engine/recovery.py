"""Crash recovery: bring back the stored queue safely after a restart or a killed run.

Owns: the start-up sequence (reap the leftovers of recorded process sessions, then read the
exit records, then restore the table in two passes) and `ExitRecordKeeper`, which deletes a
job's exit record once the store holds the job's outcome.

Order matters: a record read after its session is gone can only come from a process that
finished on its own, never from one we stopped. And an upload that was running when the
previous run died is first given time to finish on its own (its job wrapper outlives Home
Assistant, at most `LEFTOVER_UPLOAD_WAIT` seconds): stopping it mid-flash could leave a device
that took the image while its job runs again and flashes it twice. A job whose leftover
processes cannot be stopped is not run again (two processes would work on one
configuration): it ends failed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import logging
from pathlib import Path
from typing import Any, Final

from .exit_record import discard_exit_records, exit_record_path, read_exit_record
from .models import Job, JobStatus, JobType, ProcessRecord, utc_now_iso
from .persistence import DroppedJobs, recorded_sessions, restore
from .process_tree import poll_leader_exit, record_problem
from .runner import reap_leftovers

_LOGGER = logging.getLogger(__name__)

LEFTOVER_SURVIVED: Final = "Not run again: processes of its interrupted run could not be stopped"
LEFTOVER_UPLOAD_WAIT: Final = 60.0
"""Seconds a leftover upload may take to finish on its own before it is stopped."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Recovered:
    """The jobs to put back in the table, oldest first, with every restore rule applied."""

    jobs: list[Job]
    dropped: DroppedJobs
    """Stored entries that could not be used, and why."""


async def recover(entries: Any, exit_dir: Path) -> Recovered:
    """Reap leftovers, read exit records, and restore `entries` (the stored jobs)."""
    loop = asyncio.get_running_loop()
    records = list(recorded_sessions(entries).items())
    uploads = _upload_ids(entries)
    results = await asyncio.gather(
        *(_reap(record, finish_first=job_id in uploads) for job_id, record in records)
    )
    survivors = {job_id for (job_id, _), dead in zip(records, results, strict=True) if not dead}
    exit_codes = await loop.run_in_executor(
        None, _read_exit_records, exit_dir, [job_id for job_id, _ in records]
    )
    finished_at = utc_now_iso()
    restored = restore(entries, finished_at=finished_at, exit_codes=exit_codes)
    for job in restored.jobs:
        if job.job_id not in survivors:
            continue
        _LOGGER.warning(
            "Processes of job %s (session %s) from an earlier run could not be stopped",
            job.job_id,
            restored.leftovers[job.job_id].pid,
        )
        if job.status.is_active:
            job.status = JobStatus.FAILED
            job.held = False
            job.error = LEFTOVER_SURVIVED
            job.exit_code = None
            job.finished_at = finished_at
    return Recovered(jobs=restored.jobs, dropped=restored.dropped)


async def _reap(record: ProcessRecord, *, finish_first: bool) -> bool:
    """Stop a leftover; an upload's (when the record is ours) may first finish by itself."""
    if (
        finish_first
        and await asyncio.get_running_loop().run_in_executor(None, record_problem, record) is None
    ):
        await poll_leader_exit(record, LEFTOVER_UPLOAD_WAIT)
    return await reap_leftovers(record)


def _upload_ids(entries: Any) -> set[str]:
    """Return the ids of the stored upload jobs (tolerant: anything else is skipped)."""
    if not isinstance(entries, list):
        return set()
    return {
        str(entry.get("job_id"))
        for entry in entries
        if isinstance(entry, dict) and entry.get("job_type") == JobType.UPLOAD
    }


async def discard_all_exit_records(exit_dir: Path) -> None:
    """Delete every exit record (once the restored table is stored)."""
    await asyncio.get_running_loop().run_in_executor(None, discard_exit_records, exit_dir)


def _read_exit_records(exit_dir: Path, job_ids: list[str]) -> dict[str, int]:
    """Return the exit status each job's process recorded, for those that did. Blocking."""
    codes = {job_id: read_exit_record(exit_record_path(exit_dir, job_id)) for job_id in job_ids}
    return {job_id: code for job_id, code in codes.items() if code is not None}


class ExitRecordKeeper:
    """Deletes exit records of jobs whose outcome the store holds."""

    __slots__ = ("_exit_dir", "_settled")

    def __init__(self, exit_dir: Path) -> None:
        """Keep the records in `exit_dir`."""
        self._exit_dir = exit_dir
        self._settled: set[str] = set()

    def settled(self, job_id: str) -> None:
        """Note that a job's outcome is known (its record goes after the next save)."""
        self._settled.add(job_id)

    def take(self) -> set[str]:
        """Return the jobs settled so far and start a new set (a snapshot is being taken)."""
        taken, self._settled = self._settled, set()
        return taken

    async def after_save(self, job_ids: set[str], stored: bool) -> None:
        """Delete the records of `job_ids` once stored; keep them for the next save if not."""
        if not stored:
            # The store may still say these jobs are running: their records must stay.
            self._settled |= job_ids
            return
        if job_ids:
            await asyncio.get_running_loop().run_in_executor(None, self._discard, job_ids)

    def _discard(self, job_ids: set[str]) -> None:
        for job_id in job_ids:
            exit_record_path(self._exit_dir, job_id).unlink(missing_ok=True)
