"""Job events and the subscription hub the engine delivers them through.

Owns: the event type (`JobEvent`), its kinds, `EventHub`, which calls every subscriber
synchronously in the event loop, and `JobReporter`, the executors' `JobSink`: it records what a
running job reports (output, progress, its process) on the job and announces it. A subscriber
that raises is logged and skipped, so a faulty listener can never stop a lane or lose another
listener's events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
import logging

from .models import Job, ProcessRecord

_LOGGER = logging.getLogger(__name__)


class EventKind(StrEnum):
    """What changed about a job."""

    STATUS = "status"
    """The status or the `held` flag changed. Never dropped."""
    PROGRESS = "progress"
    """`job.progress` rose."""
    OUTPUT = "output"
    """The job printed `line` (a `\\r` redraw arrives as a new line)."""


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One change of one job. `job` is the live job object: read it, do not modify it."""

    kind: EventKind
    job: Job
    line: str | None = None


type JobListener = Callable[[JobEvent], None]


class EventHub:
    """Delivers job events to subscribers, in subscription order, synchronously."""

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        """Start with no subscribers."""
        self._listeners: list[JobListener] = []

    def subscribe(self, listener: JobListener) -> Callable[[], None]:
        """Call `listener` for every event from now on; return a function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            # Unsubscribing twice is harmless: the second call finds nothing to remove.
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def emit(self, event: JobEvent) -> None:
        """Deliver `event` to every subscriber; a subscriber that raises is logged."""
        # A copy: a listener may unsubscribe itself (or others) while being called.
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:
                _LOGGER.exception(
                    "A job event listener failed on %s event of job %s",
                    event.kind,
                    event.job.job_id,
                )


class JobReporter:
    """The `JobSink` of every executor: records what a running job reports and announces it."""

    __slots__ = ("_hub", "_request_save")

    def __init__(self, hub: EventHub, request_save: Callable[[], None]) -> None:
        """Announce through `hub`; `request_save` when something worth storing changed."""
        self._hub = hub
        self._request_save = request_save

    def output(self, job: Job, line: str, replaces_previous: bool) -> None:
        """Add a line to a job's log and announce it (output alone does not trigger a save)."""
        job.output.append(line, replace_last=replaces_previous)
        self._hub.emit(JobEvent(EventKind.OUTPUT, job, line))

    def progress(self, job: Job, value: int) -> None:
        """Record and announce a job's new, higher progress."""
        job.progress = value
        self._hub.emit(JobEvent(EventKind.PROGRESS, job))

    def process_started(self, job: Job, record: ProcessRecord) -> None:
        """Store the process session of a running job, so a restart can reap leftovers."""
        job.process = record
        self._request_save()
