"""The entry store: layout, migration hook and normalisation of odd data."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant

from custom_components.esphome_pipeline.engine.persistence import stored_state
from custom_components.esphome_pipeline.store import EntryStore, storage_key


async def test_store_round_trip(hass: HomeAssistant, hass_storage: dict[str, Any]) -> None:
    """Jobs and both fingerprint maps are saved in one versioned document."""
    store = EntryStore(hass, "abc")
    await store.async_load()
    assert await store.load() is None
    await store.save(stored_state([{"job_id": "1"}], {"a.yaml": {"fingerprint": "f0"}}))
    store.set_installed("a.yaml", "f1")
    store.set_auto_installed("a.yaml", "f2")
    await store.async_save()
    stored = hass_storage[storage_key("abc")]
    assert stored["version"] == 1
    assert stored["minor_version"] == 1
    assert stored["data"] == {
        "jobs": [{"job_id": "1"}],
        "builds": {"a.yaml": {"fingerprint": "f0"}},
        "installed": {"a.yaml": "f1"},
        "auto_installed": {"a.yaml": "f2"},
    }
    again = EntryStore(hass, "abc")
    await again.async_load()
    assert await again.load() == stored_state([{"job_id": "1"}], {"a.yaml": {"fingerprint": "f0"}})
    assert again.installed == {"a.yaml": "f1"}
    assert again.auto_installed == {"a.yaml": "f2"}
    await again.async_remove()
    assert storage_key("abc") not in hass_storage


async def test_store_migrates_older_layout(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    """An older minor version goes through the migration hook and is normalised."""
    hass_storage[storage_key("old")] = {
        "version": 1,
        "minor_version": 0,
        "key": storage_key("old"),
        "data": {"jobs": "not a list", "installed": {"a.yaml": 5}},
    }
    store = EntryStore(hass, "old")
    await store.async_load()
    assert await store.load() is None
    assert store.installed == {"a.yaml": "5"}
    assert store.auto_installed == {}
