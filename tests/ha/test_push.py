"""The push scheduler alone: slices of a burst, the progress interval, stopping."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import timedelta

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.esphome_pipeline.engine.models import JobStatus, JobType
from custom_components.esphome_pipeline.push import (
    CONFIGURATIONS_PER_STEP,
    PROGRESS_INTERVAL,
    PushScheduler,
)
from tests.engine.conftest import job


class Recorder:
    """A publish function that records what it was asked to publish."""

    def __init__(self) -> None:
        self.calls: list[tuple[set[str], bool]] = []

    def __call__(self, configurations: Collection[str], queue: bool) -> None:
        self.calls.append((set(configurations), queue))


async def test_a_burst_is_published_in_slices(hass: HomeAssistant) -> None:
    """More changed configurations than a step holds: one slice per loop iteration, all of them."""
    published = Recorder()
    push = PushScheduler(hass, published)
    names = [f"node-{number}.yaml" for number in range(CONFIGURATIONS_PER_STEP * 2 + 1)]
    for name in names:
        push.status(job(name, JobType.COMPILE))
    for _ in range(4):  # one slice per loop iteration
        await asyncio.sleep(0)
    assert [len(configurations) for configurations, _ in published.calls] == [
        CONFIGURATIONS_PER_STEP,
        CONFIGURATIONS_PER_STEP,
        1,
    ]
    assert [queue for _, queue in published.calls] == [True, False, False]
    assert set().union(*(configurations for configurations, _ in published.calls)) == set(names)


async def test_status_cancels_a_waiting_progress_push(hass: HomeAssistant) -> None:
    """A status change publishes at once and makes the pending progress push unnecessary."""
    published = Recorder()
    push = PushScheduler(hass, published)
    running = job("kitchen.yaml", JobType.COMPILE, JobStatus.RUNNING, progress=10)
    push.progress(running)  # the first: at once
    running.progress = 20
    push.progress(running)  # within the interval: waits
    running.progress = 30
    push.progress(running)  # already waiting: the pending push reads the newest value
    await hass.async_block_till_done()
    assert len(published.calls) == 1
    running.status = JobStatus.COMPLETED
    push.status(running)
    await hass.async_block_till_done()
    assert published.calls[-1] == ({"kitchen.yaml"}, True)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=PROGRESS_INTERVAL * 2))
    await hass.async_block_till_done()
    assert len(published.calls) == 2
    push.progress(running)  # a finished job pushes no progress
    await hass.async_block_till_done()
    assert len(published.calls) == 2


async def test_stop_drops_what_waits(hass: HomeAssistant) -> None:
    """After `stop` nothing is published: neither the pending slice nor a progress push."""
    published = Recorder()
    push = PushScheduler(hass, published)
    running = job("kitchen.yaml", JobType.COMPILE, JobStatus.RUNNING, progress=10)
    push.progress(running)
    running.progress = 20
    push.progress(running)
    push.status(job("garage.yaml", JobType.COMPILE))
    push.stop()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=PROGRESS_INTERVAL * 2))
    await hass.async_block_till_done()
    assert published.calls == []
    push.configurations_changed(["garage.yaml"])
    await hass.async_block_till_done()
    assert published.calls == []


async def test_listeners_are_called_until_removed(hass: HomeAssistant) -> None:
    """Each listener hears its own configuration (or the queue) until it is removed."""
    push = PushScheduler(hass, Recorder())
    heard: list[str] = []
    remove_kitchen = push.add_configuration_listener("kitchen.yaml", lambda: heard.append("k"))
    remove_queue = push.add_queue_listener(lambda: heard.append("q"))
    push.notify(["kitchen.yaml", "garage.yaml"], queue=True)
    assert heard == ["k", "q"]
    remove_kitchen()
    remove_kitchen()
    remove_queue()
    remove_queue()
    push.notify(["kitchen.yaml"], queue=True)
    assert heard == ["k", "q"]
