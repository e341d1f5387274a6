"""The warm path on a real device: what is already done is skipped, anything else is done.

One device of the site, three installs through the `install` action (one real compile in
all): its configuration changed (compiled and flashed); nothing changed and the device runs
the build (both jobs completed at once, `skipped` `unchanged` and `device_current`, no ESPHome
process, no OTA session in the device's log); the device put back on the build it ran before
(the compile is still skipped, the upload flashes it, and the device then reports the build).
"""

from __future__ import annotations

from pathlib import Path
import shutil
from typing import Any

import aiohttp
import pytest

from script.devkit.api import HomeAssistantWebSocket, entry_diagnostics
from script.devkit.demo import DeviceProcess, read_compilation_time
from script.devkit.site import Site

from .harness import E2E_TIMEOUT, JobTracker, install

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(E2E_TIMEOUT)]

OTA_SESSION = b"Starting handshake from"
"""What a device logs when anything opens an OTA session with it."""


def _ota_sessions(device: DeviceProcess) -> int:
    return device.log_path.read_bytes().count(OTA_SESSION)


async def _install(
    ws: HomeAssistantWebSocket, jobs: JobTracker, configuration: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    chain = (await install(ws, [configuration]))[configuration]
    compile_id, upload_id = chain["compile_job_id"], chain["upload_job_id"]
    await jobs.wait_finished([compile_id, upload_id])
    return jobs.latest[compile_id], jobs.latest[upload_id]


def _put_back(device: DeviceProcess, program: Path) -> None:
    """Run `program` on the device again (as if it had been flashed with it elsewhere)."""
    device.stop()
    shutil.copy2(program, device.program)
    device.start()


async def test_warm_install_skips_what_is_done_and_flashes_what_is_not(
    e2e_site: Site, ws: HomeAssistantWebSocket
) -> None:
    """Changed: built and flashed; unchanged and current: both skipped, nothing runs;
    the device on another build: only the upload runs, and the device proves the build."""
    site = e2e_site
    configuration = site.configurations()[-1]
    device = site.devices[configuration]
    api_port = device.device.api_port
    older = device.run_dir / "program.older"
    shutil.copy2(device.program, older)
    jobs = await JobTracker.subscribe(ws)

    # 1. The configuration changed: a real compile, a real OTA.
    site.bump(configuration)
    receptions = device.ota_receptions()
    compiled, uploaded = await _install(ws, jobs, configuration)
    assert (compiled["status"], compiled["skipped"]) == ("completed", None)
    assert (uploaded["status"], uploaded["skipped"]) == ("completed", None)
    build_time = site.build_time(configuration)
    assert await read_compilation_time(api_port) == build_time
    assert device.ota_receptions() == receptions + 1

    # 2. Nothing changed and the device runs the build: both skipped, no process, no OTA.
    sessions = _ota_sessions(device)
    compiled, uploaded = await _install(ws, jobs, configuration)
    assert (compiled["status"], compiled["skipped"]) == ("completed", "unchanged")
    assert (uploaded["status"], uploaded["skipped"]) == ("completed", "device_current")
    assert (compiled["exit_code"], uploaded["exit_code"]) == (None, None)
    async with aiohttp.ClientSession() as session:
        diagnostics = await entry_diagnostics(session, site.base_url, site.token, site.entry_id)
    tails = {job["job_id"]: job["output_tail"] for job in diagnostics["jobs"]}
    # A job that started ESPHome has its output; these only say why they were skipped.
    assert (tails[compiled["job_id"]], tails[uploaded["job_id"]]) == (
        ["— skipped: the build is current, nothing to compile —"],
        ["— skipped: the device already runs this build —"],
    )
    assert _ota_sessions(device) == sessions
    assert site.build_time(configuration) == build_time
    assert await read_compilation_time(api_port) == build_time

    # 3. The device runs another build (the one it ran before): flashed, then proven.
    _put_back(device, older)
    assert await read_compilation_time(api_port) != build_time
    receptions = device.ota_receptions()
    compiled, uploaded = await _install(ws, jobs, configuration)
    assert (compiled["status"], compiled["skipped"]) == ("completed", "unchanged")
    assert (uploaded["status"], uploaded["skipped"]) == ("completed", None)
    assert uploaded["exit_code"] == 0
    assert device.ota_receptions() == receptions + 1
    assert await read_compilation_time(api_port) == build_time
