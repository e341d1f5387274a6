"""One real Device Builder 1.26.0 receiver, paired through the real subentry flow of a real HA.

One receiver and one Home Assistant carry the whole story, in the order a user meets it:

- pairing: the fingerprint shown is the one the receiver printed, a wrong key is a form error
  that stores nothing, the right key pairs; the peer is a device showing connected, idle and
  the receiver's ESPHome version;
- cancel of a remote compile: the receiver's compile (its whole process session) ends, nothing
  is flashed, the peer is idle again;
- the receiver restarts (same folder, same identity): the link comes back by itself, no repair
  issue;
- the receiver is killed mid-build: the compile is sent again, here to this machine (the lost
  peer does not qualify), and the device is flashed once with that build;
- a receiver with another identity now answers on the same address: the peer shows rejected,
  a repair issue opens, and that receiver never gets past the handshake (no link, no job);
- removing the peer removes its entities and its repair issue.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from script.devkit.api import DOMAIN, HomeAssistantWebSocket
from script.devkit.demo import read_compilation_time
from script.devkit.site import Site
from tests.fakes.real_receiver import RealReceiver, processes_in_sessions

from .harness import E2E_TIMEOUT, EVENT_TIMEOUT, JobTracker, StateTracker, install
from .remote_peers import (
    FLOW,
    JobLog,
    finish_pairing,
    pin_issues,
    post,
    remove_every_peer,
    remove_peer,
    start_pairing,
    subentry_ids,
    until,
    wait_peer_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(E2E_TIMEOUT)]

CANCELLED_THERE = r"Job \w+ cancelled mid-run"
"""Device Builder's log line once a cancel stopped a running compile."""


async def test_one_real_receiver_from_pairing_to_a_changed_identity(
    e2e_site: Site, ws: HomeAssistantWebSocket, tmp_path: Path
) -> None:
    """Pairing, cancel, restart, kill mid-build, changed identity, removal (see the module)."""
    site = e2e_site
    receiver = await RealReceiver.start(tmp_path / "receiver")
    started = [receiver]
    try:
        states = await StateTracker.subscribe(ws)
        jobs = await JobTracker.subscribe(ws)

        # --- pairing
        form = await start_pairing(site, receiver)
        shown = form["description_placeholders"]
        assert shown["emoji"] == receiver.emoji
        assert shown["emoji_names"] == receiver.emoji_names
        assert shown["pin"].replace(" ", "") == receiver.pin
        wrong = await post(
            site, f"{FLOW}/{form['flow_id']}", {"pairing_key": "AAAA-BBBB-CCCC-DDDD"}
        )
        assert wrong["errors"] == {"base": "no_pairing_window"}
        assert await subentry_ids(ws, site) == set()
        peer = await finish_pairing(site, ws, receiver, wrong)
        await wait_peer_ready(states, peer)

        configuration = site.configurations()[0]
        device = site.devices[configuration]
        receptions = device.ota_receptions()

        # --- cancel mid-build: the receiver's compile ends, with its whole process session
        site.bump(configuration)
        chain = (await install(ws, [configuration]))[configuration]
        compile_id, upload_id = chain["compile_job_id"], chain["upload_job_id"]
        await (await JobLog.follow(ws, compile_id)).wait_for_peer_output()
        compile_sessions = receiver.compile_sessions()
        assert compile_sessions, receiver.log[-20:]
        since = len(receiver.log)
        await ws.call_service(DOMAIN, "cancel", {"job_id": compile_id}, return_response=True)
        await jobs.wait_finished([compile_id, upload_id])
        assert jobs.status(compile_id) == "cancelled"
        assert jobs.status(upload_id) == "cancelled"
        assert any(
            event["job_id"] == compile_id and event["peer"] == peer.label for event in jobs.events
        )
        await receiver.wait_for_log(CANCELLED_THERE, since=since)
        await until(lambda: not processes_in_sessions(compile_sessions))
        await states.wait_for(peer.entities["state"], lambda s: s["state"] == "idle")
        assert device.ota_receptions() == receptions

        # --- the receiver restarts with the same identity: the link comes back by itself
        await receiver.stop()
        await states.wait_for(peer.entities["connected"], lambda s: s["state"] == "off")
        await states.wait_for(peer.entities["state"], lambda s: s["state"] == "offline")
        receiver = await RealReceiver.start(receiver.folder, port=receiver.port)
        started.append(receiver)
        assert receiver.port == peer.receiver.port
        await wait_peer_ready(states, peer)
        assert await pin_issues(ws) == set()

        # --- killed mid-build: sent again, compiled here, flashed once
        chain = (await install(ws, [configuration]))[configuration]
        compile_id, upload_id = chain["compile_job_id"], chain["upload_job_id"]
        log = await JobLog.follow(ws, compile_id)
        await log.wait_for_peer_output()
        await receiver.kill()
        await log.wait_for(lambda lines: any("sending the compile again" in x for x in lines))

        # --- another identity on the same address: rejected, repair issue, nothing sent
        impostor = await RealReceiver.start(tmp_path / "impostor", port=receiver.port)
        started.append(impostor)
        assert impostor.port == receiver.port
        assert impostor.pin != receiver.pin
        await states.wait_for(peer.entities["state"], lambda s: s["state"] == "rejected")
        assert await pin_issues(ws) == {f"peer_pin_changed_{site.entry_id}_{peer.subentry_id}"}

        await jobs.wait_finished([compile_id, upload_id])
        compiled = jobs.latest[compile_id]
        assert compiled["status"] == "completed", jobs.statuses(compile_id)
        assert compiled["source"] == "local"
        assert jobs.status(upload_id) == "completed"
        assert device.ota_receptions() == receptions + 1
        assert await read_compilation_time(device.device.api_port) == site.build_time(configuration)
        # The impostor saw a connection, but no handshake got as far as our hello, so it never
        # decided on a link, let alone received a job.
        assert any("peer-link WS accepted" in line for line in impostor.log)
        assert not any("peer-link peer_link from" in line for line in impostor.log)
        assert not any("submit_job from" in line for line in impostor.log)

        # --- removal: the entities and the repair issue go with the peer
        issues = await ws.subscribe_events("repairs_issue_registry_updated")
        await remove_peer(ws, site, peer)
        registry = {entry["unique_id"] for entry in await ws.entity_registry()}
        assert not any(uid.startswith(peer.unique_id_prefix(site.entry_id)) for uid in registry)
        async with asyncio.timeout(EVENT_TIMEOUT):
            while await pin_issues(ws):
                await issues.get()
    finally:
        await remove_every_peer(ws, site)
        for each in started:
            await each.stop()
