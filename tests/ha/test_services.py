"""Actions: targets, validation (nothing queued on bad input), errors and responses."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import (
    HomeAssistantError,
    ServiceValidationError,
    Unauthorized,
    UnknownUser,
)
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser

from custom_components.esphome_pipeline.const import CONF_CONFIG_DIR, CONF_ESPHOME_COMMAND, DOMAIN
from custom_components.esphome_pipeline.engine.errors import EngineStoppedError
from tests.fakes import FakeEsphome

from .conftest import coordinator_of, engine_of, setup_entry, wait_for_status


async def _call(
    hass: HomeAssistant,
    service: str,
    data: dict[str, Any] | None = None,
    *,
    user: MockUser | None = None,
) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN,
        service,
        data or {},
        blocking=True,
        return_response=True,
        context=None if user is None else Context(user_id=user.id),
    )
    assert isinstance(response, dict)
    return response


@pytest.fixture
async def loaded(hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry) -> MockConfigEntry:
    """A loaded entry with two configurations whose jobs wait until released."""
    fake.add_config("kitchen")
    fake.add_config("garage")
    fake.behave("default", "compile", wait_for_file="go")
    await setup_entry(hass, entry)
    return entry


def _device_id(hass: HomeAssistant, entry: MockConfigEntry, configuration: str) -> str:
    device = dr.async_get(hass).async_get_device({(DOMAIN, f"{entry.entry_id}_{configuration}")})
    assert device is not None
    return device.id


async def _finish(hass: HomeAssistant, entry: MockConfigEntry, fake: FakeEsphome) -> None:
    fake.release("go")
    for job in coordinator_of(entry).jobs():
        await wait_for_status(hass, entry, job.job_id, "completed", "failed", "cancelled")
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_install_by_name_and_device(
    hass: HomeAssistant, loaded: MockConfigEntry, fake: FakeEsphome
) -> None:
    """Install targets names and devices, once each, and answers with the chains."""
    response = await _call(
        hass,
        "install",
        {
            "configuration": "kitchen.yaml",
            "device_id": [
                _device_id(hass, loaded, "garage.yaml"),
                _device_id(hass, loaded, "kitchen.yaml"),
            ],
            "force": True,
        },
    )
    jobs = coordinator_of(loaded).jobs()
    assert response == {
        "jobs": [
            {
                "configuration": name,
                "compile_job_id": jobs[index].job_id,
                "upload_job_id": jobs[index + 1].job_id,
            }
            for index, name in ((0, "kitchen.yaml"), (2, "garage.yaml"))
        ]
    }
    assert jobs[0].force is True
    assert jobs[1].port == "OTA"
    fingerprint = coordinator_of(loaded).nodes["kitchen.yaml"].fingerprint
    assert jobs[0].fingerprint == fingerprint
    assert jobs[1].fingerprint == fingerprint
    await _finish(hass, loaded, fake)


async def test_compile_upload_clean_responses(
    hass: HomeAssistant, loaded: MockConfigEntry, fake: FakeEsphome
) -> None:
    """compile, upload and clean answer with one job per configuration."""
    response = await _call(hass, "compile", {"configuration": ["kitchen.yaml"]})
    job = coordinator_of(loaded).jobs()[-1]
    assert response == {"jobs": [{"configuration": "kitchen.yaml", "job_id": job.job_id}]}
    assert job.job_type == "compile"

    response = await _call(hass, "upload", {"configuration": "garage.yaml", "port": "192.168.1.20"})
    job = coordinator_of(loaded).jobs()[-1]
    assert response == {"jobs": [{"configuration": "garage.yaml", "job_id": job.job_id}]}
    assert job.port == "192.168.1.20"

    response = await _call(hass, "clean", {"configuration": "garage.yaml"})
    job = coordinator_of(loaded).jobs()[-1]
    assert response == {"jobs": [{"configuration": "garage.yaml", "job_id": job.job_id}]}
    assert job.job_type == "clean"
    await _finish(hass, loaded, fake)


async def test_reset_cancel_and_get_jobs(
    hass: HomeAssistant, loaded: MockConfigEntry, fake: FakeEsphome
) -> None:
    """cancel by id and by target, get_jobs filters, reset_build_env answers its job id."""
    install = await _call(hass, "install", {"configuration": ["kitchen.yaml", "garage.yaml"]})
    kitchen, garage = install["jobs"]

    response = await _call(hass, "cancel", {"job_id": kitchen["compile_job_id"]})
    assert sorted(response["cancelled"]) == sorted(
        [kitchen["compile_job_id"], kitchen["upload_job_id"]]
    )
    assert await _call(hass, "cancel", {"job_id": kitchen["compile_job_id"]}) == {"cancelled": []}

    jobs = await _call(hass, "get_jobs", {"status": "cancelled"})
    assert [job["job_id"] for job in jobs["jobs"]] == [
        kitchen["compile_job_id"],
        kitchen["upload_job_id"],
    ]
    assert "output" not in jobs["jobs"][0]
    jobs = await _call(hass, "get_jobs", {"configuration": "garage.yaml"})
    assert [job["job_id"] for job in jobs["jobs"]] == [
        garage["compile_job_id"],
        garage["upload_job_id"],
    ]
    assert len((await _call(hass, "get_jobs"))["jobs"]) == 4

    response = await _call(hass, "cancel", {"device_id": [_device_id(hass, loaded, "garage.yaml")]})
    assert sorted(response["cancelled"]) == sorted(
        [garage["compile_job_id"], garage["upload_job_id"]]
    )

    response = await _call(hass, "reset_build_env")
    reset = coordinator_of(loaded).get_job(response["job_id"])
    assert reset is not None
    assert reset.job_type == "reset_build_env"
    await _finish(hass, loaded, fake)


async def test_cancel_job_and_targets_together(
    hass: HomeAssistant, loaded: MockConfigEntry, fake: FakeEsphome
) -> None:
    """A job id with targets cancels both; a bad target cancels nothing, not even the job."""
    install = await _call(hass, "install", {"configuration": ["kitchen.yaml", "garage.yaml"]})
    kitchen, garage = install["jobs"]
    with pytest.raises(ServiceValidationError) as raised:
        await _call(
            hass, "cancel", {"job_id": kitchen["compile_job_id"], "configuration": "nope.yaml"}
        )
    assert raised.value.translation_key == "unknown_configuration"
    assert not any(job.is_terminal for job in coordinator_of(loaded).jobs())

    response = await _call(
        hass, "cancel", {"job_id": kitchen["compile_job_id"], "configuration": "garage.yaml"}
    )
    assert sorted(response["cancelled"]) == sorted(
        [
            job_id
            for chain in (kitchen, garage)
            for key, job_id in chain.items()
            if key != "configuration"
        ]
    )
    await _finish(hass, loaded, fake)


@pytest.mark.parametrize(
    ("service", "data", "key"),
    [
        ("install", {}, "no_targets"),
        ("install", {"configuration": ["kitchen.yaml", "nope.yaml"]}, "unknown_configuration"),
        ("install", {"device_id": ["not-a-device"]}, "unknown_device"),
        ("install", {"configuration": "kitchen.yaml", "port": "bad port!"}, "invalid_port"),
        ("upload", {"configuration": "kitchen.yaml", "port": "../etc"}, "invalid_port"),
        ("compile", {"configuration": "../x.yaml"}, "unknown_configuration"),
        (
            "clean",
            {"config_entry_id": "missing", "configuration": "kitchen.yaml"},
            "entry_not_found",
        ),
        ("cancel", {"job_id": "nope"}, "unknown_job"),
        ("cancel", {}, "no_targets"),
    ],
)
async def test_invalid_input_queues_nothing(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    fake: FakeEsphome,
    service: str,
    data: dict[str, Any],
    key: str,
) -> None:
    """Each bad input raises a translated ServiceValidationError and queues nothing."""
    with pytest.raises(ServiceValidationError) as raised:
        await _call(hass, service, data)
    assert raised.value.translation_domain == DOMAIN
    assert raised.value.translation_key == key
    assert coordinator_of(loaded).jobs() == []
    await _finish(hass, loaded, fake)


async def test_hub_device_is_not_a_target(
    hass: HomeAssistant, loaded: MockConfigEntry, fake: FakeEsphome
) -> None:
    """The hub device names no configuration."""
    hub = dr.async_get(hass).async_get_device({(DOMAIN, loaded.entry_id)})
    assert hub is not None
    with pytest.raises(ServiceValidationError, match="not a configuration"):
        await _call(hass, "install", {"device_id": hub.id})
    await _finish(hass, loaded, fake)


async def test_engine_failure_is_home_assistant_error(
    hass: HomeAssistant, loaded: MockConfigEntry, fake: FakeEsphome
) -> None:
    """An engine error that is not about the input raises a translated HomeAssistantError."""
    engine = engine_of(loaded)
    with (
        patch.object(engine, "clean", side_effect=EngineStoppedError("stopped")),
        pytest.raises(HomeAssistantError) as raised,
    ):
        await _call(hass, "clean", {"configuration": "kitchen.yaml"})
    assert not isinstance(raised.value, ServiceValidationError)
    assert raised.value.translation_key == "engine_stopped"
    await _finish(hass, loaded, fake)


async def test_host_configuration_ota_goes_to_loopback(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry
) -> None:
    """OTA for a `host:` node uploads to 127.0.0.1; an explicit port is kept."""
    (fake.config_dir / "desk.yaml").write_text("esphome:\n  name: desk\nhost:\n")
    fake.add_config("kitchen")
    fake.behave("default", "compile", wait_for_file="go")
    await setup_entry(hass, entry)
    await _call(hass, "install", {"configuration": ["desk.yaml", "kitchen.yaml"]})
    await _call(hass, "upload", {"configuration": ["desk.yaml"], "port": "10.0.0.2"})
    uploads = {
        (job.configuration, job.port)
        for job in coordinator_of(entry).jobs()
        if job.job_type == "upload"
    }
    assert uploads == {
        ("desk.yaml", "127.0.0.1"),
        ("kitchen.yaml", "OTA"),
        ("desk.yaml", "10.0.0.2"),
    }
    await _finish(hass, entry, fake)


async def test_new_file_is_known_at_once(
    hass: HomeAssistant, loaded: MockConfigEntry, fake: FakeEsphome
) -> None:
    """A file saved just before the call can be targeted (the action rescans first)."""
    fake.add_config("attic")
    response = await _call(hass, "compile", {"configuration": "attic.yaml"})
    assert response["jobs"][0]["configuration"] == "attic.yaml"
    await _finish(hass, loaded, fake)


async def test_entry_selection(
    hass: HomeAssistant,
    fake: FakeEsphome,
    entry: MockConfigEntry,
    tmp_path: Path,
    esphome_command: str,
) -> None:
    """With two entries, config_entry_id (or devices of one entry) picks the entry."""
    assert await async_setup_component(hass, DOMAIN, {})
    with pytest.raises(ServiceValidationError) as raised:
        await _call(hass, "get_jobs")
    assert raised.value.translation_key == "no_loaded_entries"

    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    other_dir = tmp_path / "other"
    other_fake = FakeEsphome(other_dir)
    other_fake.add_config("porch")
    other = MockConfigEntry(
        domain=DOMAIN,
        unique_id=str(other_dir),
        data={CONF_CONFIG_DIR: str(other_dir)},
        options={CONF_ESPHOME_COMMAND: esphome_command},
    )
    await setup_entry(hass, other)

    with pytest.raises(ServiceValidationError) as raised:
        await _call(hass, "get_jobs")
    assert raised.value.translation_key == "entry_required"

    response = await _call(hass, "compile", {"device_id": _device_id(hass, other, "porch.yaml")})
    assert response["jobs"][0]["configuration"] == "porch.yaml"
    response = await _call(
        hass, "compile", {"config_entry_id": entry.entry_id, "configuration": "kitchen.yaml"}
    )
    assert response["jobs"][0]["configuration"] == "kitchen.yaml"
    with pytest.raises(ServiceValidationError) as raised:
        await _call(
            hass,
            "compile",
            {"config_entry_id": entry.entry_id, "device_id": _device_id(hass, other, "porch.yaml")},
        )
    assert raised.value.translation_key == "unknown_device"

    for loaded_entry in (entry, other):
        for job in coordinator_of(loaded_entry).jobs():
            await wait_for_status(hass, loaded_entry, job.job_id, "completed", "failed")
    assert await hass.config_entries.async_unload(other.entry_id)
    with pytest.raises(ServiceValidationError) as raised:
        await _call(hass, "get_jobs", {"config_entry_id": other.entry_id})
    assert raised.value.translation_key == "entry_not_loaded"
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(
    ("service", "data"),
    [
        ("install", {"configuration": "kitchen.yaml"}),
        ("compile", {"configuration": "kitchen.yaml"}),
        ("upload", {"configuration": "kitchen.yaml"}),
        ("clean", {"configuration": "kitchen.yaml"}),
        ("reset_build_env", {}),
        ("cancel", {"configuration": "kitchen.yaml"}),
    ],
)
async def test_changing_actions_are_admin_only(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    fake: FakeEsphome,
    hass_read_only_user: MockUser,
    hass_admin_user: MockUser,
    service: str,
    data: dict[str, Any],
) -> None:
    """A user who is not an administrator changes nothing; an administrator gets the answer."""
    assert not hass_read_only_user.is_admin
    with pytest.raises(Unauthorized):
        await _call(hass, service, data, user=hass_read_only_user)
    assert coordinator_of(loaded).jobs() == []

    response = await _call(hass, service, data, user=hass_admin_user)
    answers = {"reset_build_env": {"job_id"}, "cancel": {"cancelled"}}
    assert set(response) == answers.get(service, {"jobs"})
    await _finish(hass, loaded, fake)


async def test_unknown_user_is_refused(
    hass: HomeAssistant, loaded: MockConfigEntry, fake: FakeEsphome
) -> None:
    """A call in the name of a user Home Assistant does not know is refused."""
    with pytest.raises(UnknownUser):
        await hass.services.async_call(
            DOMAIN,
            "install",
            {"configuration": "kitchen.yaml"},
            blocking=True,
            return_response=True,
            context=Context(user_id="no-such-user"),
        )
    assert coordinator_of(loaded).jobs() == []
    await _finish(hass, loaded, fake)


async def test_get_jobs_is_open_to_every_user(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    fake: FakeEsphome,
    hass_read_only_user: MockUser,
) -> None:
    """get_jobs changes nothing, so any user may read the queue."""
    await _call(hass, "compile", {"configuration": "kitchen.yaml"})
    response = await _call(hass, "get_jobs", user=hass_read_only_user)
    assert [job["configuration"] for job in response["jobs"]] == ["kitchen.yaml"]
    await _finish(hass, loaded, fake)
