"""Diagnostics of the entry and of a device: content and redaction of secrets."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esphome_pipeline.const import DOMAIN
from custom_components.esphome_pipeline.diagnostics import (
    REDACTED,
    async_get_config_entry_diagnostics,
    async_get_device_diagnostics,
)
from tests.fakes import FakeEsphome

from .conftest import coordinator_of, setup_entry, wait_for_status


async def test_diagnostics_redact_secrets(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """Secret values never appear, wherever the output or an error echoed them."""
    (fake.config_dir / "secrets.yaml").write_text(
        "wifi_password: hunter2-secret\napi_key: abcdefgh\nflag: on\n"
    )
    (fake.config_dir / "secrets.yml").write_text("- not a mapping\n")
    fake.add_config("kitchen", extra="wifi:\n  password: !secret wifi_password\n")
    fake.behave("kitchen.yaml", "compile", lines=["Using password hunter2-secret", "key abcdefgh"])
    (fake.config_dir / "broken.yaml").write_text("esphome: [\n  hunter2-secret\n")
    await setup_entry(hass, entry)
    coordinator = coordinator_of(entry)
    job = (await coordinator.async_compile(["kitchen.yaml"], force=False))[0]
    await wait_for_status(hass, entry, job.job_id, "completed")

    data = await async_get_config_entry_diagnostics(hass, entry)
    text = repr(data)
    assert "hunter2-secret" not in text
    assert "abcdefgh" not in text
    assert REDACTED in text
    assert data["entry"]["data"] == dict(entry.data)
    assert data["esphome_version"] == "2026.10.0"
    assert data["engine_running"] is True
    assert set(data["configurations"]) == {"kitchen.yaml"}
    assert data["configurations"]["kitchen.yaml"]["installed_fingerprint"] is None
    assert list(data["unreadable"]) == ["broken.yaml"]
    assert data["jobs"][0]["output_tail"][0] == f"Using password {REDACTED}"
    assert data["jobs"][0]["output_lines_elided"] == 0

    registry = dr.async_get(hass)
    device = registry.async_get_device({(DOMAIN, f"{entry.entry_id}_kitchen.yaml")})
    assert device is not None
    device_data = await async_get_device_diagnostics(hass, entry, device)
    assert device_data["configuration"] == "kitchen.yaml"
    assert [item["job_id"] for item in device_data["jobs"]] == [job.job_id]
    assert "hunter2-secret" not in repr(device_data)

    hub = registry.async_get_device({(DOMAIN, entry.entry_id)})
    assert hub is not None
    hub_data = await async_get_device_diagnostics(hass, entry, hub)
    assert set(hub_data) == {"queue"}
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_diagnostics_without_secrets_file(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """Without secrets.yaml nothing is redacted and nothing fails."""
    fake.add_config("kitchen", friendly_name="Kitchen")
    await setup_entry(hass, entry)
    data = await async_get_config_entry_diagnostics(hass, entry)
    assert data["configurations"]["kitchen.yaml"]["friendly_name"] == "Kitchen"
    assert REDACTED not in repr(data)
    assert await hass.config_entries.async_unload(entry.entry_id)
