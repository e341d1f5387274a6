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

An upload that was running and left no exit record of 0 has an unknown outcome: the device may
have taken the image before the leftover died. It runs again without `force`, so the skip
checks ask the device first (`skip_checks.DeviceRunsBuild`; a serial ESP32 upload compares
the flash itself before writing) and it completes with `skipped: device_current`, no second
flash, when the device runs the build. An upload killed during its proof counts the same:
`upload_proof.py` removes the exit record before the proof waits. Every job that
was running gets the lines its leftover printed while no engine read them (its job log), in
its output before the restart marker.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import logging
from pathlib import Path
from typing import Any, Final

from .exit_record import discard_exit_records, exit_record_path, read_exit_record, read_job_log
from .models import OUTPUT_LINE_LIMIT, Job, JobStatus, JobType, ProcessRecord, utc_now_iso
from .persistence import DroppedJobs, recorded_sessions, restore
from .process_tree import poll_leader_exit, record_problem
from .runner import reap_leftovers

_LOGGER = logging.getLogger(__name__)

LEFTOVER_SURVIVED: Final = "Not run again: processes of its interrupted run could not be stopped"
LEFTOVER_UPLOAD_WAIT: Final = 60.0
"""Seconds a leftover upload may take to finish on its own before it is stopped."""
LEFTOVER_LOG_MARKER: Final = "— printed while the engine was not running —"
"""Put in a job's output before the lines its leftover printed while no engine read them."""
LOG_OVERLAP_LINES: Final = 20
"""Stored lines matched against a job log to find where the unseen part begins."""


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
    uploads = _stored_ids(entries, job_type=JobType.UPLOAD)
    running = _stored_ids(entries, status=JobStatus.RUNNING)
    results = await asyncio.gather(
        *(_reap(record, finish_first=job_id in uploads) for job_id, record in records)
    )
    survivors = {job_id for (job_id, _), dead in zip(records, results, strict=True) if not dead}
    exit_codes = await loop.run_in_executor(
        None, _read_exit_records, exit_dir, [job_id for job_id, _ in records]
    )
    logs = await loop.run_in_executor(None, _read_job_logs, exit_dir, running)
    finished_at = utc_now_iso()
    restored = restore(entries, finished_at=finished_at, exit_codes=exit_codes)
    for job in restored.jobs:
        if job.job_id not in running:
            continue
        _add_leftover_log(job, logs.get(job.job_id, []))
        if job.job_type is JobType.UPLOAD and job.status is JobStatus.QUEUED:
            # Its outcome is unknown: the device is asked before it is flashed again.
            job.force = False
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


def _stored_ids(
    entries: Any, *, job_type: JobType | None = None, status: JobStatus | None = None
) -> set[str]:
    """Return the ids of the stored jobs of `job_type` and `status` (tolerant: anything that
    is not a stored job is skipped)."""
    if not isinstance(entries, list):
        return set()
    return {
        str(entry.get("job_id"))
        for entry in entries
        if isinstance(entry, dict)
        and (job_type is None or entry.get("job_type") == job_type)
        and (status is None or entry.get("status") == status)
    }


def _read_job_logs(exit_dir: Path, job_ids: set[str]) -> dict[str, list[str]]:
    """Return what each job's process logged, for those that left a log. Blocking."""
    logs = {job_id: read_job_log(exit_dir, job_id, OUTPUT_LINE_LIMIT) for job_id in job_ids}
    return {job_id: lines for job_id, lines in logs.items() if lines}


def _add_leftover_log(job: Job, log: list[str]) -> None:
    """Put the log lines the job's output does not hold yet before its last line (the
    restart or completed-away marker that restore just appended)."""
    lines = job.output.lines
    unseen = _after_overlap(list(lines)[-LOG_OVERLAP_LINES - 1 : -1], log)
    if not unseen or not lines:
        return
    marker = lines.pop()
    for line in (LEFTOVER_LOG_MARKER, *unseen, marker):
        job.output.append(line)


def _after_overlap(stored: list[str], log: list[str]) -> list[str]:
    """Return the lines of `log` after the last place where it repeats the end of `stored`
    (the longest such end first); all of `log` when it repeats none of it."""
    for size in range(len(stored), 0, -1):
        window = stored[-size:]
        for end in range(len(log), size - 1, -1):
            if log[end - size : end] == window:
                return log[end:]
    return log


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
