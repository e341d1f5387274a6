"""Firing `esphome_pipeline_job`: at once, in the engine's order, a burst in slices.

Owns: the bus events of job status changes that wait to be fired, and when they are. The
coordinator hands each status change here with its data already taken (the job's fields as
they were at that change), so an event fired later still says what happened then.

Events fire at once, in the same loop step, up to `EVENTS_PER_STEP` per loop iteration. One
action for 500 configurations queues 1,000 jobs in one engine step (all or nothing) and
reports 1,000 status changes in that step; firing all of them there took most of a step that
blocked the loop for 10 to 15 ms. Past `EVENTS_PER_STEP`, the rest wait in a queue and fire
in the next iterations, `EVENTS_PER_STEP` at a time; while any wait, new ones queue behind
them, so the order is always the engine's, and none is ever dropped: `flush` fires what
waits (the entry unloads).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

from homeassistant.core import HomeAssistant, callback

from .const import EVENT_JOB

EVENTS_PER_STEP: Final = 100
"""Job events fired in one loop iteration at most (the rest follow, in order)."""


class JobEventFirer:
    """Fires job events in order, at most `EVENTS_PER_STEP` per loop iteration."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Fire on `hass`'s bus."""
        self._hass = hass
        self._waiting: deque[dict[str, Any]] = deque()
        self._fired_this_step = 0
        self._next_step_scheduled = False

    @property
    def waiting(self) -> int:
        """How many events wait for a later loop iteration."""
        return len(self._waiting)

    @callback
    def fire(self, data: dict[str, Any]) -> None:
        """Fire an event with `data` now, or after the ones waiting (a burst)."""
        if not self._waiting and self._fired_this_step < EVENTS_PER_STEP:
            self._fired_this_step += 1
            self._schedule_next_step()
            self._hass.bus.async_fire(EVENT_JOB, data)
            return
        self._waiting.append(data)
        self._schedule_next_step()

    @callback
    def flush(self) -> None:
        """Fire every waiting event now, in order."""
        while self._waiting:
            self._hass.bus.async_fire(EVENT_JOB, self._waiting.popleft())

    @callback
    def _schedule_next_step(self) -> None:
        if not self._next_step_scheduled:
            self._next_step_scheduled = True
            self._hass.loop.call_soon(self._next_step)

    @callback
    def _next_step(self) -> None:
        """A new loop iteration: fire the next slice of what waits."""
        self._next_step_scheduled = False
        self._fired_this_step = 0
        while self._waiting and self._fired_this_step < EVENTS_PER_STEP:
            self._fired_this_step += 1
            self._hass.bus.async_fire(EVENT_JOB, self._waiting.popleft())
        if self._fired_this_step:
            # The count of this iteration must be reset again, and what is left fired.
            self._schedule_next_step()
