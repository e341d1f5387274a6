"""The job event firer alone: a burst fires in slices, in order, and nothing is dropped."""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.core import Event, HomeAssistant, callback

from custom_components.esphome_pipeline.const import EVENT_JOB
from custom_components.esphome_pipeline.job_events import EVENTS_PER_STEP, JobEventFirer


def _listen(hass: HomeAssistant) -> list[int]:
    fired: list[int] = []

    @callback
    def on_job(event: Event[dict[str, Any]]) -> None:
        fired.append(event.data["number"])

    hass.bus.async_listen(EVENT_JOB, on_job)
    return fired


async def test_a_burst_fires_in_slices_in_order(hass: HomeAssistant) -> None:
    """Past a step's share, events wait; later ones queue behind them; all fire in order."""
    fired = _listen(hass)
    firer = JobEventFirer(hass)
    burst = EVENTS_PER_STEP * 2 + 5
    for number in range(burst):
        firer.fire({"number": number})
    # The bus calls callback listeners in the same step: the first slice has fired.
    assert fired == list(range(EVENTS_PER_STEP))
    assert firer.waiting == burst - EVENTS_PER_STEP
    await asyncio.sleep(0)
    # A change reported while the burst waits goes behind it, never before.
    firer.fire({"number": burst})
    assert fired == list(range(EVENTS_PER_STEP * 2))
    for _ in range(3):
        await asyncio.sleep(0)
    assert fired == list(range(burst + 1))
    assert firer.waiting == 0


async def test_single_events_fire_at_once(hass: HomeAssistant) -> None:
    """Outside a burst every event fires in the step that reported it."""
    fired = _listen(hass)
    firer = JobEventFirer(hass)
    for number in range(3):
        firer.fire({"number": number})
        assert fired == list(range(number + 1))
        await asyncio.sleep(0)
        await asyncio.sleep(0)


async def test_flush_fires_what_waits(hass: HomeAssistant) -> None:
    """Unloading fires the rest of a burst at once, in order: nothing is dropped."""
    fired = _listen(hass)
    firer = JobEventFirer(hass)
    for number in range(EVENTS_PER_STEP + 10):
        firer.fire({"number": number})
    firer.flush()
    assert fired == list(range(EVENTS_PER_STEP + 10))
    assert firer.waiting == 0
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(fired) == EVENTS_PER_STEP + 10
