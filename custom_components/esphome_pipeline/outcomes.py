"""A job's outcome in words: the sentences the logbook, the log and the sensors show.

Owns the wording only. It reads a job's public fields (`Job.public_dict()`, the same mapping
the `esphome_pipeline_job` event carries), so the logbook can describe an event long after its
job left the table. No Home Assistant import and no I/O.

A failed job's `error` starts with the executor's "ESPHome compile failed with exit code 2: ";
people read ESPHome's own message after it (`reported_message`). A cancelled job's `error` is
the engine's sentence; `cancel_reason` names its kind in a few words.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from .engine.models import JobStatus, JobType, SkipReason
from .engine.output import reported_message
from .engine.state import PREREQUISITE_INCOMPLETE
from .engine.transitions import CANCELLED_BY_RESET, CANCELLED_ON_REQUEST

REASON_ON_REQUEST: Final = "cancelled on request"
REASON_PREREQUISITE: Final = PREREQUISITE_INCOMPLETE  # "prerequisite did not complete"
REASON_SUPERSEDED: Final = "superseded"
REASON_RESET: Final = "build environment reset"

_SUPERSEDED_MARK: Final = "replaced it"
"""The end of the engine's "Cancelled: a newer job for X replaced it" (supersede and clean)."""

_JOB_WORDS: Final = {
    JobType.COMPILE: "compile",
    JobType.UPLOAD: "upload",
    JobType.CLEAN: "clean",
    JobType.RESET_BUILD_ENV: "build environment reset",
}
_SKIP_WORDS: Final = {
    SkipReason.UNCHANGED: "skipped: the build is current",
    SkipReason.DEVICE_CURRENT: "skipped: the device already runs this build",
}


def cancel_reason(status: str | None, error: str | None) -> str | None:
    """Return why a cancelled job was cancelled, in a few words (None for other statuses)."""
    if status != JobStatus.CANCELLED:
        return None
    text = error or ""
    if text == CANCELLED_ON_REQUEST:
        return REASON_ON_REQUEST
    if PREREQUISITE_INCOMPLETE in text:
        return REASON_PREREQUISITE
    if text.endswith(_SUPERSEDED_MARK):
        return REASON_SUPERSEDED
    if text == CANCELLED_BY_RESET:
        return REASON_RESET
    # A cancel this module has no words for (a withdrawn reset): the engine's sentence.
    return text or REASON_ON_REQUEST


def error_message(status: str | None, error: str | None) -> str | None:
    """Return what went wrong, as people read it: ESPHome's message, or the cancel sentence."""
    if status == JobStatus.FAILED:
        return reported_message(error) if error else "failed without a message"
    if status == JobStatus.CANCELLED:
        return error or "Cancelled"
    return None


def describe(job: Mapping[str, Any]) -> str:
    """Return the outcome of a job's latest status, e.g. "compile failed: Unknown value ...".

    `job` is the job's public form (an event's data); unknown values are shown as they are.
    """
    job_type = _member(JobType, job.get("job_type"))
    status = job.get("status")
    what = "job" if job_type is None else _JOB_WORDS[job_type]
    match status:
        case JobStatus.QUEUED:
            return f"{what} waiting for its compile" if job.get("held") else f"{what} queued"
        case JobStatus.RUNNING:
            return f"{what} started"
        case JobStatus.COMPLETED:
            skipped = _member(SkipReason, job.get("skipped"))
            if skipped is not None:
                return f"{what} {_SKIP_WORDS[skipped]}"
            return f"{what} completed"
        case JobStatus.FAILED:
            return f"{what} failed: {error_message(status, job.get('error'))}"
        case JobStatus.CANCELLED:
            return f"{what} cancelled: {cancel_reason(status, job.get('error'))}"
    return f"{what} {status}"


def _member[E: StrEnum](enum: type[E], value: object) -> E | None:
    """Return the member `value` names, or None (an event from another version, say)."""
    try:
        return enum(value) if isinstance(value, str) else None
    except ValueError:
        return None
