"""A fresh entry on a folder whose devices already run their builds: installed, no update.

The session's entry was created on a folder compiled with the real ESPHome CLI before Home
Assistant started, with the real host devices running those builds. At start the entry asked
each device over its native API what it runs: the configurations no test touched since show
their build as installed (the firmware entity is off), and no job ran for them.
"""

from __future__ import annotations

import pytest

from script.devkit.api import HomeAssistantWebSocket
from script.devkit.demo import read_compilation_time, render_configuration
from script.devkit.site import Site

from .harness import E2E_TIMEOUT, StateTracker, entity_ids

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(E2E_TIMEOUT)]


async def test_fresh_entry_shows_what_devices_run(
    e2e_site: Site, ws: HomeAssistantWebSocket
) -> None:
    """Devices running the folder's builds are installed from the start, without an install."""
    site = e2e_site
    untouched = [
        configuration
        for configuration in site.configurations()
        if configuration not in site.revisions
        and site.devices[configuration].ota_receptions() == 0
        and (site.folder / configuration).read_text(encoding="utf-8")
        == render_configuration(site.demo(configuration))
    ]
    assert untouched, "every demo configuration was changed by an earlier test"
    states = await StateTracker.subscribe(ws)
    for configuration in untouched:
        device = site.demo(configuration)
        assert await read_compilation_time(device.api_port) == site.build_time(configuration)
        firmware = (await entity_ids(ws, site.entry_id, configuration))["firmware"]
        state = await states.wait_for(firmware, lambda state: state["state"] == "off")
        installed = state["attributes"]["installed_version"]
        latest_hash = state["attributes"]["latest_version"].rsplit(" · ", 1)[1]
        assert installed.endswith(f" UTC · {latest_hash}"), installed
        assert state["attributes"]["release_summary"] is None
        assert await ws.get_jobs(configuration=[configuration]) == []
