"""Uploads to real devices that are away or come back wrong: the offline hold and the proof.

A stopped device gets its compile, and its upload waits held "device offline" (the sensor and
the update entity say so) until the device runs again: the engine's polling notices it and
the upload runs by itself, proven on the device's native API. A device that comes back with
the build it ran before (here: the image in the build folder is swapped for the old one
while the upload waits, so the device really receives and restarts into its old build) fails
the proof with a clear error.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import aiohttp
import pytest

from script.devkit.api import HomeAssistantWebSocket, set_options
from script.devkit.demo import program_path, read_compilation_time
from script.devkit.site import Site

from .harness import E2E_TIMEOUT, JobTracker, StateTracker, entity_ids, install

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(E2E_TIMEOUT)]

OFFLINE = "device offline"


def held_offline(tracker: JobTracker, job_id: str) -> bool:
    """The upload's latest event says it waits for its device."""
    job = tracker.latest.get(job_id)
    return job is not None and job["status"] == "queued" and job.get("held_reason") == OFFLINE


async def set_proof_timeout(site: Site, ws: HomeAssistantWebSocket, seconds: int) -> None:
    """Change the option through the options flow; return once the entry is loaded again."""
    changes = await ws.entry_states()
    await changes.get()  # the entries as they are now
    async with aiohttp.ClientSession() as session:
        await set_options(
            session, site.base_url, site.token, site.entry_id, {"proof_timeout": seconds}
        )
    reloading = False
    while True:
        for change in await changes.get():
            entry = change["entry"]
            if entry["entry_id"] != site.entry_id:
                continue
            if entry["state"] != "loaded":
                reloading = True
            elif reloading:
                return


async def install_while_stopped(
    site: Site, ws: HomeAssistantWebSocket, jobs: JobTracker, configuration: str
) -> dict[str, Any]:
    """Stop the device, change its firmware, install; return once the upload waits for it."""
    device = site.devices[configuration]
    await asyncio.to_thread(device.stop)
    await asyncio.to_thread(site.bump, configuration)
    chain = (await install(ws, [configuration]))[configuration]
    await jobs.wait_for(lambda: held_offline(jobs, chain["upload_job_id"]))
    assert jobs.status(chain["compile_job_id"]) == "completed"
    return chain


async def test_offline_device_gets_its_upload_when_it_comes_back(
    e2e_site: Site, ws: HomeAssistantWebSocket
) -> None:
    """Held "device offline" while stopped; started, the upload runs by itself, proven."""
    site = e2e_site
    configuration = site.configurations()[-1]
    device = site.devices[configuration]
    entities = await entity_ids(ws, site.entry_id, configuration)
    states = await StateTracker.subscribe(ws)
    jobs = await JobTracker.subscribe(ws)
    receptions_before = device.ota_receptions()

    chain = await install_while_stopped(site, ws, jobs, configuration)
    upload_id = chain["upload_job_id"]

    upload = await states.wait_for(
        entities["upload"],
        lambda s: s["state"] == "waiting" and s["attributes"].get("held_reason") == OFFLINE,
    )
    assert upload["attributes"]["job_id"] == upload_id
    firmware = await states.wait_for(
        entities["firmware"],
        lambda s: (s["attributes"].get("release_summary") or "").startswith("waiting: "),
    )
    assert firmware["attributes"]["release_summary"].startswith(f"waiting: {OFFLINE}")
    assert firmware["attributes"]["in_progress"] is False
    assert device.ota_receptions() == receptions_before

    await asyncio.to_thread(device.start)
    await jobs.wait_finished([upload_id])
    assert jobs.latest[upload_id]["status"] == "completed", jobs.latest[upload_id]
    assert jobs.statuses(upload_id)[-2:] == ["running", "completed"]
    assert await read_compilation_time(device.device.api_port) == site.build_time(configuration)
    assert device.ota_receptions() == receptions_before + 1


async def test_device_back_on_its_old_build_fails_the_proof(
    e2e_site: Site, ws: HomeAssistantWebSocket
) -> None:
    """The device restarts into the build it ran before: the upload fails, saying so."""
    site = e2e_site
    configuration = site.configurations()[-1]
    device = site.devices[configuration]
    jobs = await JobTracker.subscribe(ws)
    await set_proof_timeout(site, ws, 5)
    new_program = program_path(site.folder, device.device)
    kept = new_program.with_name("program.new-build")
    try:
        chain = await install_while_stopped(site, ws, jobs, configuration)
        old_build = await asyncio.to_thread(lambda: device.program.read_bytes())
        await asyncio.to_thread(shutil.copy2, new_program, kept)
        await asyncio.to_thread(new_program.write_bytes, old_build)

        await asyncio.to_thread(device.start)
        old_time = await read_compilation_time(device.device.api_port)
        upload_id = chain["upload_job_id"]
        await jobs.wait_finished([upload_id])
        upload = jobs.latest[upload_id]
        assert upload["status"] == "failed", upload
        assert upload["error"].startswith(
            "the device did not come back with the new firmware within 5 s "
            f"(the device runs another build: ESPHome 2026.10.0, built {old_time} "
        )
        assert upload["exit_code"] == 0  # ESPHome's upload itself succeeded
        assert await read_compilation_time(device.device.api_port) == old_time
    finally:
        if await asyncio.to_thread(kept.exists):
            await asyncio.to_thread(kept.replace, new_program)
        await set_proof_timeout(site, ws, 60)
