"""Save coalescing: one writer that always stores the newest state, however often it changes.

Owns: the revision counter, the single save task, and `flush()` waiters. Every change calls
`request()`; the save task takes a snapshot (through `prepare`), writes it, and loops while
newer changes arrived meanwhile, so a burst of changes costs one or two writes, never one per
change. A failed write is logged and the engine goes on (the next change writes again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import logging
from typing import Any

_LOGGER = logging.getLogger(__name__)

type AfterSave = Callable[[bool], Awaitable[None]]
"""Called with True once a snapshot is stored (False when the write failed)."""
type Prepare = Callable[[], tuple[dict[str, Any], AfterSave]]
"""Takes the snapshot to write, and says what to do once it is written."""
type Write = Callable[[dict[str, Any]], Awaitable[None]]


class CoalescingSaver:
    """Writes the newest snapshot after changes; `flush()` waits until it is stored."""

    __slots__ = ("_prepare", "_revision", "_saved_revision", "_task", "_waiters", "_write")

    def __init__(self, prepare: Prepare, write: Write) -> None:
        """Snapshot with `prepare`, store with `write`."""
        self._prepare = prepare
        self._write = write
        self._revision = 0
        self._saved_revision = 0
        self._task: asyncio.Task[None] | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def request(self) -> None:
        """Note a change; a save task writes it (and any later change) soon."""
        self._revision += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._save_pending(), name="save firmware jobs"
            )

    async def flush(self) -> None:
        """Wait until the store holds every change requested so far."""
        target = self._revision
        if self._saved_revision >= target:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        await waiter

    async def _save_pending(self) -> None:
        while self._saved_revision < self._revision:
            # Let the lane workers woken by the same change claim their jobs first: the
            # snapshot below takes the loop for a moment, a hand-off should not wait for it.
            await asyncio.sleep(0)
            revision = self._revision
            snapshot, after = self._prepare()
            try:
                await self._write(snapshot)
            except Exception:
                _LOGGER.exception("Could not save the firmware job queue")
                await after(False)
            else:
                await after(True)
            self._saved_revision = revision
            waiting, self._waiters = self._waiters, []
            for target, waiter in waiting:
                if target > revision:
                    self._waiters.append((target, waiter))
                elif not waiter.done():
                    waiter.set_result(None)
