"""Cancelling a real compile: the compiler tree is gone, the held upload never runs."""

from __future__ import annotations

import asyncio

import pytest

from script.devkit.api import DOMAIN, HomeAssistantWebSocket
from script.devkit.demo import build_dir, esphome, read_compilation_time
from script.devkit.site import Site, processes_mentioning

from .harness import E2E_TIMEOUT, JobTracker, install

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(E2E_TIMEOUT)]


async def _wait_for_compiler(build: str) -> None:
    """Return once a process builds in `build` (ESPHome's ninja or a compiler): the compile
    is really under way. Polls /proc, bounded: an external process tree has no events."""
    async with asyncio.timeout(120):
        while not processes_mentioning(build):
            await asyncio.sleep(0.05)


async def test_cancel_during_real_compile(e2e_site: Site, ws: HomeAssistantWebSocket) -> None:
    """The job ends cancelled, no ESPHome process is left, the device keeps its old image."""
    site = e2e_site
    configuration = site.configurations()[-1]
    device = site.devices[configuration]
    running_before = await read_compilation_time(device.device.api_port)
    receptions_before = device.ota_receptions()
    # A cold build (after a clean) runs for many seconds: the cancel lands mid-compile.
    await asyncio.to_thread(esphome, "clean", str(site.folder / configuration))
    site.bump(configuration)
    build = str(build_dir(site.folder, site.demo(configuration)))
    jobs = await JobTracker.subscribe(ws)

    chain = (await install(ws, [configuration]))[configuration]
    compile_id, upload_id = chain["compile_job_id"], chain["upload_job_id"]
    await jobs.wait_for(lambda: jobs.status(compile_id) == "running")
    await _wait_for_compiler(build)

    response = await ws.call_service(DOMAIN, "cancel", {"job_id": compile_id}, return_response=True)
    assert set(response["cancelled"]) == {compile_id, upload_id}
    await jobs.wait_finished([compile_id, upload_id])

    # The process tree is stopped before the job ends cancelled.
    assert processes_mentioning(build) == []
    assert site.esphome_processes() == []
    assert jobs.statuses(compile_id) == ["queued", "running", "cancelled"]
    assert jobs.statuses(upload_id) == ["queued", "cancelled"]
    assert jobs.latest[upload_id]["error"]  # names the prerequisite that did not complete
    assert await read_compilation_time(device.device.api_port) == running_before
    assert device.ota_receptions() == receptions_before
