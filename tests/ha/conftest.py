"""Fixtures for the Home Assistant layer: custom integrations on, a config folder, the fake CLI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from unittest.mock import PropertyMock, patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.esphome_pipeline.const import CONF_CONFIG_DIR, CONF_ESPHOME_COMMAND, DOMAIN
from custom_components.esphome_pipeline.coordinator import PipelineCoordinator
from custom_components.esphome_pipeline.engine.events import JobEvent
from custom_components.esphome_pipeline.engine.firmware import FirmwareEngine
from custom_components.esphome_pipeline.provision.manager import EsphomeProvisioner
from tests.fakes import FAKE_COMMAND, FakeEsphome, fake_command_line
from tests.fakes.installer import FakeInstaller, use_fake_installer
from tests.fakes.test_receiver import PeerReceiver


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load the integration from custom_components/."""


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Use Home Assistant's snapshot format (stable ids and times)."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


@pytest.fixture
def entity_registry_enabled_by_default() -> Iterator[None]:
    """Create every entity enabled, also those disabled by default."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        return_value=True,
        new_callable=PropertyMock,
    ):
        yield


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """Return an empty ESPHome configuration folder."""
    folder = tmp_path / "esphome"
    folder.mkdir()
    return folder


@pytest.fixture
def esphome_command() -> str:
    """Return the fake ESPHome CLI's command line."""
    return fake_command_line()


@pytest.fixture
def fake(config_dir: Path) -> FakeEsphome:
    """Return the fake ESPHome CLI's handle on the config folder."""
    return FakeEsphome(config_dir)


@pytest.fixture
def entry(config_dir: Path, esphome_command: str) -> MockConfigEntry:
    """Return an entry for the folder that runs the fake CLI (not yet added)."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="ESPHome Pipeline (esphome)",
        unique_id=str(config_dir),
        data={CONF_CONFIG_DIR: str(config_dir)},
        options={CONF_ESPHOME_COMMAND: esphome_command},
        entry_id="01TESTENTRY",
    )


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Add the entry and set it up; fail unless it loaded."""
    if (
        entry.state is ConfigEntryState.NOT_LOADED
        and hass.config_entries.async_get_entry(entry.entry_id) is None
    ):
        entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED


def coordinator_of(entry: MockConfigEntry) -> PipelineCoordinator:
    """Return the loaded entry's coordinator."""
    coordinator: PipelineCoordinator = entry.runtime_data.coordinator
    return coordinator


def engine_of(entry: MockConfigEntry) -> FirmwareEngine:
    """Return the loaded entry's engine (only the coordinator holds it; tests may look)."""
    return coordinator_of(entry)._engine


async def wait_for_status(
    hass: HomeAssistant, entry: MockConfigEntry, job_id: str, *statuses: str
) -> dict[str, object]:
    """Wait (on engine events, not on time) until a job reaches one of `statuses`."""
    engine = engine_of(entry)
    job = engine.get(job_id)
    assert job is not None
    if str(job.status) in statuses:
        return job.public_dict()
    reached: asyncio.Future[dict[str, object]] = hass.loop.create_future()

    def listener(event: JobEvent) -> None:
        if event.job.job_id == job_id and str(event.job.status) in statuses and not reached.done():
            reached.set_result(event.job.public_dict())

    unsubscribe = engine.subscribe(listener)
    try:
        async with asyncio.timeout(60):
            return await reached
    finally:
        unsubscribe()


@pytest.fixture
def installer_setup(
    hass: HomeAssistant, tmp_path: Path
) -> tuple[FakeInstaller, EsphomeProvisioner]:
    """A provisioner that builds ESPHome environments from the fake interpreter."""
    return use_fake_installer(hass, tmp_path)


@pytest.fixture
def fake_installer(installer_setup: tuple[FakeInstaller, EsphomeProvisioner]) -> FakeInstaller:
    """The fake interpreter's handle."""
    return installer_setup[0]


@pytest.fixture
def provisioner(installer_setup: tuple[FakeInstaller, EsphomeProvisioner]) -> EsphomeProvisioner:
    """Home Assistant's provisioner (building from the fake interpreter)."""
    return installer_setup[1]


def installed_folders(root: Path) -> list[str]:
    """Return the names in a folder of ESPHome environments, sorted (none: empty)."""
    return sorted(child.name for child in root.iterdir()) if root.is_dir() else []


@pytest.fixture
async def receiver(tmp_path: Path, socket_enabled: None) -> AsyncIterator[PeerReceiver]:
    """One test receiver ("Desk PC") on 127.0.0.1, speaking the real peer-link handshake."""
    started = PeerReceiver(tmp_path / "receiver", cli=FAKE_COMMAND, friendly_name="Desk PC")
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
async def loaded(hass: HomeAssistant, entry: MockConfigEntry) -> AsyncIterator[MockConfigEntry]:
    """The entry, set up; unloaded at the end so every link is closed (modules may override)."""
    await setup_entry(hass, entry)
    yield entry
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
