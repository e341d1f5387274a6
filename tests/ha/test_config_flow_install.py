"""The ESPHome install the config flow offers when no working ESPHome is found, and the
checks of an installed ESPHome in the options flow. The installer is faked as a real process
(tests/fakes/fake_installer.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
import shlex
import sys
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esphome_pipeline.const import (
    CONF_AUTO_INSTALL_ON_CHANGE,
    CONF_COMPILE_WORKERS,
    CONF_CONFIG_DIR,
    CONF_ESPHOME_COMMAND,
    CONF_ESPHOME_VERSION,
    CONF_MANAGED_ESPHOME,
    CONF_UPLOAD_SLOTS,
    DOMAIN,
    MANAGED_ESPHOME_VERSION,
)
from custom_components.esphome_pipeline.preflight import (
    CliFailedError,
    ManagedEsphomeBrokenError,
    async_check_cli,
)
from custom_components.esphome_pipeline.provision.manager import EsphomeProvisioner
from tests.fakes.installer import FakeInstaller, use_fake_installer

FAILING_COMMAND = shlex.join([sys.executable, "-c", "import sys; sys.exit(3)"])


@pytest.fixture(autouse=True)
async def no_setup(hass: HomeAssistant) -> AsyncIterator[None]:
    """Keep entries created by the flows from being set up: these tests are about the flows."""
    with (
        patch("custom_components.esphome_pipeline.async_setup_entry", return_value=True),
        patch("custom_components.esphome_pipeline.async_unload_entry", return_value=True),
    ):
        yield
        for entry in hass.config_entries.async_entries(DOMAIN):
            await hass.config_entries.async_unload(entry.entry_id)


NEWER = "2026.11.0"
DETECT = "custom_components.esphome_pipeline.preflight.detect_command_line"


@pytest.fixture
def installer(hass: HomeAssistant, tmp_path: Path) -> tuple[FakeInstaller, EsphomeProvisioner]:
    """Home Assistant's provisioner, building from the fake interpreter."""
    return use_fake_installer(hass, tmp_path)


def _folders(provisioner: EsphomeProvisioner) -> list[str]:
    root = provisioner.root
    return sorted(child.name for child in root.iterdir()) if root.is_dir() else []


async def _install_offer(
    hass: HomeAssistant, config_dir: Path, *, advanced: bool = False, detected: str | None = None
) -> Any:
    """Run the user step with an empty command while `detected` is what detection finds."""
    with patch(DETECT, return_value=detected):
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": SOURCE_USER, "show_advanced_options": advanced}
        )
        return await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_CONFIG_DIR: str(config_dir), CONF_ESPHOME_COMMAND: " "}
        )


async def _install(hass: HomeAssistant, flow_id: str, user_input: dict[str, Any]) -> Any:
    """Submit the offer, let the install run to its end, and return the step after it."""
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["step_id"] == "installing"
    assert result["progress_action"] == "install_esphome"
    await hass.async_block_till_done()
    return await hass.config_entries.flow.async_configure(flow_id)


async def test_nothing_found_offers_install(
    hass: HomeAssistant,
    config_dir: Path,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
) -> None:
    """No ESPHome anywhere: the flow offers the tested version, installs it with progress,
    and the entry runs the installed ESPHome (no command stored)."""
    _fake, provisioner = installer
    result = await _install_offer(hass, config_dir)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "install"
    assert result["data_schema"].schema == {}  # the version is an advanced field
    assert result["errors"] == {}
    assert result["description_placeholders"] == {
        "version": MANAGED_ESPHOME_VERSION,
        "path": str(provisioner.root),
        "problem": "",
        "error": "",
    }

    result = await _install(hass, result["flow_id"], {})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "ESPHome Pipeline (esphome)"
    assert result["data"] == {
        CONF_CONFIG_DIR: str(config_dir.resolve()),
        CONF_MANAGED_ESPHOME: MANAGED_ESPHOME_VERSION,
    }
    assert result["options"] == {CONF_ESPHOME_COMMAND: ""}
    assert _folders(provisioner) == [f"esphome-{MANAGED_ESPHOME_VERSION}"]


async def test_failing_detected_cli_offers_install(
    hass: HomeAssistant,
    config_dir: Path,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
) -> None:
    """A detected ESPHome that does not answer counts as none; the offer says why."""
    result = await _install_offer(hass, config_dir, detected=FAILING_COMMAND)
    assert result["step_id"] == "install"
    problem = result["description_placeholders"]["problem"]
    assert problem.startswith(" (")
    assert "exit code 3" in problem


async def test_advanced_mode_chooses_the_version(
    hass: HomeAssistant,
    config_dir: Path,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
) -> None:
    """In advanced mode another release can be chosen; a non-version is refused."""
    _fake, provisioner = installer
    result = await _install_offer(hass, config_dir, advanced=True)
    fields = {str(key): key.default() for key in result["data_schema"].schema}
    assert fields == {CONF_ESPHOME_VERSION: MANAGED_ESPHOME_VERSION}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ESPHOME_VERSION: "newest; rm -rf /"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_ESPHOME_VERSION: "version_invalid"}

    result = await _install(hass, result["flow_id"], {CONF_ESPHOME_VERSION: f" {NEWER} "})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_MANAGED_ESPHOME] == NEWER
    assert _folders(provisioner) == [f"esphome-{NEWER}"]


async def test_failed_install_shows_the_installer_output_and_can_be_retried(
    hass: HomeAssistant,
    config_dir: Path,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
) -> None:
    """pip failing half-way: back to the offer with its last lines, nothing installed; once
    the cause is gone, submitting again installs."""
    fake, provisioner = installer
    fake.behave(install_fail_after=2)
    result = await _install_offer(hass, config_dir)

    result = await _install(hass, result["flow_id"], {})

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "install"
    assert result["errors"] == {"base": "install_failed"}
    shown = result["description_placeholders"]["error"]
    assert shown.startswith(f"\n\n```\nCould not install ESPHome {MANAGED_ESPHOME_VERSION}")
    assert "No space left on device\n```" in shown
    assert _folders(provisioner) == []

    fake.behave(install_fail_after=None)
    result = await _install(hass, result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _folders(provisioner) == [f"esphome-{MANAGED_ESPHOME_VERSION}"]


async def test_folder_taken_while_installing(
    hass: HomeAssistant,
    config_dir: Path,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
) -> None:
    """Another entry took the folder during the install: the flow aborts instead of a twin."""
    fake, _provisioner = installer
    fake.behave(install_wait_for="go")
    result = await _install_offer(hass, config_dir)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    MockConfigEntry(
        domain=DOMAIN,
        unique_id=str(config_dir.resolve()),
        data={CONF_CONFIG_DIR: str(config_dir.resolve())},
    ).add_to_hass(hass)
    fake.release("go")
    await hass.async_block_till_done()

    result = await hass.config_entries.flow.async_configure(result["flow_id"])

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_closing_the_dialog_stops_the_install(
    hass: HomeAssistant,
    config_dir: Path,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
) -> None:
    """Closing the flow mid-install stops the installer; nothing is left behind."""
    fake, provisioner = installer
    fake.behave(install_wait_for="never")
    result = await _install_offer(hass, config_dir)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    await fake.wait_for("waiting")
    install_name = f"{DOMAIN} install ESPHome {MANAGED_ESPHOME_VERSION}"
    install = next(task for task in asyncio.all_tasks() if task.get_name() == install_name)

    hass.config_entries.flow.async_abort(result["flow_id"])
    # Home Assistant does not wait for a cancelled task; the test waits for its clean-up.
    with pytest.raises(asyncio.CancelledError):
        await install

    assert provisioner.root.is_dir()
    assert _folders(provisioner) == []
    assert not hass.config_entries.async_entries(DOMAIN)


async def test_options_flow_checks_the_installed_esphome(
    hass: HomeAssistant,
    config_dir: Path,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
) -> None:
    """With an empty command the options check the installed ESPHome; broken, it says so."""
    _fake, provisioner = installer
    env = await provisioner.async_install(MANAGED_ESPHOME_VERSION)
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=str(config_dir),
        data={CONF_CONFIG_DIR: str(config_dir), CONF_MANAGED_ESPHOME: MANAGED_ESPHOME_VERSION},
        options={CONF_ESPHOME_COMMAND: ""},
    )
    entry.add_to_hass(hass)
    answer = {CONF_COMPILE_WORKERS: 1, CONF_UPLOAD_SLOTS: 4, CONF_AUTO_INSTALL_ON_CHANGE: False}

    result = await hass.config_entries.options.async_init(entry.entry_id)
    with patch(DETECT, return_value=None):
        result = await hass.config_entries.options.async_configure(result["flow_id"], answer)
    assert result["type"] is FlowResultType.CREATE_ENTRY

    (env.path / "pyvenv.cfg").write_text("home = /usr\nversion = 3.1.0\n", encoding="utf-8")
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], answer)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "managed_esphome_broken"}
    assert "made for Python 3.1," in result["description_placeholders"]["error"]


async def test_installed_esphome_check(
    hass: HomeAssistant,
    installer: tuple[FakeInstaller, EsphomeProvisioner],
) -> None:
    """The check of an installed ESPHome: it answers; or it says why it cannot be used."""
    _fake, provisioner = installer
    env = await provisioner.async_install(MANAGED_ESPHOME_VERSION)

    checked = await async_check_cli(hass, "", managed=MANAGED_ESPHOME_VERSION)
    assert checked.version == MANAGED_ESPHOME_VERSION
    assert checked.cli.command == env.command
    # The user's own command wins.
    with pytest.raises(CliFailedError) as caught:
        await async_check_cli(hass, FAILING_COMMAND, managed=MANAGED_ESPHOME_VERSION)
    assert not isinstance(caught.value, ManagedEsphomeBrokenError)

    (env.path / "fake-esphome.json").unlink()
    with pytest.raises(ManagedEsphomeBrokenError, match="No module named esphome") as broken:
        await async_check_cli(hass, "", managed=MANAGED_ESPHOME_VERSION)
    assert broken.value.version == MANAGED_ESPHOME_VERSION
    assert broken.value.reason == "managed_esphome_broken"

    with pytest.raises(ManagedEsphomeBrokenError, match="Not an ESPHome version"):
        await async_check_cli(hass, "", managed="../elsewhere")
