"""Readable firmware versions and the release summary (release.py, the update entity)."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esphome_pipeline.engine.fingerprint import BuildInputs
from custom_components.esphome_pipeline.release import (
    NEVER_INSTALLED,
    installed_version,
    latest_version,
    release_summary,
    same_build,
)
from custom_components.esphome_pipeline.static import (
    BRAND_DIR,
    ICON_URL,
    async_register_static_paths,
)
from tests.fakes import FakeEsphome

from .conftest import coordinator_of, setup_entry, wait_for_status

BUILD = {
    "fingerprint": "0123456789ab",
    "esphome_version": "2026.9.0",
    "built_at": "2026-11-27T16:41:35.123+00:00",
    "inputs": {
        "esphome_version": "2026.9.0",
        "files": {"kitchen.yaml": "a", "common.yaml": "b"},
        "secrets": {"wifi_password": "s1"},
    },
}


def test_versions_people_read() -> None:
    """ESPHome version, build time and a short hash; the hash decides sameness."""
    assert latest_version("2026.10.0", "0123456789ab") == "2026.10.0 · 0123456"
    assert installed_version(None, None) == NEVER_INSTALLED
    assert installed_version("0123456789ab", BUILD) == "2026.9.0 · 2026-11-27 16:41 UTC · 0123456"
    assert installed_version("0123456789ab", {"fingerprint": "other"}) == "0123456"
    assert installed_version("0123456789ab", {**BUILD, "built_at": "yesterday"}) == (
        "2026.9.0 · 0123456"
    )
    assert same_build("2026.10.0 · 0123456", "2026.9.0 · 2026-11-27 16:41 UTC · 0123456")
    assert not same_build("2026.10.0 · 0123456", NEVER_INSTALLED)
    assert not same_build("2026.10.0 · 1123456", "0123456")


def test_release_summary_names_what_changed() -> None:
    """Files by name, secrets by key (never a value), the ESPHome version."""
    current = BuildInputs(
        esphome_version="2026.10.0",
        files={"kitchen.yaml": "a2", "common.yaml": "b", "extra.yaml": "c"},
        secrets={"wifi_password": "s2"},
    )
    summary = release_summary(
        fingerprint="ffffffffffff", installed="0123456789ab", build=BUILD, current=current
    )
    assert summary == (
        "Since the installed build: files changed: extra.yaml, kitchen.yaml; "
        "secrets changed: wifi_password; ESPHome 2026.9.0 → 2026.10.0."
    )
    assert "s2" not in summary
    assert (
        release_summary(
            fingerprint="0123456789ab", installed="0123456789ab", build=BUILD, current=None
        )
        is None
    )
    assert release_summary(fingerprint="f", installed=None, build=None, current=None).startswith(
        "Never installed by ESPHome Pipeline"
    )
    unexplained = "The configuration changed since the installed build."
    assert release_summary(fingerprint="f", installed="0", build=None, current=current) == (
        unexplained
    )
    same_inputs = BuildInputs(
        esphome_version="2026.9.0",
        files={"kitchen.yaml": "a", "common.yaml": "b"},
        secrets={"wifi_password": "s1"},
    )
    assert (
        release_summary(fingerprint="f", installed="0123456789ab", build=BUILD, current=same_inputs)
        == unexplained
    )
    many = BuildInputs(
        esphome_version="2026.9.0", files={f"file-{n:03}.yaml": "x" for n in range(60)}, secrets={}
    )
    long = release_summary(fingerprint="f", installed="0123456789ab", build=BUILD, current=many)
    assert long is not None
    assert len(long) == 255
    assert long.endswith("…")


async def test_summary_after_an_edit(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """Install, then change an included file and a secret: the dialog says which."""
    (fake.config_dir / "secrets.yaml").write_text("api_password: one\n", encoding="utf-8")
    (fake.config_dir / "common.yaml").write_text("logger:\n", encoding="utf-8")
    fake.add_config(
        "kitchen",
        extra="packages:\n  common: !include common.yaml\napi:\n  password: !secret api_password\n",
    )
    await setup_entry(hass, entry)
    state = hass.states.get("update.kitchen_firmware")
    assert state.attributes["entity_picture"] == ICON_URL
    await hass.services.async_call(
        "update", "install", {"entity_id": "update.kitchen_firmware"}, blocking=True
    )
    _, upload_job = coordinator_of(entry).jobs()
    await wait_for_status(hass, entry, upload_job.job_id, "completed")
    await hass.async_block_till_done()
    state = hass.states.get("update.kitchen_firmware")
    assert state.state == "off"
    assert state.attributes["installed_version"].startswith("2026.10.0 · ")
    assert " UTC · " in state.attributes["installed_version"]

    (fake.config_dir / "common.yaml").write_text("logger:\n  level: INFO\n", encoding="utf-8")
    (fake.config_dir / "secrets.yaml").write_text("api_password: two\n", encoding="utf-8")
    await coordinator_of(entry).async_rescan()
    await hass.async_block_till_done()
    state = hass.states.get("update.kitchen_firmware")
    assert state.state == "on"
    assert state.attributes["release_summary"] == (
        "Since the installed build: files changed: common.yaml; secrets changed: api_password."
    )
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_icon_is_served_by_the_integration(hass: HomeAssistant) -> None:
    """With the HTTP server loaded, the brand folder is registered once as a static path."""
    registered: list[object] = []

    class FakeHttp:
        async def async_register_static_paths(self, configs: list[object]) -> None:
            registered.extend(configs)

    await async_register_static_paths(hass)  # no HTTP server: nothing to do
    hass.config.components.add("http")
    hass.http = FakeHttp()  # type: ignore[assignment]
    await async_register_static_paths(hass)
    await async_register_static_paths(hass)
    assert len(registered) == 1
    assert registered[0].url_path == "/esphome_pipeline/static"  # type: ignore[attr-defined]
    assert (BRAND_DIR / "icon.png").is_file()
