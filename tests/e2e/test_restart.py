"""Home Assistant stops in the middle of a bulk install (SIGTERM, or SIGKILL as in a crash).

After the next start every job is still there under its id, a completed job stays completed,
the rest run (again) and finish; each device is flashed exactly once, with the build of its
own completed compile, and no ESPHome process of the old run is left behind.
"""

from __future__ import annotations

import signal

import pytest

from script.devkit.api import connect
from script.devkit.demo import read_compilation_time
from script.devkit.site import Site

from .harness import E2E_TIMEOUT, TERMINAL, JobTracker, chain_ids, install, wait_jobs_finished

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(E2E_TIMEOUT)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_restart_mid_bulk_install(
    e2e_site: Site, socket_enabled: None, sig: signal.Signals
) -> None:
    """Every job is restored and the queue finishes; nothing is flashed twice."""
    site = e2e_site
    configurations = site.configurations()[:3]
    receptions_before = {c: site.devices[c].ota_receptions() for c in configurations}
    for configuration in configurations:
        site.bump(configuration)

    async with connect(site.base_url, site.token) as ws:
        jobs = await JobTracker.subscribe(ws)
        chains = await install(ws, configurations)
        ids = chain_ids(chains)
        compile_ids = [chain["compile_job_id"] for chain in chains.values()]
        # Mid-way: one compile is done and the next one is running.
        await jobs.wait_for(
            lambda: any(jobs.status(i) == "completed" for i in compile_ids)
            and any(jobs.status(i) == "running" for i in compile_ids)
        )
        before = {job_id: jobs.status(job_id) for job_id in ids}

    await site.restart(sig)

    async with connect(site.base_url, site.token) as ws:
        tracker = await JobTracker.subscribe(ws)
        restored = {job["job_id"]: job for job in await ws.get_jobs()}
        assert set(ids) <= restored.keys(), "every job keeps its id across the restart"
        for job_id, status in before.items():
            if status in TERMINAL:
                assert restored[job_id]["status"] == status, "a finished job stays finished"
        final = await wait_jobs_finished(ws, tracker, ids)

    assert {final[job_id]["status"] for job_id in ids} == {"completed"}
    for chain in chains.values():
        compiled = final[chain["compile_job_id"]]
        uploaded = final[chain["upload_job_id"]]
        assert uploaded["depends_on"] == compiled["job_id"]
        assert uploaded["started_at"] >= compiled["finished_at"], "no upload before its compile"
    for configuration in configurations:
        device = site.devices[configuration]
        flashed = device.ota_receptions() - receptions_before[configuration]
        assert flashed == 1, (
            f"{configuration} flashed {flashed} times; statuses at {sig.name}: {before}"
        )
        assert await read_compilation_time(device.device.api_port) == site.build_time(configuration)
    assert site.esphome_processes() == [], "no ESPHome process outlives the queue"
