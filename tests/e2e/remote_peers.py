"""What the real-receiver end-to-end tests share: pairing through the real subentry flow, the
peer's device and entities, a job's live log, and removing a peer.

Pairing goes through Home Assistant's REST API exactly as the frontend drives the "Add build
peer" flow (host and port, then the pairing key). A job's log comes from the integration's own
`esphome_pipeline/subscribe_log` WebSocket command, so a test can wait for the first line the
receiver's compile streamed back (the compile is then running there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from script.devkit.api import DOMAIN, HomeAssistantWebSocket
from script.devkit.site import Site
from tests.fakes.real_receiver import RealReceiver

from .harness import EVENT_TIMEOUT, StateTracker

FLOW = "/api/config/config_entries/subentries/flow"
PEER_ENTITY_KEYS = frozenset({"connected", "state", "esphome_version"})


async def post(site: Site, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST to Home Assistant's REST API as the site's user; return the JSON answer."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{site.base_url}{path}",
            json=payload,
            headers={"Authorization": f"Bearer {site.token}"},
        ) as response,
    ):
        answer: dict[str, Any] = await response.json()
        assert response.status == 200, answer
        return answer


async def start_pairing(site: Site, receiver: RealReceiver) -> dict[str, Any]:
    """Open the "Add build peer" flow and enter the receiver's address; return the key form."""
    form = await post(site, FLOW, {"handler": [site.entry_id, "build_peer"]})
    assert form["step_id"] == "user", form
    form = await post(
        site, f"{FLOW}/{form['flow_id']}", {"host": "127.0.0.1", "port": receiver.port}
    )
    assert form["step_id"] == "pair", form
    return form


@dataclass(slots=True)
class PairedPeer:
    """A receiver paired through the flow: its subentry, device and entities."""

    receiver: RealReceiver
    subentry_id: str
    entities: dict[str, str]
    """Entity ids by key (`connected`, `state`, `esphome_version`)."""
    label: str = ""
    """Its name: the name of its device, the `peer` of its jobs."""
    device_id: str = ""

    def unique_id_prefix(self, entry_id: str) -> str:
        """The prefix of the peer entities' unique ids."""
        return f"{entry_id}_peer_{self.subentry_id}_"


async def subentry_ids(ws: HomeAssistantWebSocket, site: Site) -> set[str]:
    """The ids of the entry's subentries now."""
    listed = await ws.call("config_entries/subentries/list", entry_id=site.entry_id)
    return {subentry["subentry_id"] for subentry in listed}


async def finish_pairing(
    site: Site, ws: HomeAssistantWebSocket, receiver: RealReceiver, form: dict[str, Any]
) -> PairedPeer:
    """Enter the receiver's key into the open key form; return the paired peer."""
    before = await subentry_ids(ws, site)
    done = await post(site, f"{FLOW}/{form['flow_id']}", {"pairing_key": receiver.pairing_key})
    assert done["type"] == "create_entry", done
    listed = await ws.call("config_entries/subentries/list", entry_id=site.entry_id)
    (subentry,) = [item for item in listed if item["subentry_id"] not in before]
    peer = PairedPeer(receiver, subentry["subentry_id"], {})
    prefix = peer.unique_id_prefix(site.entry_id)
    entries = [
        entry for entry in await ws.entity_registry() if entry["unique_id"].startswith(prefix)
    ]
    peer.entities = {
        entry["unique_id"].removeprefix(prefix): entry["entity_id"] for entry in entries
    }
    assert set(peer.entities) == PEER_ENTITY_KEYS, peer.entities
    # Each peer is a device of its own, holding its three entities.
    (device,) = [
        device
        for device in await ws.device_registry()
        if [DOMAIN, f"{site.entry_id}_peer_{peer.subentry_id}"] in device["identifiers"]
    ]
    assert {entry["device_id"] for entry in entries} == {device["id"]}
    peer.label = device["name"]
    peer.device_id = device["id"]
    return peer


async def pair(site: Site, ws: HomeAssistantWebSocket, receiver: RealReceiver) -> PairedPeer:
    """Pair `receiver` through the flow with its printed key."""
    return await finish_pairing(site, ws, receiver, await start_pairing(site, receiver))


async def wait_peer_ready(states: StateTracker, peer: PairedPeer) -> None:
    """Wait until the peer shows connected and idle, with the receiver's ESPHome version."""
    await states.wait_for(peer.entities["connected"], lambda s: s["state"] == "on")
    await states.wait_for(peer.entities["state"], lambda s: s["state"] == "idle")
    await states.wait_for(peer.entities["esphome_version"], lambda s: s["state"] == "2026.10.0")


async def remove_peer(ws: HomeAssistantWebSocket, site: Site, peer: PairedPeer) -> None:
    """Delete the peer's subentry (as the frontend's delete button does)."""
    await ws.call(
        "config_entries/subentries/delete", entry_id=site.entry_id, subentry_id=peer.subentry_id
    )


async def remove_every_peer(ws: HomeAssistantWebSocket, site: Site) -> None:
    """Leave the shared site without build peers (other e2e tests compile locally)."""
    for subentry_id in await subentry_ids(ws, site):
        await ws.call(
            "config_entries/subentries/delete", entry_id=site.entry_id, subentry_id=subentry_id
        )


async def pin_issues(ws: HomeAssistantWebSocket) -> set[str]:
    """The ids of the integration's open "build peer identity changed" repair issues."""
    listed = await ws.call("repairs/list_issues")
    return {
        issue["issue_id"]
        for issue in listed["issues"]
        if issue["domain"] == DOMAIN and issue["issue_id"].startswith("peer_pin_changed_")
    }


class JobLog:
    """A job's log lines as Home Assistant streams them (`esphome_pipeline/subscribe_log`)."""

    def __init__(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Follow the events arriving in `queue`."""
        self._queue = queue
        self.lines: list[str] = []

    @classmethod
    async def follow(cls, ws: HomeAssistantWebSocket, job_id: str) -> JobLog:
        """Subscribe to a job's log."""
        return cls(await ws.subscribe(f"{DOMAIN}/subscribe_log", job_id=job_id))

    async def wait_for(self, predicate: Callable[[list[str]], bool]) -> list[str]:
        """Consume log events until `predicate(lines)` holds; return the lines."""
        async with asyncio.timeout(EVENT_TIMEOUT):
            while not predicate(self.lines):
                event = await self._queue.get()
                if event.get("event") in {"log", "lines"}:
                    self.lines.extend(event["lines"])
        return self.lines

    async def until_result(self) -> list[str]:
        """Consume log events until the job's result; return every line it logged."""
        async with asyncio.timeout(EVENT_TIMEOUT):
            while (event := await self._queue.get()).get("event") != "result":
                if event.get("event") in {"log", "lines"}:
                    self.lines.extend(event["lines"])
        return self.lines

    async def wait_for_peer_output(self) -> list[str]:
        """Wait until the compile streams its first line back from the peer (it builds now)."""

        def streaming(lines: list[str]) -> bool:
            starts = [i for i, line in enumerate(lines) if line.startswith("Building on peer")]
            return bool(starts) and len(lines) > starts[-1] + 1

        return await self.wait_for(streaming)


async def until(predicate: Callable[[], bool], timeout: float = EVENT_TIMEOUT) -> None:
    """Wait until `predicate()` holds, for states without an event (processes, sockets).

    A bounded look every 50 ms; the timeout is a failure guard, not part of what is checked.
    """
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)
