"""The "Reinstall ESPHome" repair, with the installer faked as a real process.

The installed environment is broken the way a Home Assistant update breaks it (pyvenv.cfg made
for another Python); the fix flow rebuilds the same version beside it, shows progress, replaces
it only once the new one answers, and reloads the entries that run it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.components.repairs import DOMAIN as REPAIRS_DOMAIN
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esphome_pipeline.const import (
    CONF_CONFIG_DIR,
    CONF_ESPHOME_COMMAND,
    CONF_MANAGED_ESPHOME,
    DOMAIN,
    MANAGED_ESPHOME_VERSION,
)
from custom_components.esphome_pipeline.provision.layout import ManagedEnvironment
from custom_components.esphome_pipeline.provision.manager import EsphomeProvisioner
from custom_components.esphome_pipeline.repairs import (
    ReinstallEsphomeFlow,
    async_clear_managed_esphome_broken,
    async_create_fix_flow,
    async_report_managed_esphome_broken,
    managed_broken_issue_id,
)
from tests.fakes.installer import FakeInstaller, use_fake_installer

PACKAGE = Path(__file__).parents[2] / "custom_components" / "esphome_pipeline"
CAUSE = "it was made for Python 3.12, and Home Assistant now runs Python 3.13"


@pytest.fixture
def installer(hass: HomeAssistant, tmp_path: Path) -> tuple[FakeInstaller, EsphomeProvisioner]:
    """Home Assistant's provisioner, building from the fake interpreter."""
    return use_fake_installer(hass, tmp_path)


@pytest.fixture
async def broken(
    hass: HomeAssistant, installer: tuple[FakeInstaller, EsphomeProvisioner]
) -> ManagedEnvironment:
    """ESPHome 2026.10.0 installed, then broken by a Python change."""
    _fake, provisioner = installer
    env = await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    (env.path / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.12.0\n", encoding="utf-8")
    assert await provisioner.async_problem(env) is not None
    return env


@pytest.fixture
async def entries(hass: HomeAssistant) -> list[MockConfigEntry]:
    """Two entries on the broken version and one on another; their setup is not the point."""
    assert await async_setup_component(hass, REPAIRS_DOMAIN, {})
    # Loaded, so that the repairs integration finds this integration's repairs platform.
    assert await async_setup_component(hass, DOMAIN, {})
    made = [
        MockConfigEntry(
            domain=DOMAIN,
            data={CONF_CONFIG_DIR: f"/folder{index}", CONF_MANAGED_ESPHOME: version},
            entry_id=f"entry{index}",
        )
        for index, version in enumerate((MANAGED_ESPHOME_VERSION, MANAGED_ESPHOME_VERSION, "1.0"))
    ]
    for entry in made:
        entry.add_to_hass(hass)
    return made


async def _start_fix(hass: HomeAssistant, entry_id: str, *, report: bool = True) -> dict[str, Any]:
    if report:
        async_report_managed_esphome_broken(hass, entry_id, MANAGED_ESPHOME_VERSION, CAUSE)
    manager = hass.data[REPAIRS_DOMAIN]["flow_manager"]
    result: dict[str, Any] = await manager.async_init(
        DOMAIN, data={"issue_id": managed_broken_issue_id(entry_id)}
    )
    return result


async def _reinstall(hass: HomeAssistant, flow_id: str) -> dict[str, Any]:
    """Confirm, let the reinstall run to its end, and return the step after it."""
    manager = hass.data[REPAIRS_DOMAIN]["flow_manager"]
    result = await manager.async_configure(flow_id, {})
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["progress_action"] == "reinstall_esphome"
    assert result["description_placeholders"] == {"version": MANAGED_ESPHOME_VERSION}
    await hass.async_block_till_done()
    final: dict[str, Any] = await manager.async_configure(flow_id)
    return final


async def test_issue_is_fixable_and_clears(hass: HomeAssistant) -> None:
    """The issue names the version and the cause, is fixable, and clears in one call."""
    async_report_managed_esphome_broken(hass, "entry0", MANAGED_ESPHOME_VERSION, CAUSE)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, "managed_esphome_broken_entry0")
    assert issue is not None
    assert issue.is_fixable
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_key == "managed_esphome_broken"
    assert issue.translation_placeholders == {"version": MANAGED_ESPHOME_VERSION, "error": CAUSE}
    assert issue.data == {"entry_id": "entry0", "version": MANAGED_ESPHOME_VERSION, "error": CAUSE}

    async_clear_managed_esphome_broken(hass, "entry0")
    assert ir.async_get(hass).async_get_issue(DOMAIN, "managed_esphome_broken_entry0") is None


async def test_reinstall_repairs_and_reloads(
    hass: HomeAssistant,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
    broken: ManagedEnvironment,
    entries: list[MockConfigEntry],
) -> None:
    """Confirm -> progress -> the same version works again; its entries are reloaded."""
    fake, provisioner = installer
    result = await _start_fix(hass, "entry0")
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "confirm"
    assert result["description_placeholders"] == {
        "version": MANAGED_ESPHOME_VERSION,
        "cause": CAUSE,
        "error": "",
    }

    with patch.object(hass.config_entries, "async_schedule_reload") as reload:
        result = await _reinstall(hass, result["flow_id"])

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert await provisioner.async_problem(broken) is None
    assert sorted(call.args[0] for call in reload.call_args_list) == ["entry0", "entry1"]
    assert ir.async_get(hass).async_get_issue(DOMAIN, "managed_esphome_broken_entry0") is None
    assert sorted(child.name for child in provisioner.root.iterdir()) == [
        f"esphome-{MANAGED_ESPHOME_VERSION}"
    ]
    assert sum("venv" in command for command in fake.commands()) == 2


async def test_failed_reinstall_shows_output_and_can_be_retried(
    hass: HomeAssistant,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
    broken: ManagedEnvironment,
    entries: list[MockConfigEntry],
) -> None:
    """A failed reinstall returns to the confirmation with the installer's last lines and
    leaves the broken copy where it was; confirming again succeeds once the cause is gone."""
    fake, provisioner = installer
    fake.behave(install_fail_after=1)
    result = await _start_fix(hass, "entry0")

    result = await _reinstall(hass, result["flow_id"])

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "confirm"
    assert result["errors"] == {"base": "install_failed"}
    assert "No space left on device" in result["description_placeholders"]["error"]
    assert await provisioner.async_problem(broken) is not None  # untouched, still broken

    fake.behave(install_fail_after=None)
    with patch.object(hass.config_entries, "async_schedule_reload"):
        result = await _reinstall(hass, result["flow_id"])
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert await provisioner.async_problem(broken) is None


async def test_fix_flow_without_data(hass: HomeAssistant) -> None:
    """An issue stored without data still opens a flow (its reinstall then fails clearly)."""
    flow = await async_create_fix_flow(hass, "managed_esphome_broken_x", None)
    assert isinstance(flow, ReinstallEsphomeFlow)


def test_fix_flow_strings() -> None:
    """Every step, progress text and error of the fix flow is translated."""
    strings = json.loads((PACKAGE / "strings.json").read_text(encoding="utf-8"))
    fix_flow = strings["issues"]["managed_esphome_broken"]["fix_flow"]
    assert set(fix_flow["step"]) == {"confirm"}
    assert set(fix_flow["progress"]) == {"reinstall_esphome"}
    assert set(fix_flow["error"]) == {"install_failed"}
    config = strings["config"]
    assert set(config["progress"]) == {"install_esphome"}
    assert {"install_failed", "version_invalid", "managed_esphome_broken"} <= set(config["error"])
    assert "managed_esphome_broken" in strings["options"]["error"]


async def test_broken_at_setup_then_repaired(
    hass: HomeAssistant,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
    broken: ManagedEnvironment,
    tmp_path: Path,
) -> None:
    """Setup finds the installed ESPHome broken: the entry retries with the fixable issue;
    the fix reinstalls, the entry reloads and runs, and the issue is gone."""
    assert await async_setup_component(hass, REPAIRS_DOMAIN, {})
    folder = tmp_path / "esphome"
    folder.mkdir()
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=str(folder),
        data={CONF_CONFIG_DIR: str(folder), CONF_MANAGED_ESPHOME: MANAGED_ESPHOME_VERSION},
        options={CONF_ESPHOME_COMMAND: ""},
    )
    entry.add_to_hass(hass)
    issues = ir.async_get(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    issue = issues.async_get_issue(DOMAIN, managed_broken_issue_id(entry.entry_id))
    assert issue is not None
    assert issue.is_fixable
    assert "made for Python 3.12" in issue.translation_placeholders["error"]

    result = await _start_fix(hass, entry.entry_id, report=False)
    assert "made for Python 3.12" in result["description_placeholders"]["cause"]
    result = await _reinstall(hass, result["flow_id"])
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert issues.async_get_issue(DOMAIN, managed_broken_issue_id(entry.entry_id)) is None
    assert await hass.config_entries.async_unload(entry.entry_id)
