"""The hub's `esphome` update entity: installed and newest version, and a safe upgrade.

The entry runs a fake-installed ESPHome (`<config>/.esphome_pipeline/esphome-2026.10.0`, whose
`python -m esphome` is the fake CLI), so its jobs really run through the installed
environment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import Event, HomeAssistant, State, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import EventStateChangedData, async_track_state_change_event
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.esphome_pipeline import esphome_update
from custom_components.esphome_pipeline.const import (
    CONF_CONFIG_DIR,
    CONF_ESPHOME_COMMAND,
    CONF_MANAGED_ESPHOME,
    DOMAIN,
    MANAGED_ESPHOME_VERSION,
)
from custom_components.esphome_pipeline.engine.events import EventKind, JobEvent
from custom_components.esphome_pipeline.engine.models import QueueStatus
from custom_components.esphome_pipeline.esphome_update import (
    async_wait_until_idle,
)
from custom_components.esphome_pipeline.provision.manager import (
    EsphomeProvisioner,
)
from tests.fakes import FakeEsphome
from tests.fakes.installer import FakeInstaller, use_fake_installer

from .conftest import coordinator_of, setup_entry, wait_for_status

NEWER = "2026.11.0"


@pytest.fixture
def installer(hass: HomeAssistant, tmp_path: Path) -> tuple[FakeInstaller, EsphomeProvisioner]:
    """Home Assistant's provisioner, building from the fake interpreter."""
    return use_fake_installer(hass, tmp_path)


@pytest.fixture
def managed_entry(config_dir: Path) -> MockConfigEntry:
    """An entry that runs the ESPHome the integration installed."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="ESPHome Pipeline (esphome)",
        unique_id=str(config_dir),
        data={CONF_CONFIG_DIR: str(config_dir), CONF_MANAGED_ESPHOME: MANAGED_ESPHOME_VERSION},
        options={CONF_ESPHOME_COMMAND: ""},
        entry_id="01MANAGEDENTRY",
    )


@pytest.fixture
async def loaded(
    hass: HomeAssistant,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
    managed_entry: MockConfigEntry,
) -> AsyncIterator[MockConfigEntry]:
    """The managed entry, loaded, with ESPHome 2026.10.0 installed and 2026.11.0 released."""
    fake, provisioner = installer
    fake.behave(newest=NEWER)
    await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    await setup_entry(hass, managed_entry)
    await _newest_checked()
    yield managed_entry
    if managed_entry.state.recoverable:
        await hass.config_entries.async_unload(managed_entry.entry_id)


async def _newest_checked() -> None:
    """Wait for the entity's first question for the newest release (a background task; the
    lanes run as background tasks too, so waiting for all of them would never end)."""
    name = f"{DOMAIN} newest ESPHome release"
    await asyncio.gather(*(task for task in asyncio.all_tasks() if task.get_name() == name))


def _state_change(hass: HomeAssistant, entity_id: str) -> asyncio.Future[State]:
    """A future that gets `entity_id`'s next new state."""
    future: asyncio.Future[State] = hass.loop.create_future()

    @callback
    def changed(event: Event[EventStateChangedData]) -> None:
        if not future.done() and (new_state := event.data["new_state"]) is not None:
            future.set_result(new_state)

    unsubscribe = async_track_state_change_event(hass, entity_id, changed)
    future.add_done_callback(lambda _: unsubscribe())
    return future


def _entity_id(hass: HomeAssistant, entry: ConfigEntry) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(
        "update", DOMAIN, f"{entry.entry_id}_esphome"
    )
    assert entity_id is not None
    return entity_id


def _attributes(hass: HomeAssistant, entry: ConfigEntry) -> dict[str, Any]:
    state = hass.states.get(_entity_id(hass, entry))
    assert state is not None
    return {"state": state.state, **state.attributes}


def _folders(provisioner: EsphomeProvisioner) -> list[str]:
    return sorted(child.name for child in provisioner.root.iterdir())


async def _install(hass: HomeAssistant, entry: ConfigEntry, **data: Any) -> None:
    await hass.services.async_call(
        "update", "install", {"entity_id": _entity_id(hass, entry), **data}, blocking=True
    )


async def test_entity_shows_installed_and_newest(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
    freezer: FrozenDateTimeFactory,
) -> None:
    """Installed = what the CLI reports, latest = the newest release, asked once a day."""
    fake, _provisioner = installer
    attributes = _attributes(hass, loaded)
    assert attributes["state"] == "on"
    assert attributes["installed_version"] == MANAGED_ESPHOME_VERSION
    assert attributes["latest_version"] == NEWER
    assert attributes["title"] == "ESPHome"
    assert attributes["release_url"] == "https://esphome.io/changelog/"
    assert attributes["friendly_name"] == "ESPHome Pipeline (esphome) ESPHome"
    questions = sum("--dry-run" in command for command in fake.commands())
    assert questions == 1

    fake.behave(newest="2026.12.0")
    freezer.tick(timedelta(hours=1, seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert _attributes(hass, loaded)["latest_version"] == NEWER  # within the day: not asked

    changed = _state_change(hass, _entity_id(hass, loaded))
    freezer.tick(timedelta(days=1))
    async_fire_time_changed(hass)
    assert (await changed).attributes["latest_version"] == "2026.12.0"
    assert sum("--dry-run" in command for command in fake.commands()) == 2


async def test_entity_only_for_an_installed_cli(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """An entry running the user's own command has no `esphome` update entity."""
    await setup_entry(hass, entry)
    registry = er.async_get(hass)
    assert registry.async_get_entity_id("update", DOMAIN, f"{entry.entry_id}_esphome") is None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_upgrade_waits_for_the_queue_then_switches(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
    fake: FakeEsphome,
) -> None:
    """The new version is built beside the old one while a compile runs; the switch waits
    for the queue to drain; then the entry runs the new version and the old one is gone."""
    _fake_installer, provisioner = installer
    fake.add_config("kitchen")
    fake.behave("kitchen.yaml", "compile", wait_for_file="go")
    coordinator = coordinator_of(loaded)
    await coordinator.async_rescan()
    [job] = await coordinator.async_compile(["kitchen.yaml"])
    await fake.wait_for_call("start", subcommand="compile")

    waiting = asyncio.Event()
    real_wait = esphome_update.async_wait_until_idle

    async def observed_wait(queue: Any, give_up: asyncio.Event) -> bool:
        waiting.set()
        return await real_wait(queue, give_up)

    with patch.object(esphome_update, "async_wait_until_idle", observed_wait):
        upgrade = hass.async_create_task(_install(hass, loaded))
        await waiting.wait()
        # Built and answering, but not selected while the compile runs.
        assert _folders(provisioner) == [f"esphome-{MANAGED_ESPHOME_VERSION}", f"esphome-{NEWER}"]
        assert loaded.data[CONF_MANAGED_ESPHOME] == MANAGED_ESPHOME_VERSION
        assert _attributes(hass, loaded)["in_progress"] is True

        fake.release("go")
        await wait_for_status(hass, loaded, job.job_id, "completed")
        await upgrade
    await hass.async_block_till_done()

    assert loaded.data[CONF_MANAGED_ESPHOME] == NEWER
    assert _folders(provisioner) == [f"esphome-{NEWER}"]
    attributes = _attributes(hass, loaded)
    assert attributes["installed_version"] == NEWER
    assert attributes["in_progress"] is False
    assert attributes["state"] == "off"
    assert coordinator_of(loaded) is not coordinator  # the entry was reloaded


async def test_chosen_version_and_idle_queue(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
) -> None:
    """A chosen version installs at once when nothing runs; an old one shared with another
    entry is kept."""
    _fake, provisioner = installer
    MockConfigEntry(
        domain=DOMAIN, data={CONF_CONFIG_DIR: "/x", CONF_MANAGED_ESPHOME: MANAGED_ESPHOME_VERSION}
    ).add_to_hass(hass)

    await _install(hass, loaded, version="2026.10.1")
    await hass.async_block_till_done()

    assert loaded.data[CONF_MANAGED_ESPHOME] == "2026.10.1"
    assert _folders(provisioner) == [f"esphome-{MANAGED_ESPHOME_VERSION}", "esphome-2026.10.1"]


async def test_failed_upgrade_changes_nothing(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
) -> None:
    """An install that fails leaves the entry on its version, with the installer's lines."""
    fake, provisioner = installer
    fake.behave(install_fail_after=2)

    with pytest.raises(HomeAssistantError) as caught:
        await _install(hass, loaded)

    assert caught.value.translation_key == "esphome_install_failed"
    assert "No space left on device" in caught.value.translation_placeholders["error"]
    assert loaded.data[CONF_MANAGED_ESPHOME] == MANAGED_ESPHOME_VERSION
    assert _folders(provisioner) == [f"esphome-{MANAGED_ESPHOME_VERSION}"]
    assert _attributes(hass, loaded)["in_progress"] is False


@pytest.mark.parametrize(
    ("newest", "version", "message"),
    [
        (None, None, "No update available"),  # Home Assistant's own refusal
        (NEWER, "1.0 && reboot", "1.0 && reboot is not an ESPHome release number"),
    ],
)
async def test_install_refusals(
    hass: HomeAssistant,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
    managed_entry: MockConfigEntry,
    newest: str | None,
    version: str | None,
    message: str,
) -> None:
    """No version known, or a version that is none: refused before anything runs."""
    fake, provisioner = installer
    fake.behave(newest=newest)
    await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    await setup_entry(hass, managed_entry)
    await _newest_checked()
    before = len(fake.calls())

    with pytest.raises(HomeAssistantError) as caught:
        await _install(hass, managed_entry, **({"version": version} if version else {}))

    assert message in str(caught.value)
    assert len(fake.calls()) == before
    assert await hass.config_entries.async_unload(managed_entry.entry_id)


async def test_installing_the_running_version_does_nothing(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
) -> None:
    """The version the entry already runs: nothing is built, nothing reloads."""
    fake, _provisioner = installer
    before = len(fake.calls())
    coordinator = coordinator_of(loaded)
    await _install(hass, loaded, version=MANAGED_ESPHOME_VERSION)
    assert len(fake.calls()) == before
    assert coordinator_of(loaded) is coordinator


async def test_unload_while_waiting_interrupts(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
    fake: FakeEsphome,
) -> None:
    """The entry goes away while the upgrade waits for the queue: no switch, a clear error."""
    fake.add_config("kitchen")
    fake.behave("kitchen.yaml", "compile", wait_for_file="go")
    coordinator = coordinator_of(loaded)
    await coordinator.async_rescan()
    await coordinator.async_compile(["kitchen.yaml"])
    await fake.wait_for_call("start", subcommand="compile")
    waiting = asyncio.Event()
    real_wait = esphome_update.async_wait_until_idle

    async def observed_wait(queue: Any, give_up: asyncio.Event) -> bool:
        waiting.set()
        return await real_wait(queue, give_up)

    with patch.object(esphome_update, "async_wait_until_idle", observed_wait):
        upgrade = hass.async_create_task(_install(hass, loaded))
        await waiting.wait()
        assert await hass.config_entries.async_unload(loaded.entry_id)
        with pytest.raises(HomeAssistantError) as caught:
            await upgrade

    assert caught.value.translation_key == "esphome_update_interrupted"
    assert loaded.data[CONF_MANAGED_ESPHOME] == MANAGED_ESPHOME_VERSION


class _StandInQueue:
    """A queue whose status the test sets, announcing each change like the engine."""

    def __init__(self, idle: bool) -> None:
        self.status = QueueStatus(
            compile_running=() if idle else ("job",), upload_running=(), queue_depth=0
        )
        self.listeners: list[Callable[[JobEvent], None]] = []

    def queue_status(self) -> QueueStatus:
        return self.status

    def subscribe(self, callback: Callable[[JobEvent], None]) -> Callable[[], None]:
        self.listeners.append(callback)
        return lambda: self.listeners.remove(callback)

    def announce(self, idle: bool) -> None:
        self.status = QueueStatus(
            compile_running=() if idle else ("job",), upload_running=(), queue_depth=0
        )
        for listener in list(self.listeners):
            listener(JobEvent(EventKind.STATUS, None))  # type: ignore[arg-type]


async def test_wait_until_idle() -> None:
    """Idle at once; idle after events; or given up first. It always unsubscribes."""
    give_up = asyncio.Event()
    assert await async_wait_until_idle(_StandInQueue(idle=True), give_up)

    queue = _StandInQueue(idle=False)
    waiter = asyncio.ensure_future(async_wait_until_idle(queue, give_up))
    await asyncio.sleep(0)
    queue.announce(idle=False)  # still busy
    queue.announce(idle=True)
    assert await waiter
    assert queue.listeners == []

    queue = _StandInQueue(idle=False)
    waiter = asyncio.ensure_future(async_wait_until_idle(queue, give_up))
    await asyncio.sleep(0)
    give_up.set()
    assert not await waiter
    assert queue.listeners == []
