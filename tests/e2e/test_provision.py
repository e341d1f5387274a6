"""From an empty Home Assistant to a working entry without a shell: the config flow installs
the real ESPHome from the package index, the entry loads, and a real `host:` device installs.

A site of its own (not the session site, whose entry runs the development CLI): a fresh
Home Assistant configuration folder with one demo device, compiled once and running (so it can
take an OTA). The user step is answered with an empty command; nothing is detected on this
machine, so the flow offers the install, which this test accepts. The package index is reached
through pip's and uv's own configuration. The device is then changed and installed through the
entry, which compiles with the installed ESPHome and flashes over OTA.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
from typing import Any

import aiohttp
import pytest
import pytest_socket  # type: ignore[import-untyped]

from script.devkit import ESPHOME_CLI
from script.devkit.api import DOMAIN, connect, entry_diagnostics
from script.devkit.demo import read_compilation_time
from script.devkit.site import Site

from .harness import E2E_TIMEOUT, JobTracker, chain_ids, install

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(E2E_TIMEOUT)]

ESPHOME_VERSION = "2026.10.0"
INSTALL_GUARD = 600.0
"""Failure guard for the real install (measured here: about 30 s with a warm uv cache)."""


@contextlib.contextmanager
def _sockets_enabled() -> Iterator[None]:
    pytest_socket.enable_socket()
    try:
        yield
    finally:
        pytest_socket.disable_socket(allow_unix_socket=True)


@pytest.fixture
def bare_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Home Assistant and one running demo device, with no ESPHome Pipeline entry yet."""
    if not ESPHOME_CLI.exists():
        pytest.fail(f"the development ESPHome CLI is missing ({ESPHOME_CLI}): run script/setup")
    root = tmp_path_factory.mktemp("e2e-provision")
    with _sockets_enabled():
        # The first image of the device comes from the development CLI, as for every site.
        site = Site.prepare(root, device_count=1)
        try:
            for process in site.devices.values():
                process.start()
            site.start_hass()
        except BaseException:
            site.stop()
            raise
    try:
        yield site
    finally:
        site.stop()


async def _flow_step(
    session: aiohttp.ClientSession, site: Site, flow_id: str, answer: dict[str, Any] | None
) -> dict[str, Any]:
    url = f"{site.base_url}/api/config/config_entries/flow/{flow_id}"
    headers = {"Authorization": f"Bearer {site.token}"}
    request = (
        session.get(url, headers=headers)
        if answer is None
        else (session.post(url, json=answer, headers=headers))
    )
    async with request as response:
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
    return result


async def _create_entry_with_install(site: Site) -> str:
    """Walk the config flow as the UI does: folder, install offer, progress; the entry id."""
    headers = {"Authorization": f"Bearer {site.token}"}
    async with (
        aiohttp.ClientSession() as session,
        connect(site.base_url, site.token) as ws,
    ):
        async with session.post(
            f"{site.base_url}/api/config/config_entries/flow",
            json={"handler": DOMAIN, "show_advanced_options": False},
            headers=headers,
        ) as response:
            form = await response.json()
        flow_id = form["flow_id"]
        offer = await _flow_step(
            session, site, flow_id, {"config_dir": str(site.folder), "esphome_command": ""}
        )
        assert offer["step_id"] == "install", f"no install offered (ESPHome detected?): {offer}"
        assert offer["description_placeholders"]["version"] == ESPHOME_VERSION
        assert offer["description_placeholders"]["path"] == str(
            site.config_dir / ".esphome_pipeline"
        )

        # The UI reloads the flow on each `data_entry_flow_progressed` event of it.
        progressed = await ws.subscribe_events("data_entry_flow_progressed")
        step = await _flow_step(session, site, flow_id, {})
        assert step["type"] == "progress", step
        async with asyncio.timeout(INSTALL_GUARD):
            while step["type"] in {"progress", "progress_done"}:
                if step["type"] == "progress":
                    while (await progressed.get())["data"]["flow_id"] != flow_id:
                        pass
                step = await _flow_step(session, site, flow_id, None)
        assert step["type"] == "create_entry", step
        return str(step["result"]["entry_id"])


async def test_config_flow_installs_esphome(bare_site: Site, socket_enabled: None) -> None:
    """No ESPHome on the machine: the flow installs it, the entry runs it, a device installs."""
    site = bare_site
    await site.login()

    site.entry_id = await _create_entry_with_install(site)

    managed = site.config_dir / ".esphome_pipeline"
    assert sorted(path.name for path in managed.iterdir()) == [f"esphome-{ESPHOME_VERSION}"]
    assert (managed / f"esphome-{ESPHOME_VERSION}" / "bin" / "python").exists()
    configuration = site.configurations()[0]
    device = site.devices[configuration]
    async with connect(site.base_url, site.token) as ws:
        await ws.wait_entry_loaded(site.entry_id)
        jobs = await JobTracker.subscribe(ws)
        site.bump(configuration)

        chains = await install(ws, [configuration])
        await jobs.wait_finished(chain_ids(chains))

        for job_id in chain_ids(chains):
            assert jobs.status(job_id) == "completed", jobs.latest[job_id]
    assert await read_compilation_time(device.device.api_port) == site.build_time(configuration)
    async with aiohttp.ClientSession() as session:
        diagnostics = await entry_diagnostics(session, site.base_url, site.token, site.entry_id)
    # The flow found no other ESPHome, so the version the entry runs is the installed one.
    assert diagnostics["esphome_version"] == ESPHOME_VERSION
