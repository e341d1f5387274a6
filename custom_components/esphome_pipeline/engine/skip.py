"""Skip decisions: finish a job at once when its work is already done.

Owns: `BuildRecord` (the last successful build of a configuration), `BuildLedger` (those
records, kept in step with the job table and persisted with it), the `SkipCheck` protocol, and
`decide_skip`, the step between claiming a job and running it.

Rules, in words:
- A compile that completes with a process records what it built (its fingerprint label).
  A compile skipped as `unchanged` leaves the record as it is: the build it points at is the
  one in place.
- A clean of a configuration that ran (whatever its end) forgets that configuration's record,
  and a reset that ran forgets every record: their files may be gone.
- A job asked with `force` is never skipped. Otherwise each injected check is asked in turn;
  the first that names a reason completes the job with `skipped` set and no process. A check
  that fails is logged and counts as "not done": a false skip is worse than a needless run.

The checks themselves ("the build is current", "the device already runs it") are injected by
the caller (the warm path); the engine only asks them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
import logging
from typing import Any, Protocol

from .models import Job, JobStatus, JobType, SkipReason

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildRecord:
    """The last successful build of a configuration."""

    configuration: str
    fingerprint: str | None
    """The label the compile was queued with (the configuration fingerprint), if any."""
    job_id: str
    finished_at: str

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "configuration": self.configuration,
            "fingerprint": self.fingerprint,
            "job_id": self.job_id,
            "finished_at": self.finished_at,
        }

    @classmethod
    def from_dict(cls, data: Any) -> BuildRecord | None:
        """Build from the JSON form; None when `data` is not a usable record."""
        if not isinstance(data, Mapping):
            return None
        configuration, job_id, finished_at = (
            data.get("configuration"),
            data.get("job_id"),
            data.get("finished_at"),
        )
        fingerprint = data.get("fingerprint")
        if not all(isinstance(value, str) for value in (configuration, job_id, finished_at)):
            return None
        if fingerprint is not None and not isinstance(fingerprint, str):
            return None
        return cls(
            configuration=str(configuration),
            fingerprint=fingerprint,
            job_id=str(job_id),
            finished_at=str(finished_at),
        )


class BuildLedger:
    """The last successful build per configuration, kept in step with finished jobs."""

    __slots__ = ("_records",)

    def __init__(self, records: Iterable[BuildRecord] = ()) -> None:
        """Start with `records` (a later record of a configuration wins)."""
        self._records = {record.configuration: record for record in records}

    def get(self, configuration: str) -> BuildRecord | None:
        """Return the configuration's last successful build, or None."""
        return self._records.get(configuration)

    def observe(self, job: Job) -> bool:
        """Apply the rules above to a job that just ended; return True when records changed."""
        if job.job_type is JobType.COMPILE:
            if job.status is not JobStatus.COMPLETED or job.skipped is not None:
                return False
            self._records[job.configuration] = BuildRecord(
                configuration=job.configuration,
                fingerprint=job.fingerprint,
                job_id=job.job_id,
                finished_at=job.finished_at or "",
            )
            return True
        if job.started_at is None:
            return False
        if job.job_type is JobType.CLEAN:
            return self._records.pop(job.configuration, None) is not None
        if job.job_type is JobType.RESET_BUILD_ENV and self._records:
            self._records.clear()
            return True
        return False

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Return the JSON form: records by configuration."""
        return {name: record.to_dict() for name, record in sorted(self._records.items())}

    @classmethod
    def from_dict(cls, data: Any) -> BuildLedger:
        """Build from the JSON form; entries that are not usable records are left out."""
        if not isinstance(data, Mapping):
            return cls()
        records = [BuildRecord.from_dict(entry) for entry in data.values()]
        return cls(record for record in records if record is not None)


class SkipCheck(Protocol):
    """Says whether a job's work is already done (and why), or None."""

    async def __call__(self, job: Job, build: BuildRecord | None) -> SkipReason | None:
        """Return the reason `job` needs no work, or None to run it."""


async def decide_skip(
    job: Job, build: BuildRecord | None, checks: Sequence[SkipCheck]
) -> SkipReason | None:
    """Return why `job` can complete without running, or None (see the rules above)."""
    if job.force:
        return None
    for check in checks:
        try:
            reason = await check(job, build)
        except Exception:
            _LOGGER.exception("A skip check failed for job %s; it runs", job.job_id)
            continue
        if reason is not None:
            return reason
    return None
