"""Input hygiene seen from Home Assistant: what actions echo, and links out of the folder.

Long or control-character input comes back in the translated ServiceValidationError (and
any log line) escaped and at most 200 characters long; a configuration that is a link leading
outside the folder is no device, its repair issue says why, and actions refuse it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esphome_pipeline.const import DOMAIN
from custom_components.esphome_pipeline.engine.errors import SHOWN_LIMIT, shown
from custom_components.esphome_pipeline.issues import unreadable_issue_id
from tests.fakes import FakeEsphome

from .conftest import coordinator_of, engine_of, setup_entry

HOSTILE = "\x1b[2J\r\nFAKE LOG LINE " + "A" * 5000


async def _call(hass: HomeAssistant, service: str, data: dict[str, Any]) -> None:
    await hass.services.async_call(DOMAIN, service, data, blocking=True, return_response=True)


@pytest.mark.parametrize("service", ["install", "upload"])
async def test_hostile_port_is_echoed_short_and_escaped(
    hass: HomeAssistant,
    fake: FakeEsphome,
    entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
    service: str,
) -> None:
    """The port placeholder and the message are shortened and escaped; nothing is queued."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    with caplog.at_level(logging.DEBUG), pytest.raises(ServiceValidationError) as raised:
        await _call(hass, service, {"configuration": "kitchen.yaml", "port": HOSTILE})
    placeholders = raised.value.translation_placeholders or {}
    assert raised.value.translation_key == "invalid_port"
    assert placeholders["port"] == shown(HOSTILE)
    assert len(placeholders["port"]) <= SHOWN_LIMIT
    assert len(placeholders["message"]) < 2 * SHOWN_LIMIT
    for text in (*placeholders.values(), str(raised.value), caplog.text):
        assert "\x1b" not in text
        assert "\r\nFAKE" not in text
        assert "A" * (SHOWN_LIMIT + 1) not in text
    assert engine_of(entry).jobs() == []
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_link_outside_the_folder_is_no_device(
    hass: HomeAssistant,
    fake: FakeEsphome,
    entry: MockConfigEntry,
    config_dir: Path,
    tmp_path: Path,
    issue_registry: ir.IssueRegistry,
) -> None:
    """Left out of the scan, reported in a repair issue, refused by the actions."""
    fake.add_config("kitchen")
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("esphome:\n  name: elsewhere\n")
    (config_dir / "escape.yaml").symlink_to(outside)
    (config_dir / "alias.yaml").symlink_to("kitchen.yaml")
    await setup_entry(hass, entry)
    coordinator = coordinator_of(entry)
    assert sorted(coordinator.nodes) == ["alias.yaml", "kitchen.yaml"]
    reason = "it is a link to a file outside the configuration folder"
    assert dict(coordinator.unreadable) == {"escape.yaml": reason}
    issue = issue_registry.async_get_issue(
        DOMAIN, unreadable_issue_id(entry.entry_id, "escape.yaml")
    )
    assert issue is not None
    assert (issue.translation_placeholders or {})["error"] == reason
    with pytest.raises(ServiceValidationError) as raised:
        await _call(hass, "compile", {"configuration": "escape.yaml"})
    assert raised.value.translation_key == "unknown_configuration"
    assert coordinator.jobs() == []
    assert await hass.config_entries.async_unload(entry.entry_id)
