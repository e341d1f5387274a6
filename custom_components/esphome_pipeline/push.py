"""When the entities hear about job changes: per configuration, coalesced, progress rate limited.

Owns: the listeners of each configuration and of the queue, which configurations wait to be
republished, and the timing of that. A job change makes only its own configuration's entities
write state (a bulk of 500 devices must not make 2,500 entities write on every change), and the
queue's sensors once per loop iteration however many jobs moved. A status change is published
in the same loop iteration, always; a progress change at most every `PROGRESS_INTERVAL` per
job (the first at once, the newest value when the interval ends), since a progress bar needs
no more and a compile reports hundreds of percentages. A burst is published in slices of
`CONFIGURATIONS_PER_STEP` configurations, one slice per loop iteration.

The `esphome_pipeline_job` event is not published here: the coordinator fires it at once, in
the engine's order, and nothing here can delay or drop it.

Collaborator: `publish(configurations, queue)`, the coordinator's function that updates the
snapshot for these configurations (and the queue status when `queue`), then calls `notify`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later

from .engine.models import Job

PROGRESS_INTERVAL: Final = 0.25
"""Seconds between two progress pushes of one job (status changes never wait)."""

CONFIGURATIONS_PER_STEP: Final = 25
"""Configurations republished in one loop iteration at most (5 entities each write state)."""

type Publish = Callable[[Collection[str], bool], None]


class PushScheduler:
    """Collects changed configurations and publishes them to their own listeners only."""

    def __init__(self, hass: HomeAssistant, publish: Publish) -> None:
        """Publish through `publish` (the coordinator's snapshot update)."""
        self._hass = hass
        self._publish = publish
        self._configuration_listeners: dict[str, list[CALLBACK_TYPE]] = {}
        self._queue_listeners: list[CALLBACK_TYPE] = []
        self._change_listeners: list[CALLBACK_TYPE] = []
        self._dirty: set[str] = set()
        self._queue_dirty = False
        self._handle: asyncio.Handle | None = None
        self._pushed_progress: dict[str, int | None] = {}
        self._progress_at: dict[str, float] = {}
        self._progress_timers: dict[str, CALLBACK_TYPE] = {}
        self._stopped = False

    # ---------------------------------------------------------------------- listeners

    @callback
    def add_configuration_listener(
        self, configuration: str, update_callback: CALLBACK_TYPE
    ) -> CALLBACK_TYPE:
        """Call `update_callback` when the configuration's state changed; return the remover."""
        listeners = self._configuration_listeners.setdefault(configuration, [])
        listeners.append(update_callback)

        @callback
        def remove() -> None:
            if update_callback in listeners:
                listeners.remove(update_callback)
            if not listeners and self._configuration_listeners.get(configuration) is listeners:
                del self._configuration_listeners[configuration]

        return remove

    @callback
    def add_queue_listener(self, update_callback: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `update_callback` when the queue status changed; return the remover."""
        self._queue_listeners.append(update_callback)

        @callback
        def remove() -> None:
            if update_callback in self._queue_listeners:
                self._queue_listeners.remove(update_callback)

        return remove

    @callback
    def add_change_listener(self, update_callback: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `update_callback` after any published change (a whole-fleet view: the card)."""
        self._change_listeners.append(update_callback)

        @callback
        def remove() -> None:
            if update_callback in self._change_listeners:
                self._change_listeners.remove(update_callback)

        return remove

    @callback
    def notify(self, configurations: Collection[str], queue: bool) -> None:
        """Call the listeners of these configurations, and the queue's when `queue`."""
        for name in configurations:
            for listener in tuple(self._configuration_listeners.get(name, ())):
                listener()
        if queue:
            for listener in tuple(self._queue_listeners):
                listener()
        if configurations or queue:
            self.notify_changed()

    @callback
    def notify_changed(self) -> None:
        """Call the whole-fleet listeners (something was published)."""
        for listener in tuple(self._change_listeners):
            listener()

    # ------------------------------------------------------------------------ changes

    @callback
    def status(self, job: Job) -> None:
        """A job's status (or held flag) changed: publish its configuration this iteration."""
        timer = self._progress_timers.pop(job.job_id, None)
        if timer is not None:
            timer()
        if job.is_terminal:
            self._pushed_progress.pop(job.job_id, None)
            self._progress_at.pop(job.job_id, None)
        else:
            self._pushed_progress[job.job_id] = job.progress
        self._mark(job.configuration, queue=True)

    @callback
    def progress(self, job: Job) -> None:
        """A job's progress rose: publish now, or when its interval ends, if it shows a change."""
        if job.is_terminal or self._pushed_progress.get(job.job_id) == job.progress:
            return
        if job.job_id in self._progress_timers:
            return  # the pending push reads the newest value
        wait = self._progress_at.get(job.job_id, -PROGRESS_INTERVAL) + PROGRESS_INTERVAL
        wait -= self._hass.loop.time()
        if wait <= 0:
            self._progress_pushed(job)
            return

        @callback
        def later(_now: object) -> None:
            self._progress_timers.pop(job.job_id, None)
            if not job.is_terminal:
                self._progress_pushed(job)

        self._progress_timers[job.job_id] = async_call_later(self._hass, wait, later)

    @callback
    def configurations_changed(self, configurations: Collection[str]) -> None:
        """These configurations' files changed: publish them this iteration."""
        for name in configurations:
            self._mark(name, queue=False)

    @callback
    def cancel_pending(self) -> None:
        """Forget what waits to be published (the whole snapshot is being rebuilt)."""
        self._dirty.clear()
        self._queue_dirty = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    @callback
    def stop(self) -> None:
        """Publish nothing more (the entry unloads)."""
        self._stopped = True
        self.cancel_pending()
        for timer in self._progress_timers.values():
            timer()
        self._progress_timers.clear()

    @callback
    def _progress_pushed(self, job: Job) -> None:
        self._pushed_progress[job.job_id] = job.progress
        self._progress_at[job.job_id] = self._hass.loop.time()
        self._mark(job.configuration, queue=False)

    @callback
    def _mark(self, configuration: str, *, queue: bool) -> None:
        if self._stopped:
            return
        if configuration:
            self._dirty.add(configuration)
        self._queue_dirty = self._queue_dirty or queue
        if self._handle is None:
            # Coalesced: every change of this loop iteration is published once, next iteration.
            self._handle = self._hass.loop.call_soon(self._flush)

    @callback
    def _flush(self) -> None:
        self._handle = None
        if len(self._dirty) <= CONFIGURATIONS_PER_STEP:
            dirty, self._dirty = self._dirty, set()
        else:
            # A burst (a bulk of 500 queued at once): a slice per loop iteration, so other
            # work runs in between; the rest follows in the next iterations.
            dirty = {self._dirty.pop() for _ in range(CONFIGURATIONS_PER_STEP)}
            self._handle = self._hass.loop.call_soon(self._flush)
        queue, self._queue_dirty = self._queue_dirty, False
        self._publish(dirty, queue)
