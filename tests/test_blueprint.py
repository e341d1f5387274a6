"""The install-on-change blueprint: valid for Home Assistant, and it behaves as documented.

The blueprint is loaded with Home Assistant's own blueprint schema and its actions are checked
against the actions the integration declares. Automations built from it then run in a test
Home Assistant: against a stand-in `esphome_pipeline.install` that records each call (window,
one at a time, errors), and once end to end with the real integration and the fake ESPHome CLI.
No test needs a socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
import shutil
import sys
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.blueprint.models import Blueprint
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, State, SupportsResponse, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import yaml as yaml_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
import yaml

from custom_components.esphome_pipeline.const import (
    CONF_CONFIG_DIR,
    CONF_ESPHOME_COMMAND,
    DOMAIN as INTEGRATION_DOMAIN,
    EVENT_JOB,
)
from tests.fakes import FakeEsphome, fake_command_line

DOMAIN = "esphome_pipeline"
JOB_EVENT = "esphome_pipeline_job"
AUTOMATION = "automation.install_on_change"
REPO_ROOT = Path(__file__).resolve().parent.parent
BLUEPRINT_RELATIVE = Path(DOMAIN) / "install_on_change.yaml"
TERMINAL = ("completed", "failed", "cancelled")
BLUEPRINT_FILE = REPO_ROOT / "blueprints" / "automation" / BLUEPRINT_RELATIVE
SERVICES_FILE = REPO_ROOT / "custom_components" / DOMAIN / "services.yaml"

DAY = "2026-11-22"
OUTSIDE_WINDOW = datetime.fromisoformat(f"{DAY}T12:00:00+00:00")
NEXT_WINDOW_OPENS = datetime.fromisoformat("2026-11-23T01:00:00+00:00")
INSIDE_WINDOW = datetime.fromisoformat(f"{DAY}T02:30:00+00:00")
UPDATE_AVAILABLE = {"installed_version": "1111aaaa", "latest_version": "2222bbbb"}


def _load_blueprint() -> Blueprint:
    return Blueprint(
        yaml_util.load_yaml_dict(BLUEPRINT_FILE),
        expected_domain="automation",
        path=str(BLUEPRINT_RELATIVE),
        schema=AUTOMATION_BLUEPRINT_SCHEMA,
    )


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Yield every mapping in a loaded YAML tree."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# Schema and names --------------------------------------------------------------------------


def test_blueprint_passes_home_assistant_schema() -> None:
    """Home Assistant accepts the blueprint, its inputs and its minimum version."""
    blueprint = _load_blueprint()

    assert blueprint.domain == "automation"
    assert blueprint.validate() is None
    assert set(blueprint.inputs) == {
        "update_entities",
        "window_start",
        "window_end",
        "one_at_a_time",
    }
    entity_selector = blueprint.inputs["update_entities"]["selector"]["entity"]
    assert entity_selector["multiple"] is True
    assert entity_selector["filter"] == [{"integration": DOMAIN, "domain": ["update"]}]
    assert "time" in blueprint.inputs["window_start"]["selector"]
    assert "time" in blueprint.inputs["window_end"]["selector"]
    assert "boolean" in blueprint.inputs["one_at_a_time"]["selector"]
    assert blueprint.data["mode"] == "queued"


def test_blueprint_uses_the_integrations_real_action_and_event() -> None:
    """Every action of ours the blueprint calls exists, with the fields it passes."""
    declared: dict[str, Any] = yaml.safe_load(SERVICES_FILE.read_text(encoding="utf-8"))
    blueprint = _load_blueprint()

    calls = [node for node in _walk(blueprint.data) if isinstance(node.get("action"), str)]
    ours = [node for node in calls if node["action"].startswith(f"{DOMAIN}.")]
    assert [node["action"] for node in ours] == [f"{DOMAIN}.install"]
    for node in ours:
        service = node["action"].removeprefix(f"{DOMAIN}.")
        assert service in declared
        declared_fields = set(_declared_fields(declared[service]))
        assert set(node["data"]) <= declared_fields
    events = {node["event_type"] for node in _walk(blueprint.data) if "event_type" in node}
    assert events == {JOB_EVENT}


def test_one_at_a_time_waits_only_for_the_end_of_its_own_upload() -> None:
    """The wait matches the install's upload job id and only the three terminal statuses."""
    blueprint = _load_blueprint()
    waits = [
        node["wait_for_trigger"] for node in _walk(blueprint.data) if "wait_for_trigger" in node
    ]
    assert len(waits) == 1
    triggers = waits[0]
    assert {trigger["trigger"] for trigger in triggers} == {"event"}
    assert {trigger["event_type"] for trigger in triggers} == {JOB_EVENT}
    assert sorted(trigger["event_data"]["status"] for trigger in triggers) == [
        "cancelled",
        "completed",
        "failed",
    ]
    assert {trigger["event_data"]["job_id"] for trigger in triggers} == {
        "{{ install_response.jobs[0].upload_job_id }}"
    }


def _declared_fields(service: dict[str, Any]) -> Iterator[str]:
    """Field names of a services.yaml entry, looking inside collapsible sections."""
    for name, field in (service.get("fields") or {}).items():
        if isinstance(field, dict) and "fields" in field:
            yield from field["fields"]
        else:
            yield name


# Behaviour in a running Home Assistant -----------------------------------------------------


class FakeInstall:
    """Stands in for `esphome_pipeline.install`: records calls, answers like the contract."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Register the stand-in action."""
        self.calls: list[ServiceCall] = []
        self.reject_device_ids: set[str] = set()
        hass.services.async_register(
            DOMAIN, "install", self._handle, supports_response=SupportsResponse.OPTIONAL
        )

    async def _handle(self, call: ServiceCall) -> dict[str, Any]:
        self.calls.append(call)
        if call.data["device_id"] in self.reject_device_ids:
            raise ServiceValidationError("not a configuration device")
        number = len(self.calls)
        return {
            "jobs": [
                {
                    "configuration": f"device-{number}.yaml",
                    "compile_job_id": f"compile-{number}",
                    "upload_job_id": f"upload-{number}",
                }
            ]
        }

    @property
    def device_ids(self) -> list[str]:
        """Device ids in call order."""
        return [call.data["device_id"] for call in self.calls]


class Fleet:
    """Configuration devices with firmware update entities, as the integration registers them."""

    def __init__(self, hass: HomeAssistant, count: int) -> None:
        """Register `count` devices and their update entities under one config entry."""
        self.hass = hass
        self.entry = MockConfigEntry(domain=DOMAIN, title="ESPHome Pipeline")
        self.entry.add_to_hass(hass)
        devices = dr.async_get(hass)
        entities = er.async_get(hass)
        self.entity_ids: list[str] = []
        self.device_ids: list[str] = []
        for index in range(count):
            device = devices.async_get_or_create(
                config_entry_id=self.entry.entry_id,
                identifiers={(DOMAIN, f"device-{index}.yaml")},
                name=f"Device {index}",
            )
            entity = entities.async_get_or_create(
                "update",
                DOMAIN,
                f"{self.entry.entry_id}_device-{index}.yaml_firmware",
                config_entry=self.entry,
                device_id=device.id,
                suggested_object_id=f"device_{index}_firmware",
            )
            self.entity_ids.append(entity.entity_id)
            self.device_ids.append(device.id)
            self.set(index, "off", installed_version="1111aaaa", latest_version="1111aaaa")

    def set(self, index: int, state: str, **attributes: Any) -> None:
        """Write an update entity's state the way the update platform does."""
        self.hass.states.async_set(
            self.entity_ids[index], state, {"in_progress": False, **attributes}
        )


@pytest.fixture
async def blueprint_dir(hass: HomeAssistant, tmp_path: Path) -> AsyncIterator[Path]:
    """Point the test instance's config folder at a temp folder holding the blueprint.

    Afterwards the automations are turned off, which detaches their time trigger (a timer
    that would otherwise outlive the test).
    """
    hass.config.config_dir = str(tmp_path)
    target = tmp_path / "blueprints" / "automation" / BLUEPRINT_RELATIVE
    target.parent.mkdir(parents=True)
    shutil.copyfile(BLUEPRINT_FILE, target)
    yield tmp_path
    if hass.services.has_service("automation", "turn_off"):
        await hass.services.async_call(
            "automation", "turn_off", {"entity_id": "all"}, blocking=True
        )


def _open_window(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """Move the clock from noon to the next night's window start, firing its time trigger."""
    freezer.move_to(NEXT_WINDOW_OPENS)
    async_fire_time_changed(hass, NEXT_WINDOW_OPENS)


async def _start(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, now: datetime, **inputs: Any
) -> None:
    """Set the clock, then load one automation made from the blueprint."""
    await hass.config.async_set_time_zone("UTC")
    freezer.move_to(now)
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "alias": "Install on change",
                "use_blueprint": {"path": str(BLUEPRINT_RELATIVE), "input": inputs},
            }
        },
    )
    await hass.async_block_till_done()
    state = hass.states.get("automation.install_on_change")
    assert state is not None
    assert state.state == "on"


def _job_event(hass: HomeAssistant, job_id: str, status: str) -> None:
    hass.bus.async_fire(JOB_EVENT, {"job_id": job_id, "job_type": "upload", "status": status})


class RunWatch:
    """Wakes the test whenever the automation's run changes step, starts or ends.

    A run that waits for an upload never lets `async_block_till_done` return, so the tests
    that wait synchronise on the automation script's change listener instead.
    """

    def __init__(self, hass: HomeAssistant, install: FakeInstall | None = None) -> None:
        """Chain onto the change listener of the blueprint automation's script."""
        self.hass = hass
        self.install = install
        entity = hass.data["automation"].get_entity(AUTOMATION)
        self.script = entity.action_script
        self._changed = asyncio.Event()
        forward = self.script.change_listener

        @callback
        def on_change() -> Any:
            self._changed.set()
            return forward() if forward is not None else None

        self.script.change_listener = on_change

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate` holds, re-checking after every change of the run."""
        async with asyncio.timeout(30):  # a guard against a hang, not a timing assertion
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def until_waiting_after(self, installs: int) -> None:
        """Return once the run made `installs` install calls and waits for that upload.

        The previous wait unsubscribes before the next install call, so three job event
        listeners after that call are the new wait's three triggers.
        """
        install = self.install
        assert install is not None
        await self.until(
            lambda: len(install.calls) == installs
            and self.hass.bus.async_listeners().get(JOB_EVENT, 0) == 3
        )

    async def until_finished(self) -> None:
        """Return once no run is active."""
        await self.until(lambda: not self.script.is_running)


@pytest.mark.usefixtures("blueprint_dir")
async def test_installs_when_update_appears_inside_window(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """An update that appears inside the window is installed at once, with device and entry."""
    fleet = Fleet(hass, 2)
    install = FakeInstall(hass)
    await _start(hass, freezer, INSIDE_WINDOW, update_entities=fleet.entity_ids)

    fleet.set(1, "on", **UPDATE_AVAILABLE)
    await hass.async_block_till_done()

    assert install.device_ids == [fleet.device_ids[1]]
    assert install.calls[0].data["config_entry_id"] == fleet.entry.entry_id


@pytest.mark.usefixtures("blueprint_dir")
async def test_waits_for_the_window_then_installs_pending_updates(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """Outside the window nothing happens; when it opens, every pending update installs."""
    fleet = Fleet(hass, 3)
    install = FakeInstall(hass)
    await _start(hass, freezer, OUTSIDE_WINDOW, update_entities=fleet.entity_ids)

    fleet.set(0, "on", **UPDATE_AVAILABLE)
    fleet.set(2, "on", **UPDATE_AVAILABLE)
    await hass.async_block_till_done()
    assert install.calls == []

    _open_window(hass, freezer)
    await hass.async_block_till_done()

    assert install.device_ids == [fleet.device_ids[0], fleet.device_ids[2]]


@pytest.mark.usefixtures("blueprint_dir")
async def test_window_can_cross_midnight(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """A 23:00 to 05:00 window includes 02:30 and excludes noon."""
    fleet = Fleet(hass, 1)
    install = FakeInstall(hass)
    await _start(
        hass,
        freezer,
        OUTSIDE_WINDOW,
        update_entities=fleet.entity_ids,
        window_start="23:00:00",
        window_end="05:00:00",
    )
    fleet.set(0, "on", **UPDATE_AVAILABLE)
    await hass.async_block_till_done()
    assert install.calls == []

    freezer.move_to(INSIDE_WINDOW)
    fleet.set(0, "off", installed_version="1111aaaa", latest_version="1111aaaa")
    fleet.set(0, "on", **UPDATE_AVAILABLE)
    await hass.async_block_till_done()
    assert install.device_ids == [fleet.device_ids[0]]


@pytest.mark.usefixtures("blueprint_dir")
async def test_same_start_and_end_means_all_day(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """A window that opens and closes at the same time never blocks an install."""
    fleet = Fleet(hass, 1)
    install = FakeInstall(hass)
    await _start(
        hass,
        freezer,
        OUTSIDE_WINDOW,
        update_entities=fleet.entity_ids,
        window_start="00:00:00",
        window_end="00:00:00",
    )
    fleet.set(0, "on", **UPDATE_AVAILABLE)
    await hass.async_block_till_done()
    assert install.device_ids == fleet.device_ids


@pytest.mark.usefixtures("blueprint_dir")
async def test_one_at_a_time_waits_for_each_upload_to_end(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """The next device is installed only after the previous upload job's terminal event."""
    fleet = Fleet(hass, 3)
    install = FakeInstall(hass)
    for index in range(3):
        fleet.set(index, "on", **UPDATE_AVAILABLE)
    await _start(
        hass, freezer, OUTSIDE_WINDOW, update_entities=fleet.entity_ids, one_at_a_time=True
    )
    watch = RunWatch(hass, install)

    _open_window(hass, freezer)
    await watch.until_waiting_after(1)
    assert install.device_ids == fleet.device_ids[:1]

    _job_event(hass, "upload-1", "running")
    _job_event(hass, "compile-1", "completed")
    _job_event(hass, "upload-1", "failed")
    await watch.until_waiting_after(2)
    assert install.device_ids == fleet.device_ids[:2]

    _job_event(hass, "upload-2", "completed")
    await watch.until_waiting_after(3)
    assert install.device_ids == fleet.device_ids

    _job_event(hass, "upload-3", "cancelled")
    await watch.until_finished()
    assert len(install.calls) == 3


@pytest.mark.usefixtures("blueprint_dir")
async def test_without_one_at_a_time_every_device_is_queued_at_once(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """All pending devices are handed to the pipeline without waiting for uploads."""
    fleet = Fleet(hass, 3)
    install = FakeInstall(hass)
    for index in range(3):
        fleet.set(index, "on", **UPDATE_AVAILABLE)
    await _start(hass, freezer, OUTSIDE_WINDOW, update_entities=fleet.entity_ids)

    _open_window(hass, freezer)
    await hass.async_block_till_done()

    assert install.device_ids == fleet.device_ids


@pytest.mark.usefixtures("blueprint_dir")
async def test_a_rejected_device_does_not_stop_the_others(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """An install the integration refuses is skipped; the next device still installs."""
    fleet = Fleet(hass, 2)
    install = FakeInstall(hass)
    install.reject_device_ids.add(fleet.device_ids[0])
    for index in range(2):
        fleet.set(index, "on", **UPDATE_AVAILABLE)
    await _start(
        hass, freezer, OUTSIDE_WINDOW, update_entities=fleet.entity_ids, one_at_a_time=True
    )
    watch = RunWatch(hass, install)

    _open_window(hass, freezer)
    await watch.until_waiting_after(2)
    assert install.device_ids == fleet.device_ids

    _job_event(hass, "upload-2", "completed")
    await watch.until_finished()


@pytest.mark.usefixtures("blueprint_dir")
async def test_changed_again_reinstalls_but_a_single_change_installs_once(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """off -> on installs once; a new latest_version while still on installs again."""
    fleet = Fleet(hass, 1)
    install = FakeInstall(hass)
    await _start(hass, freezer, INSIDE_WINDOW, update_entities=fleet.entity_ids)

    fleet.set(0, "on", **UPDATE_AVAILABLE)
    await hass.async_block_till_done()
    assert len(install.calls) == 1

    fleet.set(0, "on", installed_version="1111aaaa", latest_version="3333cccc", in_progress=True)
    await hass.async_block_till_done()
    assert len(install.calls) == 2


@pytest.mark.usefixtures("blueprint_dir")
async def test_running_install_is_not_restarted_when_the_window_opens(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """An update entity already installing (for example restored after a restart) is left alone."""
    fleet = Fleet(hass, 2)
    install = FakeInstall(hass)
    fleet.set(0, "on", **UPDATE_AVAILABLE)
    fleet.set(1, "on", **UPDATE_AVAILABLE)
    hass.states.async_set(fleet.entity_ids[0], "on", {**UPDATE_AVAILABLE, "in_progress": True})
    await _start(hass, freezer, OUTSIDE_WINDOW, update_entities=fleet.entity_ids)

    _open_window(hass, freezer)
    await hass.async_block_till_done()

    assert install.device_ids == [fleet.device_ids[1]]


# With the real integration --------------------------------------------------------------


def test_names_match_the_integration() -> None:
    """The domain and event name the blueprint and these tests use are the integration's."""
    assert INTEGRATION_DOMAIN == DOMAIN
    assert EVENT_JOB == JOB_EVENT


def _state(hass: HomeAssistant, entity_id: str) -> State:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state


class UploadWatch:
    """Collects the integration's job events; waits for uploads of configurations to end."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Listen to `esphome_pipeline_job` from now on."""
        self.ended: dict[str, list[str]] = {}
        self._changed = asyncio.Event()

        @callback
        def on_event(event: Any) -> None:
            data = event.data
            if data["job_type"] == "upload" and data["status"] in TERMINAL:
                self.ended.setdefault(data["configuration"], []).append(data["status"])
                self._changed.set()

        self.unsubscribe = hass.bus.async_listen(JOB_EVENT, on_event)

    async def until_ended(self, *configurations: str) -> None:
        """Return once an upload of each configuration has ended."""
        async with asyncio.timeout(60):  # a guard against a hang, not a timing assertion
            while not all(name in self.ended for name in configurations):
                self._changed.clear()
                await self._changed.wait()


@pytest.mark.usefixtures("blueprint_dir", "enable_custom_integrations")
async def test_blueprint_installs_a_changed_configuration_with_the_real_integration(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """Edit a YAML: the firmware entity turns on, the blueprint installs it, it turns off.

    Runs the real integration on a folder of two configurations with the fake ESPHome CLI;
    one device at a time, with a window that spans the whole day.
    """
    for platform in ("button", "sensor", "update", "diagnostics"):
        # Import the platforms in the executor, as a real start does (see tests/ha/conftest).
        sys.modules.pop(f"custom_components.esphome_pipeline.{platform}", None)
    fake = FakeEsphome(tmp_path / "esphome")
    fake.add_config("kitchen")
    fake.add_config("garage")
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="ESPHome Pipeline (esphome)",
        unique_id=str(fake.config_dir),
        data={CONF_CONFIG_DIR: str(fake.config_dir)},
        options={CONF_ESPHOME_COMMAND: fake_command_line()},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    uploads = UploadWatch(hass)

    # Nothing installed yet: the firmware entities offer an install ("on", "Not installed yet").
    assert _state(hass, "update.kitchen_firmware").state == "on"
    await hass.services.async_call(
        DOMAIN, "install", {"configuration": ["kitchen.yaml", "garage.yaml"]}, blocking=True
    )
    await uploads.until_ended("kitchen.yaml", "garage.yaml")
    await hass.async_block_till_done()
    assert _state(hass, "update.kitchen_firmware").state == "off"
    assert _state(hass, "update.garage_firmware").state == "off"

    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "alias": "Install on change",
                "use_blueprint": {
                    "path": str(BLUEPRINT_RELATIVE),
                    "input": {
                        "update_entities": ["update.kitchen_firmware", "update.garage_firmware"],
                        "window_start": "00:00:00",
                        "window_end": "00:00:00",
                        "one_at_a_time": True,
                    },
                },
            }
        },
    )
    await hass.async_block_till_done()
    uploads.ended.clear()

    kitchen = fake.config_dir / "kitchen.yaml"
    kitchen.write_text(kitchen.read_text(encoding="utf-8") + "logger:\n", encoding="utf-8")
    await entry.runtime_data.coordinator.async_rescan()
    await uploads.until_ended("kitchen.yaml")
    watch = RunWatch(hass)
    await watch.until_finished()
    await hass.async_block_till_done()

    assert uploads.ended == {"kitchen.yaml": ["completed"]}
    kitchen_state = _state(hass, "update.kitchen_firmware")
    assert kitchen_state.state == "off"
    # The same build: the installed version ends with the latest version's short hash.
    assert kitchen_state.attributes["installed_version"].endswith(
        kitchen_state.attributes["latest_version"][-7:]
    )
    assert _state(hass, "update.garage_firmware").state == "off"
    uploads.unsubscribe()
    await hass.services.async_call("automation", "turn_off", {"entity_id": "all"}, blocking=True)
    assert await hass.config_entries.async_unload(entry.entry_id)
