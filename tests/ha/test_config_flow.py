"""The config, options and reconfigure flows, every error included.

The ESPHome install the user step offers is tested in test_config_flow_install.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
import shlex
import sys
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
    CONF_UPLOAD_SLOTS,
    DOMAIN,
)

FAILING_COMMAND = shlex.join([sys.executable, "-c", "import sys; sys.exit(3)"])


@pytest.fixture(autouse=True)
async def no_setup(hass: HomeAssistant) -> AsyncIterator[None]:
    """Keep entries created by the flows from being set up: these tests are about the flows."""
    with (
        patch("custom_components.esphome_pipeline.async_setup_entry", return_value=True),
        patch("custom_components.esphome_pipeline.async_unload_entry", return_value=True),
    ):
        yield
        # Unload while the stand-ins are still in place.
        for entry in hass.config_entries.async_entries(DOMAIN):
            await hass.config_entries.async_unload(entry.entry_id)


async def test_user_flow_creates_entry(
    hass: HomeAssistant, config_dir: Path, esphome_command: str
) -> None:
    """A readable folder and a working command create the entry; the command is an option."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    schema_defaults = {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description
    }
    assert schema_defaults[CONF_CONFIG_DIR] == hass.config.path("esphome")

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_CONFIG_DIR: str(config_dir), CONF_ESPHOME_COMMAND: f" {esphome_command} "},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "ESPHome Pipeline (esphome)"
    assert result["data"] == {CONF_CONFIG_DIR: str(config_dir.resolve())}
    assert result["options"] == {CONF_ESPHOME_COMMAND: esphome_command}
    assert result["result"].unique_id == str(config_dir.resolve())


async def test_user_flow_detects_command(
    hass: HomeAssistant, config_dir: Path, esphome_command: str
) -> None:
    """An empty command is detected for the check and stored empty (detected at each setup)."""
    with patch(
        "custom_components.esphome_pipeline.preflight.detect_command_line",
        return_value=esphome_command,
    ):
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_CONFIG_DIR: str(config_dir)}
        )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["options"] == {CONF_ESPHOME_COMMAND: ""}


@pytest.mark.parametrize(
    ("folder", "unreadable", "error"),
    [
        ("relative/path", False, "folder_not_absolute"),
        ("{tmp}/missing", False, "folder_not_found"),
        ("{tmp}/esphome", True, "folder_unreadable"),
    ],
)
async def test_user_flow_folder_errors(
    hass: HomeAssistant,
    config_dir: Path,
    esphome_command: str,
    folder: str,
    unreadable: bool,
    error: str,
) -> None:
    """A bad folder shows its error on the field; fixing it creates the entry."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    with patch(
        "custom_components.esphome_pipeline.preflight.os.access", return_value=not unreadable
    ):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {
                CONF_CONFIG_DIR: folder.format(tmp=config_dir.parent),
                CONF_ESPHOME_COMMAND: esphome_command,
            },
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_CONFIG_DIR: error}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_CONFIG_DIR: str(config_dir), CONF_ESPHOME_COMMAND: esphome_command},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    ("command", "detected", "field", "error"),
    [
        ('esphome "unclosed', None, CONF_ESPHOME_COMMAND, "cli_invalid"),
        (FAILING_COMMAND, None, CONF_ESPHOME_COMMAND, "cli_failed"),
        ("/nonexistent/bin/esphome", None, CONF_ESPHOME_COMMAND, "cli_failed"),
    ],
)
async def test_user_flow_command_errors(
    hass: HomeAssistant,
    config_dir: Path,
    esphome_command: str,
    command: str,
    detected: str | None,
    field: str,
    error: str,
) -> None:
    """A command that is missing, unparsable or failing shows its error; a fix recovers."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    with patch(
        "custom_components.esphome_pipeline.preflight.detect_command_line", return_value=detected
    ):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_CONFIG_DIR: str(config_dir), CONF_ESPHOME_COMMAND: command}
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_CONFIG_DIR: str(config_dir), CONF_ESPHOME_COMMAND: esphome_command},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_one_entry_per_folder(
    hass: HomeAssistant, config_dir: Path, esphome_command: str
) -> None:
    """A folder that already has an entry aborts, however it is spelled."""
    MockConfigEntry(
        domain=DOMAIN,
        unique_id=str(config_dir.resolve()),
        data={CONF_CONFIG_DIR: str(config_dir.resolve())},
    ).add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_CONFIG_DIR: f"{config_dir}/../esphome", CONF_ESPHOME_COMMAND: esphome_command},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


def _entry(config_dir: Path, **options: object) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="ESPHome Pipeline (esphome)",
        unique_id=str(config_dir),
        data={CONF_CONFIG_DIR: str(config_dir)},
        options=options,
    )


async def test_options_flow(hass: HomeAssistant, config_dir: Path, esphome_command: str) -> None:
    """The options show current values, refuse a failing command and save a working one."""
    entry = _entry(config_dir, **{CONF_ESPHOME_COMMAND: esphome_command})
    entry.add_to_hass(hass)

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    suggested = {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description
    }
    assert suggested == {
        CONF_ESPHOME_COMMAND: esphome_command,
        CONF_COMPILE_WORKERS: 1,
        CONF_UPLOAD_SLOTS: 4,
        CONF_AUTO_INSTALL_ON_CHANGE: False,
        "proof_timeout": 60,
        "build_on": "local_and_peers",
        "esphome_version_policy": "any",
    }

    new_options = {
        CONF_ESPHOME_COMMAND: FAILING_COMMAND,
        CONF_COMPILE_WORKERS: 2.0,
        CONF_UPLOAD_SLOTS: 3.0,
        CONF_AUTO_INSTALL_ON_CHANGE: True,
        "proof_timeout": 0.0,
        "build_on": "peers_only",
        "esphome_version_policy": "same_release",
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], new_options)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_ESPHOME_COMMAND: "cli_failed"}

    new_options[CONF_ESPHOME_COMMAND] = esphome_command
    result = await hass.config_entries.options.async_configure(result["flow_id"], new_options)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        CONF_ESPHOME_COMMAND: esphome_command,
        CONF_COMPILE_WORKERS: 2,
        CONF_UPLOAD_SLOTS: 3,
        CONF_AUTO_INSTALL_ON_CHANGE: True,
        "proof_timeout": 0,
        "build_on": "peers_only",
        "esphome_version_policy": "same_release",
    }


async def test_options_flow_nothing_detected(hass: HomeAssistant, config_dir: Path) -> None:
    """An empty command with no ESPHome installed is a form-level error."""
    entry = _entry(config_dir)
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    with patch(
        "custom_components.esphome_pipeline.preflight.detect_command_line", return_value=None
    ):
        result = await hass.config_entries.options.async_configure(
            result["flow_id"],
            {CONF_COMPILE_WORKERS: 1, CONF_UPLOAD_SLOTS: 4, CONF_AUTO_INSTALL_ON_CHANGE: False},
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cli_not_found"}


async def test_reconfigure_moves_entry(hass: HomeAssistant, config_dir: Path) -> None:
    """Reconfigure refuses a missing folder, then moves the entry and its unique id."""
    entry = _entry(config_dir)
    entry.add_to_hass(hass)
    other = config_dir.parent / "other"
    other.mkdir()

    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CONFIG_DIR: str(config_dir.parent / "missing")}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_CONFIG_DIR: "folder_not_found"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CONFIG_DIR: str(other)}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.unique_id == str(other.resolve())
    assert entry.data == {CONF_CONFIG_DIR: str(other.resolve())}
    assert entry.title == "ESPHome Pipeline (other)"


async def test_reconfigure_same_folder(hass: HomeAssistant, config_dir: Path) -> None:
    """Submitting the current folder again succeeds and changes nothing."""
    entry = _entry(config_dir)
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CONFIG_DIR: str(config_dir)}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.unique_id == str(config_dir)


async def test_reconfigure_to_taken_folder(hass: HomeAssistant, config_dir: Path) -> None:
    """A folder another entry owns is refused."""
    other = config_dir.parent / "other"
    other.mkdir()
    entry = _entry(config_dir)
    entry.add_to_hass(hass)
    _entry(other.resolve()).add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CONFIG_DIR: str(other)}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.unique_id == str(config_dir)
