"""auto_install_on_change: install once a changed configuration has settled, never twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.esphome_pipeline.const import (
    AUTO_INSTALL_SETTLE,
    CONF_AUTO_INSTALL_ON_CHANGE,
    CONF_ESPHOME_COMMAND,
    DOMAIN,
)
from tests.fakes import FakeEsphome

from .conftest import coordinator_of, setup_entry, wait_for_status


@pytest.fixture
def auto_entry(entry: MockConfigEntry, esphome_command: str) -> MockConfigEntry:
    """The test entry with auto-install on."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=entry.title,
        unique_id=entry.unique_id,
        data=dict(entry.data),
        options={CONF_ESPHOME_COMMAND: esphome_command, CONF_AUTO_INSTALL_ON_CHANGE: True},
        entry_id=entry.entry_id,
    )


def _edit(fake: FakeEsphome, text: str) -> None:
    fake.add_config("kitchen", extra=text)


async def _settle(hass: HomeAssistant, seconds: float = AUTO_INSTALL_SETTLE + 1) -> None:
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
    await hass.async_block_till_done()


async def _finish_all(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    for job in coordinator_of(entry).jobs():
        await wait_for_status(hass, entry, job.job_id, "completed", "failed", "cancelled")
    await hass.async_block_till_done()


async def test_change_installs_once(
    hass: HomeAssistant, fake: FakeEsphome, auto_entry: MockConfigEntry, freezer: Any
) -> None:
    """A settled change is installed once; the same fingerprint is never queued again."""
    fake.add_config("kitchen")
    await setup_entry(hass, auto_entry)
    coordinator = coordinator_of(auto_entry)
    await _settle(hass)
    assert coordinator.jobs() == []  # nothing changed since setup: nothing to do

    _edit(fake, "logger:\n")
    await coordinator.async_rescan()
    assert coordinator.jobs() == []  # not yet settled
    freezer.tick(timedelta(seconds=AUTO_INSTALL_SETTLE + 1))
    await _settle(hass, 0)
    jobs = coordinator.jobs()
    assert [job.job_type for job in jobs] == ["compile", "upload"]
    fingerprint = coordinator.nodes["kitchen.yaml"].fingerprint
    assert jobs[0].fingerprint == fingerprint
    await _finish_all(hass, auto_entry)
    assert coordinator.store.installed["kitchen.yaml"] == fingerprint
    assert coordinator.store.auto_installed["kitchen.yaml"] == fingerprint

    await coordinator.async_rescan()
    await _settle(hass)
    assert len(coordinator.jobs()) == 2
    assert await hass.config_entries.async_unload(auto_entry.entry_id)


async def test_change_that_keeps_moving_waits(
    hass: HomeAssistant, fake: FakeEsphome, auto_entry: MockConfigEntry
) -> None:
    """A fingerprint that moved on before the timer fired is not installed; the newest is."""
    fake.add_config("kitchen")
    await setup_entry(hass, auto_entry)
    coordinator = coordinator_of(auto_entry)

    _edit(fake, "logger:\n")
    await coordinator.async_rescan()
    _edit(fake, "logger:\n  level: INFO\n")  # edited again, not yet rescanned
    await _settle(hass)
    assert coordinator.jobs() == []  # the due check saw a newer fingerprint
    await _settle(hass, 2 * (AUTO_INSTALL_SETTLE + 1))
    jobs = coordinator.jobs()
    assert len(jobs) == 2
    assert jobs[0].fingerprint == coordinator.nodes["kitchen.yaml"].fingerprint
    await _finish_all(hass, auto_entry)
    assert await hass.config_entries.async_unload(auto_entry.entry_id)


async def test_reverted_change_is_not_installed(
    hass: HomeAssistant, fake: FakeEsphome, auto_entry: MockConfigEntry
) -> None:
    """Editing and reverting before the delay cancels the pending install."""
    fake.add_config("kitchen")
    await setup_entry(hass, auto_entry)
    coordinator = coordinator_of(auto_entry)
    _edit(fake, "logger:\n")
    await coordinator.async_rescan()
    fake.add_config("kitchen")
    await coordinator.async_rescan()
    await _settle(hass)
    assert coordinator.jobs() == []
    assert await hass.config_entries.async_unload(auto_entry.entry_id)


async def test_pending_install_cancelled_on_unload_and_removal(
    hass: HomeAssistant, fake: FakeEsphome, auto_entry: MockConfigEntry
) -> None:
    """A pending timer dies with its file or with the entry."""
    fake.add_config("kitchen")
    fake.add_config("garage")
    await setup_entry(hass, auto_entry)
    coordinator = coordinator_of(auto_entry)
    _edit(fake, "logger:\n")
    fake.add_config("garage", extra="logger:\n")
    await coordinator.async_rescan()
    (fake.config_dir / "garage.yaml").unlink()
    await coordinator.async_rescan()
    assert list(coordinator._auto_installer.pending) == ["kitchen.yaml"]
    assert await hass.config_entries.async_unload(auto_entry.entry_id)
    await _settle(hass)
    assert coordinator.jobs() == []
    # A scan after unload (a late timer or task) starts no new timer.
    _edit(fake, "logger:\n  level: WARN\n")
    await coordinator.async_rescan()
    assert coordinator._auto_installer.pending == {}


async def test_installed_fingerprint_differs_at_start(
    hass: HomeAssistant,
    fake: FakeEsphome,
    auto_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """A configuration edited while Home Assistant was down is installed after setup."""
    fake.add_config("kitchen")
    hass_storage[f"{DOMAIN}.{auto_entry.entry_id}"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.{auto_entry.entry_id}",
        "data": {"jobs": [], "installed": {"kitchen.yaml": "000000000000"}},
    }
    await setup_entry(hass, auto_entry)
    await _settle(hass)
    assert len(coordinator_of(auto_entry).jobs()) == 2
    await _finish_all(hass, auto_entry)
    assert await hass.config_entries.async_unload(auto_entry.entry_id)
