"""Job data: the public job model of the contract and its JSON form. Data only, no behaviour.

Reading the JSON form back (`Job.from_dict`) trusts nothing: a stored file may have been
damaged or edited. Every field must have its documented type (missing optional fields take
their defaults, unknown keys are ignored); anything else raises `StoredJobError`, the only
error the `from_dict` family raises, whose `reason` names the field but never its value, so
reasons of many entries group into one report.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
import secrets
from typing import Any, Final

OUTPUT_LINE_LIMIT: Final = 2000
"""Lines of output kept in memory per job; older lines are counted as elided."""
JOB_ID_MAX: Final = 64
"""The longest job id a stored entry may carry (new ids are 12 characters)."""


class StoredJobError(ValueError):
    """A stored entry is not a usable job; `reason` says why, without echoing any value."""

    def __init__(self, reason: str) -> None:
        """Keep the reason (a short phrase such as "'status' is not a job status")."""
        super().__init__(reason)
        self.reason = reason


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
    def from_dict(cls, data: object) -> JobOutput:
        """Build from the JSON form (None is an empty log); raises StoredJobError."""
        output = cls()
        if data is None:
            return output
        if not isinstance(data, Mapping):
            raise StoredJobError("'output' is not an object")
        lines = data.get("lines")
        if lines is None:
            lines = []
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            raise StoredJobError("'output.lines' is not a list of text")
        elided = _optional_int(data, "elided", "output.elided", minimum=0) or 0
        # More lines than the limit cannot come from us; keep the newest, count the rest.
        output.elided = elided + max(len(lines) - OUTPUT_LINE_LIMIT, 0)
        output.lines.extend(lines[-OUTPUT_LINE_LIMIT:])
        return output


@dataclass(kw_only=True, slots=True)
class Job:
    """One unit of work on one configuration: the contract's job fields plus private bookkeeping.

    `held_reason` says why a `held` job waits (None while it is not held; see `state.py`).
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
    held_reason: str | None = None
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
    waiting_for_device: bool = False
    """An upload whose device did not answer: it waits, held "device offline", until it does.
    Not stored: after a restart the upload asks the device again."""

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
            "held_reason": self.held_reason,
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
    def from_dict(cls, data: object) -> Job:
        """Build from the JSON form; raises StoredJobError (only) when it is not a usable job.

        Checked here: the shape and type of every field, enum values, job ids (1 to
        `JOB_ID_MAX` printable characters), progress 0-100, timestamps in ISO 8601. The rules
        that need the rest of the engine (configuration names, lanes, ports, prerequisites)
        are applied by `persistence.restore`.
        """
        if not isinstance(data, Mapping):
            raise StoredJobError("not an object")
        return cls(
            job_id=_job_id(data, "job_id", required=True) or "",
            configuration=_text(data, "configuration", required=True) or "",
            job_type=_member(data, "job_type", JobType, "job type"),
            status=_member(data, "status", JobStatus, "job status"),
            lane=_member(data, "lane", Lane, "lane"),
            depends_on=_job_id(data, "depends_on"),
            held=_flag(data, "held"),
            held_reason=_text(data, "held_reason"),
            source=_member(data, "source", JobSource, "job source", default=JobSource.LOCAL),
            peer=_text(data, "peer"),
            port=_text(data, "port"),
            progress=_optional_int(data, "progress", minimum=0, maximum=100),
            skipped=_optional_member(data, "skipped", SkipReason, "skip reason"),
            exit_code=_optional_int(data, "exit_code"),
            error=_text(data, "error"),
            created_at=_timestamp(data, "created_at", required=True) or "",
            started_at=_timestamp(data, "started_at"),
            finished_at=_timestamp(data, "finished_at"),
            force=_flag(data, "force"),
            fingerprint=_text(data, "fingerprint"),
            process=_process(data),
            output=JobOutput.from_dict(data.get("output")),
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
    def from_dict(cls, data: object) -> ProcessRecord:
        """Build from the JSON form; raises StoredJobError when malformed.

        Only the shape is checked here; whether the values are sane is the reaper's call.
        """
        if not isinstance(data, Mapping):
            raise StoredJobError("'process' is not an object")
        pid = _optional_int(data, "pid", "process.pid")
        start_time = _optional_int(data, "start_time", "process.start_time")
        if pid is None or start_time is None:
            raise StoredJobError("'process' lacks its pid or start time")
        return cls(pid=pid, start_time=start_time)


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


def recorded_process(entry: object) -> tuple[str, ProcessRecord] | None:
    """Return the job id and process record a stored entry names, or None.

    Tolerant on purpose: an entry too damaged to restore may still name a process that is
    running (and must be reaped), so only the id and the record must be readable.
    """
    if not isinstance(entry, Mapping):
        return None
    try:
        job_id = _job_id(entry, "job_id", required=True)
        process = _process(entry)
    except StoredJobError:
        return None
    return None if job_id is None or process is None else (job_id, process)


# Parsing helpers of the JSON form: each takes the entry and a key, returns the typed value or
# raises StoredJobError naming the key. A missing key and null mean the same: not given.


def _given(data: Mapping[Any, Any], key: str, *, required: bool) -> Any:
    value = data.get(key)
    if value is None and required:
        raise StoredJobError(f"'{key}' is missing")
    return value


def _text(data: Mapping[Any, Any], key: str, *, required: bool = False) -> str | None:
    value = _given(data, key, required=required)
    if value is not None and not isinstance(value, str):
        raise StoredJobError(f"'{key}' is not text")
    return value


def _job_id(data: Mapping[Any, Any], key: str, *, required: bool = False) -> str | None:
    value = _text(data, key, required=required)
    if value is not None and not (0 < len(value) <= JOB_ID_MAX and value.isprintable()):
        raise StoredJobError(f"'{key}' is not a job id")
    return value


def _timestamp(data: Mapping[Any, Any], key: str, *, required: bool = False) -> str | None:
    value = _text(data, key, required=required)
    if value is not None:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise StoredJobError(f"'{key}' is not an ISO 8601 time") from None
    return value


def _process(data: Mapping[Any, Any]) -> ProcessRecord | None:
    value = data.get("process")
    return None if value is None else ProcessRecord.from_dict(value)


def _flag(data: Mapping[Any, Any], key: str) -> bool:
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise StoredJobError(f"'{key}' is not true or false")
    return value


def _optional_int(
    data: Mapping[Any, Any],
    key: str,
    label: str | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    # bool is an int subclass, but `true` is no number.
    if not isinstance(value, int) or isinstance(value, bool):
        raise StoredJobError(f"'{label or key}' is not a whole number")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise StoredJobError(f"'{label or key}' is out of range")
    return value


def _optional_member[E: StrEnum](
    data: Mapping[Any, Any], key: str, enum: type[E], what: str
) -> E | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    raise StoredJobError(f"'{key}' is not a {what}")


def _member[E: StrEnum](
    data: Mapping[Any, Any], key: str, enum: type[E], what: str, *, default: E | None = None
) -> E:
    member = _optional_member(data, key, enum, what)
    if member is not None:
        return member
    if default is None:
        raise StoredJobError(f"'{key}' is missing")
    return default
