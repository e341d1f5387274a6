"""Job streams: a slow subscriber's own bounded, coalescing queue of job events.

Owns: `JobStream`. The event hub calls its listeners synchronously inside the lane's step, so a
listener must never wait. A subscriber that may be slow (a browser socket, say) opens a stream
instead: the hub's call only appends to the stream's queue, and the subscriber reads batches
at its own pace with `async for updates in stream`.

What may be lost when the reader lags, and what never is:
- STATUS changes are never dropped and keep their order; each carries the job's public form
  as it was at that moment.
- PROGRESS is coalesced: a waiting progress update of a job is replaced by the newer value.
- OUTPUT lines are kept up to `max_lines` in all; past that the oldest waiting lines are
  dropped, and the next update of that job's output says how many (`dropped`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from .events import EventKind, JobEvent

DEFAULT_MAX_LINES: Final = 1000


@dataclass(kw_only=True, slots=True)
class StreamUpdate:
    """One entry of a stream: what changed about one job."""

    kind: EventKind
    job_id: str
    job: dict[str, Any] | None = None
    """STATUS: the job's public form at the change; PROGRESS: the newest public form."""
    lines: list[str] = field(default_factory=list)
    """OUTPUT: the new lines, oldest first."""
    dropped: int = 0
    """OUTPUT: lines of this job dropped just before `lines` because the reader lagged."""


type StreamFilter = Callable[[JobEvent], bool]


class JobStream:
    """A bounded, coalescing queue of one subscriber's job events."""

    def __init__(
        self,
        subscribe: Callable[[Callable[[JobEvent], None]], Callable[[], None]],
        *,
        accept: StreamFilter | None = None,
        max_lines: int = DEFAULT_MAX_LINES,
    ) -> None:
        """Subscribe through `subscribe`; keep events `accept` passes (all by default)."""
        self._accept = accept
        self._max_lines = max_lines
        self._pending: deque[StreamUpdate] = deque()
        self._progress: dict[str, StreamUpdate] = {}
        self._lines = 0
        self._dropped: dict[str, int] = {}
        self._ready = asyncio.Event()
        self._closed = False
        self._unsubscribe = subscribe(self._on_event)

    def close(self) -> None:
        """Stop receiving; a reader waiting for updates ends its loop."""
        if not self._closed:
            self._closed = True
            self._unsubscribe()
            self._ready.set()

    def __aiter__(self) -> AsyncIterator[list[StreamUpdate]]:
        """Iterate over batches of updates until `close()`."""
        return self._batches()

    async def _batches(self) -> AsyncIterator[list[StreamUpdate]]:
        while True:
            await self._ready.wait()
            if not self._pending and self._closed:
                return
            batch = self.drain()
            if batch:
                yield batch

    def drain(self) -> list[StreamUpdate]:
        """Return every waiting update, oldest first, and empty the queue."""
        batch = list(self._pending)
        self._pending.clear()
        self._progress.clear()
        self._lines = 0
        if not self._closed:
            self._ready.clear()
        return batch

    def _on_event(self, event: JobEvent) -> None:
        if self._accept is not None and not self._accept(event):
            return
        job = event.job
        if event.kind is EventKind.PROGRESS:
            waiting = self._progress.get(job.job_id)
            if waiting is not None:
                waiting.job = job.public_dict()
                return
            update = StreamUpdate(kind=event.kind, job_id=job.job_id, job=job.public_dict())
            self._progress[job.job_id] = update
        elif event.kind is EventKind.OUTPUT:
            self._add_line(job.job_id, event.line or "")
            return
        else:
            # A status change ends what a waiting progress update said: later progress of
            # this job comes after the change, in a new entry.
            self._progress.pop(job.job_id, None)
            update = StreamUpdate(kind=event.kind, job_id=job.job_id, job=job.public_dict())
        self._pending.append(update)
        self._ready.set()

    def _add_line(self, job_id: str, line: str) -> None:
        last = self._pending[-1] if self._pending else None
        if last is not None and last.kind is EventKind.OUTPUT and last.job_id == job_id:
            last.lines.append(line)
        else:
            update = StreamUpdate(
                kind=EventKind.OUTPUT,
                job_id=job_id,
                lines=[line],
                dropped=self._dropped.pop(job_id, 0),
            )
            self._pending.append(update)
        self._lines += 1
        while self._lines > self._max_lines:
            self._drop_oldest_line()
        self._ready.set()

    def _drop_oldest_line(self) -> None:
        for update in self._pending:
            if update.kind is EventKind.OUTPUT and update.lines:
                update.lines.pop(0)
                update.dropped += 1
                self._lines -= 1
                if not update.lines:
                    self._pending.remove(update)
                    self._carry_dropped(update)
                return

    def _carry_dropped(self, emptied: StreamUpdate) -> None:
        """Move the count of an entry that lost all its lines to the job's next lines."""
        later = next(
            (
                update
                for update in self._pending
                if update.kind is EventKind.OUTPUT and update.job_id == emptied.job_id
            ),
            None,
        )
        if later is not None:
            later.dropped += emptied.dropped
        else:
            self._dropped[emptied.job_id] = self._dropped.get(emptied.job_id, 0) + emptied.dropped
