"""Job data: the public job model of the contract and its JSON form. Data only, no behaviour."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
import secrets
from typing import Any, Final

OUTPUT_LINE_LIMIT: Final = 2000
"""Lines of output kept in memory per job; older lines are counted as elided."""


class JobType(StrEnum):
    """What a job does."""

    COMPILE = "compile"
    UPLOAD = "upload"
    CLEAN = "clean"
    RESET_BUILD_ENV = "reset_build_env"


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Return True for the three end states."""
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Return True while the job still has work to do."""
        return not self.is_terminal


TERMINAL_STATUSES: Final = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class Lane(StrEnum):
    """The lane a job runs on."""

    COMPILE = "compile"
    UPLOAD = "upload"
    REMOTE = "remote"


class JobSource(StrEnum):
    """Who does the work."""

    LOCAL = "local"
    REMOTE = "remote"


class SkipReason(StrEnum):
    """Why a job finished without doing its work."""

    UNCHANGED = "unchanged"
    DEVICE_CURRENT = "device_current"


def utc_now_iso() -> str:
    """Return the current time as ISO 8601 UTC."""
    return datetime.now(UTC).isoformat()


def new_job_id() -> str:
    """Return a fresh opaque job id."""
    return secrets.token_hex(6)


@dataclass(slots=True)
class JobOutput:
    """A job's bounded log: the newest `limit` lines and a count of the ones dropped."""

    lines: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_LINE_LIMIT))
    elided: int = 0

    def append(self, line: str, *, replace_last: bool = False) -> None:
        """Add a line; `replace_last` overwrites the previous line (a `\\r` progress redraw)."""
        if replace_last and self.lines:
            self.lines[-1] = line
            return
        if len(self.lines) == self.lines.maxlen:
            self.elided += 1
        self.lines.append(line)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"lines": list(self.lines), "elided": self.elided}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobOutput:
        """Build from the JSON form."""
        output = cls()
        output.lines.extend(str(line) for line in data.get("lines", []))
        output.elided = int(data.get("elided", 0))
        return output


@dataclass(kw_only=True, slots=True)
class Job:
    """One unit of work on one configuration: the contract's job fields plus private bookkeeping.

    `fingerprint` is an opaque label the caller attaches (the Home Assistant layer records the
    configuration fingerprint an install was built from). `process` records the session of the
    running process so a restart can find leftovers of a killed Home Assistant.
    """

    job_id: str = field(default_factory=new_job_id)
    configuration: str
    job_type: JobType
    status: JobStatus = JobStatus.QUEUED
    lane: Lane
    depends_on: str | None = None
    held: bool = False
    source: JobSource = JobSource.LOCAL
    peer: str | None = None
    port: str | None = None
    progress: int | None = None
    skipped: SkipReason | None = None
    exit_code: int | None = None
    error: str | None = None
    created_at: str = field(default_factory=utc_now_iso)
    started_at: str | None = None
    finished_at: str | None = None
    force: bool = False
    fingerprint: str | None = None
    process: ProcessRecord | None = None
    output: JobOutput = field(default_factory=JobOutput)

    @property
    def is_terminal(self) -> bool:
        """Return True once the job has ended."""
        return self.status.is_terminal

    def public_dict(self) -> dict[str, Any]:
        """Return the contract's fields (no output, no private bookkeeping): events and actions."""
        return {
            "job_id": self.job_id,
            "configuration": self.configuration,
            "job_type": str(self.job_type),
            "status": str(self.status),
            "lane": str(self.lane),
            "depends_on": self.depends_on,
            "held": self.held,
            "source": str(self.source),
            "peer": self.peer,
            "port": self.port,
            "progress": self.progress,
            "skipped": None if self.skipped is None else str(self.skipped),
            "exit_code": self.exit_code,
            "error": self.error,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the full JSON form used for persistence."""
        return {
            **self.public_dict(),
            "force": self.force,
            "fingerprint": self.fingerprint,
            "process": None if self.process is None else self.process.to_dict(),
            "output": self.output.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """Build from the JSON form; raises KeyError, TypeError or ValueError when malformed."""
        skipped = data.get("skipped")
        process = data.get("process")
        return cls(
            job_id=str(data["job_id"]),
            configuration=str(data["configuration"]),
            job_type=JobType(data["job_type"]),
            status=JobStatus(data["status"]),
            lane=Lane(data["lane"]),
            depends_on=_optional_str(data.get("depends_on")),
            held=bool(data.get("held", False)),
            source=JobSource(data.get("source", JobSource.LOCAL)),
            peer=_optional_str(data.get("peer")),
            port=_optional_str(data.get("port")),
            progress=_optional_int(data.get("progress")),
            skipped=None if skipped is None else SkipReason(skipped),
            exit_code=_optional_int(data.get("exit_code")),
            error=_optional_str(data.get("error")),
            created_at=str(data["created_at"]),
            started_at=_optional_str(data.get("started_at")),
            finished_at=_optional_str(data.get("finished_at")),
            force=bool(data.get("force", False)),
            fingerprint=_optional_str(data.get("fingerprint")),
            process=None if process is None else ProcessRecord.from_dict(process),
            output=JobOutput.from_dict(data.get("output") or {}),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ProcessRecord:
    """Identity of a job's process session: its leader pid and the leader's kernel start time.

    The start time guards against pid reuse when a restart looks for leftovers.
    """

    pid: int
    start_time: int

    def to_dict(self) -> dict[str, int]:
        """Return the JSON form."""
        return {"pid": self.pid, "start_time": self.start_time}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessRecord:
        """Build from the JSON form."""
        return cls(pid=int(data["pid"]), start_time=int(data["start_time"]))


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueStatus:
    """A summary of the lanes for dashboards and the hub device's sensors."""

    compile_running: tuple[str, ...]
    upload_running: tuple[str, ...]
    queue_depth: int

    @property
    def idle(self) -> bool:
        """Return True when nothing runs and nothing waits."""
        return not self.compile_running and not self.upload_running and self.queue_depth == 0


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
