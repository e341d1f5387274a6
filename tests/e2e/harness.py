"""What the end-to-end tests share: trackers that wait on real events, and action helpers.

The site under test (`script.devkit.site.Site`) is one real Home Assistant (its own
configuration folder and a free port) with ESPHome Pipeline set up through the config flow on a
folder of demo `host:` devices, and those devices running. Tests drive it only through Home
Assistant's WebSocket API and the devices' native API, and synchronise on
`esphome_pipeline_job` and `state_changed` events; timeouts are generous failure guards, never
part of what is asserted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from script.devkit.api import DOMAIN, HomeAssistantWebSocket

TERMINAL = frozenset({"completed", "failed", "cancelled"})
E2E_TIMEOUT = 900
"""Per-test guard (seconds) for e2e tests: the first one also compiles every device cold."""
EVENT_TIMEOUT = 240.0
"""Failure guard for one wait on events: far above any real compile here (cold ~10-20 s)."""


class JobTracker:
    """Every `esphome_pipeline_job` event of a subscription, and each job's latest state."""

    def __init__(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Track the events arriving in `queue` (from `subscribe_events`)."""
        self._queue = queue
        self.events: list[dict[str, Any]] = []
        self.latest: dict[str, dict[str, Any]] = {}

    @classmethod
    async def subscribe(cls, ws: HomeAssistantWebSocket) -> JobTracker:
        """Subscribe to the job event on `ws`."""
        return cls(await ws.subscribe_events("esphome_pipeline_job"))

    def status(self, job_id: str) -> str | None:
        """The latest status seen for a job."""
        job = self.latest.get(job_id)
        return None if job is None else str(job["status"])

    def statuses(self, job_id: str) -> list[str]:
        """The statuses a job went through, in event order (a repeat, e.g. when a held job
        is released and stays `queued`, is listed once)."""
        seen: list[str] = []
        for event in self.events:
            if event["job_id"] == job_id and (not seen or seen[-1] != event["status"]):
                seen.append(event["status"])
        return seen

    def index(self, job_id: str, status: str) -> int:
        """Position of a job's first event with `status` among all events."""
        for position, event in enumerate(self.events):
            if event["job_id"] == job_id and event["status"] == status:
                return position
        raise AssertionError(f"no {status} event for {job_id}: {self.statuses(job_id)}")

    def finished(self, job_ids: Iterable[str]) -> bool:
        """True when every job reached a terminal status."""
        return all(self.status(job_id) in TERMINAL for job_id in job_ids)

    async def next_event(self) -> dict[str, Any]:
        """The next job event (its data), waiting for it."""
        event = await self._queue.get()
        data: dict[str, Any] = event["data"]
        return data

    def record(self, data: dict[str, Any]) -> None:
        """Add one event's data to the history and the latest state."""
        self.events.append(data)
        self.latest[data["job_id"]] = data

    async def wait_for(
        self, predicate: Callable[[], bool], *, timeout: float = EVENT_TIMEOUT
    ) -> None:
        """Consume events until `predicate()` holds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self.record(await self.next_event())

    async def wait_finished(self, job_ids: Iterable[str]) -> None:
        """Wait until every job reached a terminal status."""
        ids = list(job_ids)
        await self.wait_for(lambda: self.finished(ids))


class StateTracker:
    """Entity states kept current from `state_changed` events."""

    def __init__(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Track the `state_changed` events arriving in `queue`."""
        self._queue = queue
        self.states: dict[str, dict[str, Any]] = {}

    @classmethod
    async def subscribe(cls, ws: HomeAssistantWebSocket) -> StateTracker:
        """Subscribe first, then read every state, so no change falls in between."""
        tracker = cls(await ws.subscribe_events("state_changed"))
        tracker.states = await ws.states()
        return tracker

    async def wait_for(
        self,
        entity_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = EVENT_TIMEOUT,
    ) -> dict[str, Any]:
        """Consume state changes until `entity_id`'s state satisfies `predicate`."""
        async with asyncio.timeout(timeout):
            while (state := self.states.get(entity_id)) is None or not predicate(state):
                event = await self._queue.get()
                data = event["data"]
                if data.get("new_state") is not None:
                    self.states[data["entity_id"]] = data["new_state"]
        return state


async def entity_ids(
    ws: HomeAssistantWebSocket, entry_id: str, configuration: str
) -> dict[str, str]:
    """The configuration's entity ids by contract key (`firmware`, `compile`, ...)."""
    prefix = f"{entry_id}_{configuration}_"
    return {
        entry["unique_id"].removeprefix(prefix): entry["entity_id"]
        for entry in await ws.entity_registry()
        if entry.get("config_entry_id") == entry_id and entry["unique_id"].startswith(prefix)
    }


async def install(
    ws: HomeAssistantWebSocket, configurations: list[str]
) -> dict[str, dict[str, str]]:
    """Call `esphome_pipeline.install`; return its chains by configuration."""
    response = await ws.call_service(
        DOMAIN, "install", {"configuration": configurations}, return_response=True
    )
    return {chain["configuration"]: chain for chain in response["jobs"]}


def chain_ids(chains: dict[str, dict[str, str]]) -> list[str]:
    """Every compile and upload job id of the chains."""
    return [
        job_id
        for chain in chains.values()
        for job_id in (chain["compile_job_id"], chain["upload_job_id"])
    ]


async def wait_jobs_finished(
    ws: HomeAssistantWebSocket, tracker: JobTracker, job_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """Wait until `get_jobs` shows every job terminal; re-read it after each job event.

    For a connection opened mid-way (after a restart): events queued before the first
    `get_jobs` answer may be older than it, so the jobs are judged by `get_jobs` alone and
    the subscription (opened first) only says when to look again.
    """
    async with asyncio.timeout(EVENT_TIMEOUT):
        while True:
            listed = {job["job_id"]: job for job in await ws.get_jobs()}
            if all(listed[job_id]["status"] in TERMINAL for job_id in job_ids):
                return listed
            event = await tracker.next_event()
            tracker.record(event)
