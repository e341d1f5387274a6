"""Three real Device Builder 1.26.0 receivers as build peers of one real Home Assistant.

Each receiver has its own folder and port and is paired through the real subentry flow; each
becomes a device with its three entities, connected and idle. An install of every demo device
then compiles on all three peers at once while this machine's compile lane takes the fourth
(the overflow); the receivers stream the compile output into the jobs. One peer is removed
mid-build: its link closes and its compile on the receiver is cancelled (its process session
ends) instead of running on for nobody, and the job is sent again. The other two compiles
finish there and meet the known limit of 1.26.0 (it cannot pack artifacts for `host:`), so they
fall back to this machine under the default "local and peers". Every device is flashed once,
with the build that came out of this.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
import time

import pytest

from script.devkit.api import HomeAssistantWebSocket
from script.devkit.demo import read_compilation_time
from script.devkit.site import Site
from tests.fakes.real_receiver import RealReceiver, processes_in_sessions

from .harness import E2E_TIMEOUT, JobTracker, StateTracker, chain_ids, install
from .remote_peers import JobLog, pair, remove_every_peer, remove_peer, until, wait_peer_ready

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(E2E_TIMEOUT)]

_LOGGER = logging.getLogger(__name__)
PEERS = 3


async def test_three_real_receivers_build_at_once_and_one_is_removed_mid_build(
    e2e_site: Site, ws: HomeAssistantWebSocket, tmp_path: Path
) -> None:
    """Pair three, compile on all of them at once, remove one mid-build, flash each once."""
    site = e2e_site
    receivers = list(
        await asyncio.gather(
            *(RealReceiver.start(tmp_path / f"receiver-{number}") for number in range(PEERS))
        )
    )
    try:
        states = await StateTracker.subscribe(ws)
        peers = [await pair(site, ws, receiver) for receiver in receivers]
        assert len({peer.device_id for peer in peers}) == PEERS
        assert len({peer.label for peer in peers}) == PEERS
        for peer in peers:
            await wait_peer_ready(states, peer)

        configurations = site.configurations()
        assert len(configurations) == PEERS + 1
        for configuration in configurations:
            site.bump(configuration)
        receptions = {c: site.devices[c].ota_receptions() for c in configurations}
        jobs = await JobTracker.subscribe(ws)
        chains = await install(ws, configurations)
        compile_ids = [chain["compile_job_id"] for chain in chains.values()]

        def running_on() -> list[str | None]:
            return [
                job["peer"]
                for job_id in compile_ids
                if (job := jobs.latest.get(job_id)) is not None and job["status"] == "running"
            ]

        # All three peers build at once, and this machine takes the fourth compile.
        await jobs.wait_for(
            lambda: sorted(map(str, running_on()))
            == sorted(["None", *(peer.label for peer in peers)])
        )
        remote = {
            jobs.latest[job_id]["peer"]: job_id
            for job_id in compile_ids
            if jobs.latest[job_id]["peer"] is not None
        }
        for job_id in remote.values():
            assert jobs.latest[job_id]["lane"] == "remote"
            assert jobs.latest[job_id]["source"] == "remote"

        # Remove one peer while its receiver compiles.
        victim = peers[-1]
        victim_job = remote[victim.label]
        await (await JobLog.follow(ws, victim_job)).wait_for_peer_output()
        sessions = victim.receiver.compile_sessions()
        assert sessions, victim.receiver.log[-20:]
        assert victim.receiver.established_links() > 0
        since = len(victim.receiver.log)
        removed_at = time.monotonic()
        await remove_peer(ws, site, victim)
        await until(lambda: victim.receiver.established_links() == 0)
        # Measured, not asserted (no timing assertions in tests): printed with --log-cli-level.
        _LOGGER.info(
            "Link to the removed peer closed %.2f s after the removal",
            time.monotonic() - removed_at,
        )
        await victim.receiver.wait_for_log(r"Job \w+ cancelled mid-run", since=since)
        await until(lambda: not processes_in_sessions(sessions))
        registry = {entry["unique_id"] for entry in await ws.entity_registry()}
        assert not any(uid.startswith(victim.unique_id_prefix(site.entry_id)) for uid in registry)

        await jobs.wait_finished(chain_ids(chains))
        for configuration, chain in chains.items():
            compiled = jobs.latest[chain["compile_job_id"]]
            assert compiled["status"] == "completed", jobs.statuses(chain["compile_job_id"])
            assert compiled["source"] == "local"
            assert jobs.status(chain["upload_job_id"]) == "completed"
            device = site.devices[configuration]
            assert device.ota_receptions() == receptions[configuration] + 1
            assert await read_compilation_time(device.device.api_port) == site.build_time(
                configuration
            )
        victim_log = await (await JobLog.follow(ws, victim_job)).until_result()
        assert any(f"Lost peer {victim.label}" in line for line in victim_log), victim_log
        assert any("sending the compile again" in line for line in victim_log)
        for label, job_id in remote.items():
            if label == victim.label:
                continue
            lines = await (await JobLog.follow(ws, job_id)).until_result()
            assert any("ESPHome 2026.10.0" in line and label in line for line in lines), lines
            assert any("no artifact_platforms module" in line for line in lines)
            assert any("compiling on this machine instead" in line for line in lines)
    finally:
        await remove_every_peer(ws, site)
        for receiver in receivers:
            await receiver.stop()
