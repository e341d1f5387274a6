"""The entry store: layout, migration hook, and loading whatever the file holds.

A damaged store never blocks setup: any JSON shape loads, fingerprint maps keep their readable
entries, and the job list goes to the engine as stored (its restore reports what it drops).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from hypothesis import given, settings, strategies as st
import pytest

from custom_components.esphome_pipeline.engine.input_rules import is_configuration_file_name
from custom_components.esphome_pipeline.engine.persistence import stored_state
from custom_components.esphome_pipeline.store import EntryStore, _normalised, storage_key
from tests.json_shapes import any_json


async def test_store_round_trip(hass: HomeAssistant, hass_storage: dict[str, Any]) -> None:
    """Jobs and both fingerprint maps are saved in one versioned document."""
    store = EntryStore(hass, "abc")
    await store.async_load()
    assert await store.load() is None
    await store.save(stored_state([{"job_id": "1"}], {"a.yaml": {"fingerprint": "f0"}}))
    store.set_installed("a.yaml", "f1")
    store.set_auto_installed("a.yaml", "f2")
    store.set_installed_build("a.yaml", {"fingerprint": "f1"})
    await store.async_save()
    stored = hass_storage[storage_key("abc")]
    assert stored["version"] == 1
    assert stored["minor_version"] == 1
    assert stored["data"] == {
        "jobs": [{"job_id": "1"}],
        "builds": {"a.yaml": {"fingerprint": "f0"}},
        "installed": {"a.yaml": "f1"},
        "auto_installed": {"a.yaml": "f2"},
        "installed_builds": {"a.yaml": {"fingerprint": "f1"}},
    }
    again = EntryStore(hass, "abc")
    await again.async_load()
    assert await again.load() == stored_state([{"job_id": "1"}], {"a.yaml": {"fingerprint": "f0"}})
    assert again.installed == {"a.yaml": "f1"}
    assert again.auto_installed == {"a.yaml": "f2"}
    assert again.installed_builds == {"a.yaml": {"fingerprint": "f1"}}
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
        "data": {"jobs": [], "installed": {"a.yaml": 5, "b.yaml": "f1"}},
    }
    store = EntryStore(hass, "old")
    await store.async_load()
    assert await store.load() is None
    assert store.installed == {"b.yaml": "f1"}
    assert store.auto_installed == {}
    # The migrated document was written back in the current layout.
    assert hass_storage[storage_key("old")]["minor_version"] == 1


@pytest.mark.parametrize(
    ("data", "jobs"),
    [
        ([1, 2], None),
        ("a string", None),
        (None, None),
        (42, None),
        ({"jobs": None, "installed": None, "auto_installed": None}, None),
        ({"jobs": "not a list", "installed": [], "auto_installed": "x"}, "not a list"),
        ({"jobs": {"job_id": "x"}}, {"job_id": "x"}),
        ({"jobs": [{"job_id": "x"}, 5]}, [{"job_id": "x"}, 5]),
    ],
)
async def test_store_data_of_any_shape_loads(
    hass: HomeAssistant, hass_storage: dict[str, Any], data: object, jobs: object
) -> None:
    """The document's data may be anything: setup goes on; the jobs go to restore as stored."""
    hass_storage[storage_key("odd")] = {"version": 1, "minor_version": 1, "data": data}
    store = EntryStore(hass, "odd")
    await store.async_load()
    loaded = await store.load()
    assert (None if loaded is None else loaded["jobs"]) == jobs
    assert store.installed == {}
    assert store.auto_installed == {}
    # Until the engine saves its table, a save keeps the stored jobs as they were.
    store.set_installed("a.yaml", "f1")
    await store.async_save()
    saved = hass_storage[storage_key("odd")]["data"]
    assert saved["installed"] == {"a.yaml": "f1"}
    assert saved["jobs"] == ([] if jobs is None else jobs)


async def test_fingerprints_survive_a_partly_bad_map(
    hass: HomeAssistant, hass_storage: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Good entries of a map are kept; bad keys and values are dropped with one warning."""
    hass_storage[storage_key("partial")] = {
        "version": 1,
        "minor_version": 1,
        "data": {
            "jobs": "garbage",
            "installed": {
                "a.yaml": "f1",
                "b.yaml": 5,
                "c.yaml": None,
                "d.yaml": "",
                "../e.yaml": "f2",
                "f.yml": "f3",
            },
            "auto_installed": ["a.yaml"],
        },
    }
    store = EntryStore(hass, "partial")
    with caplog.at_level(logging.WARNING):
        await store.async_load()
    assert store.installed == {"a.yaml": "f1", "f.yml": "f3"}
    assert store.auto_installed == {}
    assert [record.getMessage() for record in caplog.records] == [
        "Parts of the stored state were unreadable: 4 of 6 'installed' entries; "
        "'auto_installed' is not an object"
    ]


@pytest.mark.parametrize(
    ("raw", "installed"),
    [
        # The envelope lost its version: its data is still read.
        ({"data": {"installed": {"a.yaml": "f1"}}}, {"a.yaml": "f1"}),
        # No envelope at all: the document itself.
        ({"installed": {"a.yaml": "f1"}, "jobs": []}, {"a.yaml": "f1"}),
        ([{"installed": {"a.yaml": "f1"}}], {}),
    ],
)
async def test_envelope_store_cannot_read_is_salvaged(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    raw: object,
    installed: dict[str, str],
) -> None:
    """Valid JSON that is not Store's envelope makes Store raise: the raw file is read instead."""
    monkeypatch.setattr(hass.config, "config_dir", str(tmp_path))
    store = EntryStore(hass, "bare")
    path = Path(store._store.path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(raw), encoding="utf-8")
    # The storage mock raises as Store does for an envelope without version or data.
    hass_storage[storage_key("bare")] = raw
    with caplog.at_level(logging.WARNING):
        await store.async_load()
    assert store.installed == installed
    assert "not in Home Assistant's storage layout" in caplog.text


async def test_envelope_salvage_without_a_file(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the raw file cannot be read either, the entry starts empty."""
    monkeypatch.setattr(hass.config, "config_dir", str(tmp_path))
    (tmp_path / ".storage").mkdir()
    store = EntryStore(hass, "gone")
    Path(store._store.path).write_text("{broken", encoding="utf-8")
    hass_storage[storage_key("gone")] = {"data": {}}
    await store.async_load()
    assert await store.load() is None
    assert store.installed == {}


@settings(max_examples=300, deadline=None)
@given(
    data=any_json
    | st.fixed_dictionaries(
        {},
        optional={
            "jobs": any_json,
            "installed": st.dictionaries(st.sampled_from(["a.yaml", "b.yml", ".x.yaml"]), any_json)
            | any_json,
            "auto_installed": any_json,
        },
    )
)
def test_normalisation_of_any_json(data: object) -> None:
    """Any JSON normalises without raising; maps hold only usable entries, all good ones kept."""
    normalised = _normalised(data)
    assert set(normalised) == {"jobs", "builds", "installed", "auto_installed", "installed_builds"}
    assert all(
        is_configuration_file_name(key) and isinstance(value, dict)
        for key, value in normalised["installed_builds"].items()
    )
    for section in ("installed", "auto_installed"):
        kept = normalised[section]
        assert all(
            is_configuration_file_name(key) and isinstance(value, str) and value
            for key, value in kept.items()
        )
        stored = data.get(section) if isinstance(data, dict) else None
        if isinstance(stored, dict):
            good = {
                key: value
                for key, value in stored.items()
                if is_configuration_file_name(key) and isinstance(value, str) and value
            }
            assert kept == good
    stored_jobs = data.get("jobs") if isinstance(data, dict) else None
    assert normalised["jobs"] == ([] if stored_jobs is None else stored_jobs)


def test_installed_builds_keep_only_objects_under_file_names() -> None:
    """A damaged installed-builds section keeps what is usable and says what it dropped."""
    normalised = _normalised(
        {"installed_builds": {"a.yaml": {"fingerprint": "f"}, "../b": {}, "c.yaml": "x"}}
    )
    assert normalised["installed_builds"] == {"a.yaml": {"fingerprint": "f"}}
    assert _normalised({"installed_builds": ["a.yaml"]})["installed_builds"] == {}
