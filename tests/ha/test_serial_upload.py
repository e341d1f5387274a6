"""The `upload` action to a serial bridge flashes through the engine's esptool path."""

from __future__ import annotations

import os

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esphome_pipeline.const import DOMAIN
from tests.engine.test_serial_executor import APP, OTA_DATA, esp32_images
from tests.fakes import FakeEsphome
from tests.fakes.esp_loader import EspLoaderEmulator

from .conftest import setup_entry, wait_for_status


async def test_upload_action_to_socket_port_flashes_with_esptool(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, socket_enabled: None
) -> None:
    """`port: socket://127.0.0.1:<port>`: the emulated ESP32's flash holds the build's image."""
    fake.add_config("garden")
    await setup_entry(hass, entry)
    response = await hass.services.async_call(
        DOMAIN, "compile", {"configuration": "garden.yaml"}, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    compiled = await wait_for_status(
        hass, entry, response["jobs"][0]["job_id"], "completed", "failed"
    )
    assert compiled["status"] == "completed"
    app = b"\xe9" + os.urandom(40_000)
    images = esp32_images(fake, app)
    emulator = EspLoaderEmulator()
    await emulator.start()
    try:
        response = await hass.services.async_call(
            DOMAIN,
            "upload",
            {"configuration": "garden.yaml", "port": emulator.url},
            blocking=True,
            return_response=True,
        )
        assert isinstance(response, dict)
        job = await wait_for_status(
            hass, entry, response["jobs"][0]["job_id"], "completed", "failed", "cancelled"
        )
    finally:
        await emulator.close()
    assert job["status"] == "completed", job["error"]
    assert job["port"] == emulator.url
    # The OTA data image is erased flash (0xFF), which a new device already holds.
    assert emulator.written_at == [offset for offset in images if offset != OTA_DATA]
    assert bytes(emulator.flash[APP : APP + len(app)]) == app
    # One reset: the flash MD5s are compared in the session that writes (no check before).
    assert emulator.boots == 1
    assert fake.flashed() == []  # no `esphome upload` process
    assert await hass.config_entries.async_unload(entry.entry_id)
