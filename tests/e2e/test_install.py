"""Installs on real devices: one device, the whole fleet in bulk, and a broken configuration.

Each test changes the firmware of the configurations it installs (a new revision), so every
compile is a real rebuild and every upload a real OTA of a new image; the device then proves on
its native API that it runs exactly that build (`compilation_time == build_time_str`).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from script.devkit.api import HomeAssistantWebSocket, entry_diagnostics
from script.devkit.demo import (
    read_compilation_time,
    write_broken_configuration,
    write_configuration,
)
from script.devkit.site import Site

from .harness import E2E_TIMEOUT, JobTracker, StateTracker, chain_ids, entity_ids, install

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(E2E_TIMEOUT)]


async def test_install_one_device(e2e_site: Site, ws: HomeAssistantWebSocket) -> None:
    """A real compile, a real OTA; the device runs the new build; states and events agree."""
    site = e2e_site
    configuration = site.configurations()[0]
    device = site.devices[configuration]
    receptions_before = device.ota_receptions()
    entities = await entity_ids(ws, site.entry_id, configuration)
    assert {"firmware", "compile", "upload", "install", "clean"} <= entities.keys()
    states = await StateTracker.subscribe(ws)
    jobs = await JobTracker.subscribe(ws)
    site.bump(configuration)

    chains = await install(ws, [configuration])

    assert list(chains) == [configuration]
    compile_id = chains[configuration]["compile_job_id"]
    upload_id = chains[configuration]["upload_job_id"]
    await jobs.wait_finished([compile_id, upload_id])
    assert jobs.statuses(compile_id) == ["queued", "running", "completed"]
    assert jobs.statuses(upload_id) == ["queued", "running", "completed"]
    # The upload waited for its compile.
    assert jobs.index(upload_id, "running") > jobs.index(compile_id, "completed")
    first_upload_event = jobs.events[jobs.index(upload_id, "queued")]
    assert first_upload_event["held"] is True  # behind its compile
    upload = jobs.latest[upload_id]
    assert upload["held"] is False
    assert upload["depends_on"] == compile_id
    assert upload["job_type"] == "upload"
    # The decided mapping: `OTA` of a `host:` node means this machine (ESPHome cannot resolve it).
    assert upload["port"] == "127.0.0.1"
    assert upload["exit_code"] == 0
    assert upload["error"] is None
    assert jobs.latest[compile_id]["skipped"] is None

    assert await read_compilation_time(device.device.api_port) == site.build_time(configuration)
    assert device.ota_receptions() == receptions_before + 1

    # The sensors show this install's jobs (an earlier test may have left another completed
    # install of the same device: wait for these job ids, not only for the state).
    await states.wait_for(
        entities["compile"],
        lambda s: s["state"] == "completed" and s["attributes"]["job_id"] == compile_id,
    )
    upload_state = await states.wait_for(
        entities["upload"],
        lambda s: s["state"] == "completed" and s["attributes"]["job_id"] == upload_id,
    )
    assert upload_state["attributes"]["job_id"] == upload_id
    firmware = await states.wait_for(
        entities["firmware"], lambda s: s["attributes"].get("in_progress") is False
    )
    assert firmware["state"] == "off"  # up to date: installed == latest

    listed = {job["job_id"]: job for job in await ws.get_jobs(configuration=[configuration])}
    assert listed[compile_id]["status"] == "completed"
    assert listed[upload_id]["status"] == "completed"


async def test_bulk_install_overlaps_compiles_and_uploads(
    e2e_site: Site, ws: HomeAssistantWebSocket
) -> None:
    """Every device gets its new build; an upload runs while another device compiles."""
    site = e2e_site
    configurations = site.configurations()
    receptions_before = {c: site.devices[c].ota_receptions() for c in configurations}
    jobs = await JobTracker.subscribe(ws)
    for configuration in configurations:
        site.bump(configuration)

    chains = await install(ws, configurations)

    assert sorted(chains) == sorted(configurations)
    all_ids = chain_ids(chains)
    await jobs.wait_finished(all_ids)
    assert {jobs.status(i) for i in all_ids} == {"completed"}

    compiles = [jobs.latest[chain["compile_job_id"]] for chain in chains.values()]
    uploads = [jobs.latest[chain["upload_job_id"]] for chain in chains.values()]
    assert any(
        _overlap(c, u)
        for c in compiles
        for u in uploads
        if c["configuration"] != u["configuration"]
    )
    for chain in chains.values():
        compiled, uploaded = (
            jobs.latest[chain["compile_job_id"]],
            jobs.latest[chain["upload_job_id"]],
        )
        assert uploaded["started_at"] >= compiled["finished_at"]

    for configuration in configurations:
        device = site.devices[configuration]
        assert await read_compilation_time(device.device.api_port) == site.build_time(configuration)
        assert device.ota_receptions() == receptions_before[configuration] + 1


def _overlap(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """True when two finished jobs ran at the same time (by their own ISO 8601 UTC stamps)."""
    return bool(
        first["started_at"] < second["finished_at"] and second["started_at"] < first["finished_at"]
    )


async def test_bad_configuration_fails_alone(e2e_site: Site, ws: HomeAssistantWebSocket) -> None:
    """ESPHome's validation error lands in the failed compile; the other device installs."""
    site = e2e_site
    broken, healthy = site.configurations()[1], site.configurations()[2]
    broken_device = site.devices[broken]
    receptions_before = broken_device.ota_receptions()
    running_before = await read_compilation_time(broken_device.device.api_port)
    jobs = await JobTracker.subscribe(ws)
    write_broken_configuration(site.folder, site.demo(broken))
    site.bump(healthy)
    try:
        chains = await install(ws, [broken, healthy])
        await jobs.wait_finished(chain_ids(chains))
    finally:
        write_configuration(site.folder, site.demo(broken), revision=site.revisions.get(broken, 1))

    failed = jobs.latest[chains[broken]["compile_job_id"]]
    assert failed["status"] == "failed"
    assert failed["exit_code"] not in (0, None)
    assert "compile" in failed["error"].lower()
    # ESPHome's own words reach the user with the job: in its error sentence or in its output
    # (which get_jobs leaves out; the entry's diagnostics carry each job's output tail).
    esphome_says = "cannot parse not-a-port-number"
    async with aiohttp.ClientSession() as session:
        diagnostics = await entry_diagnostics(session, site.base_url, site.token, site.entry_id)
    diagnosed = next(j for j in diagnostics["jobs"] if j["job_id"] == failed["job_id"])
    assert esphome_says in failed["error"] or any(
        esphome_says in line for line in diagnosed["output_tail"]
    )
    held = jobs.latest[chains[broken]["upload_job_id"]]
    assert held["status"] == "cancelled"
    assert (
        chains[broken]["compile_job_id"] in (held["error"] or "")
        or "compile" in (held["error"] or "").lower()
    )
    assert "running" not in jobs.statuses(held["job_id"])
    assert broken_device.ota_receptions() == receptions_before
    assert await read_compilation_time(broken_device.device.api_port) == running_before

    assert jobs.status(chains[healthy]["compile_job_id"]) == "completed"
    assert jobs.status(chains[healthy]["upload_job_id"]) == "completed"
    healthy_device = site.devices[healthy]
    assert await read_compilation_time(healthy_device.device.api_port) == site.build_time(healthy)
