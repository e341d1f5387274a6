"""A real Device Builder 1.26.0 receiver paired through the real subentry flow of a real HA.

The "Add build peer" flow runs over Home Assistant's REST API: a wrong key is a form error, the
fingerprint shown is the one the receiver printed, the right key pairs. The peer's entities
then show it connected. An install of a `host:` device is compiled on the receiver first; its
artifact packing fails there for `host:` (the known limit of 1.26.0), so under the default
"local and peers" the compile falls back to this machine, and the device is flashed once with
that build. Removing the subentry closes the link and removes the peer's entities.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from script.devkit.api import HomeAssistantWebSocket
from script.devkit.demo import read_compilation_time
from script.devkit.site import Site
from tests.fakes.real_receiver import RealReceiver

from .harness import E2E_TIMEOUT, JobTracker, StateTracker, install

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(E2E_TIMEOUT)]

FLOW = "/api/config/config_entries/subentries/flow"


@pytest.fixture
async def receiver(tmp_path: Path, socket_enabled: None) -> AsyncIterator[RealReceiver]:
    """A real receiver on 127.0.0.1 with a folder of its own."""
    started = await RealReceiver.start(tmp_path / "receiver")
    try:
        yield started
    finally:
        await started.stop()


async def _post(site: Site, path: str, payload: dict[str, Any]) -> dict[str, Any]:
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


async def test_pair_compile_on_the_real_receiver_fall_back_and_remove(
    e2e_site: Site, ws: HomeAssistantWebSocket, receiver: RealReceiver
) -> None:
    """Pairing, fingerprint, wrong key; a remote attempt that falls back; one flash; removal."""
    site = e2e_site
    form = await _post(site, FLOW, {"handler": [site.entry_id, "build_peer"]})
    assert form["step_id"] == "user"
    form = await _post(
        site, f"{FLOW}/{form['flow_id']}", {"host": "127.0.0.1", "port": receiver.port}
    )
    assert form["step_id"] == "pair", form
    shown = form["description_placeholders"]
    assert shown["emoji"] == receiver.emoji
    assert shown["emoji_names"] == receiver.emoji_names
    assert shown["pin"].replace(" ", "") == receiver.pin

    wrong = await _post(site, f"{FLOW}/{form['flow_id']}", {"pairing_key": "AAAA-BBBB-CCCC-DDDD"})
    assert wrong["errors"] == {"base": "no_pairing_window"}
    subentries = await ws.call("config_entries/subentries/list", entry_id=site.entry_id)
    assert subentries == []

    states = await StateTracker.subscribe(ws)
    done = await _post(site, f"{FLOW}/{form['flow_id']}", {"pairing_key": receiver.pairing_key})
    assert done["type"] == "create_entry", done
    (subentry,) = await ws.call("config_entries/subentries/list", entry_id=site.entry_id)
    prefix = f"{site.entry_id}_peer_{subentry['subentry_id']}_"
    peer_entities = {
        entry["unique_id"].removeprefix(prefix): entry["entity_id"]
        for entry in await ws.entity_registry()
        if entry["unique_id"].startswith(prefix)
    }
    assert set(peer_entities) == {"connected", "state", "esphome_version"}
    await states.wait_for(peer_entities["connected"], lambda s: s["state"] == "on")
    await states.wait_for(peer_entities["state"], lambda s: s["state"] == "idle")

    configuration = site.configurations()[0]
    device = site.devices[configuration]
    receptions_before = device.ota_receptions()
    jobs = await JobTracker.subscribe(ws)
    site.bump(configuration)
    chains = await install(ws, [configuration])
    compile_id = chains[configuration]["compile_job_id"]
    upload_id = chains[configuration]["upload_job_id"]
    await jobs.wait_finished([compile_id, upload_id])

    tried_remote = [
        event for event in jobs.events if event["job_id"] == compile_id and event["peer"]
    ]
    assert tried_remote, jobs.statuses(compile_id)
    assert tried_remote[0]["lane"] == "remote"
    assert tried_remote[0]["source"] == "remote"
    compiled = jobs.latest[compile_id]
    assert compiled["status"] == "completed"
    assert compiled["source"] == "local"
    assert jobs.latest[upload_id]["status"] == "completed"
    assert await read_compilation_time(device.device.api_port) == site.build_time(configuration)
    assert device.ota_receptions() == receptions_before + 1

    await ws.call(
        "config_entries/subentries/delete",
        entry_id=site.entry_id,
        subentry_id=subentry["subentry_id"],
    )
    registry = {entry["unique_id"] for entry in await ws.entity_registry()}
    assert not any(unique_id.startswith(prefix) for unique_id in registry)
