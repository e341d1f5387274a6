"""The warm path wired into an entry: a second install skips what is already done.

The folder's builds come from the fake ESPHome CLI (real processes); the device is a double:
its native API answer is injected where the entry's skip checks ask it (`device_truth`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import time
from typing import Any
from unittest.mock import AsyncMock, patch

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esphome_pipeline.const import DOMAIN
from custom_components.esphome_pipeline.engine.device.build_records import (
    ApiEndpoint,
    BuildIdentity,
)
from custom_components.esphome_pipeline.engine.device.native_api import DeviceTruth, Verdict
from custom_components.esphome_pipeline.skip_wiring import device_asker
from tests.fakes import FakeEsphome

from .conftest import setup_entry, wait_for_status

TERMINAL = ("completed", "failed", "cancelled")
ADDRESS = "192.0.2.7"


async def _install(hass: HomeAssistant, **data: Any) -> tuple[str, str]:
    response = await hass.services.async_call(
        DOMAIN,
        "install",
        {"configuration": "kitchen.yaml", **data},
        blocking=True,
        return_response=True,
    )
    assert isinstance(response, dict)
    [chain] = response["jobs"]
    return chain["compile_job_id"], chain["upload_job_id"]


async def _install_done(
    hass: HomeAssistant, entry: MockConfigEntry, **data: Any
) -> tuple[dict[str, object], dict[str, object]]:
    compile_id, upload_id = await _install(hass, **data)
    compiled = await wait_for_status(hass, entry, compile_id, *TERMINAL)
    uploaded = await wait_for_status(hass, entry, upload_id, *TERMINAL)
    return compiled, uploaded


def _starts(fake: FakeEsphome, subcommand: str) -> int:
    return sum(1 for call in fake.calls("start") if call["subcommand"] == subcommand)


def _with_native_api(fake: FakeEsphome) -> None:
    """What `esphome compile` leaves for a configuration with `api:` (its validated form)."""
    validated = fake.config_dir / ".esphome" / "storage" / "kitchen.yaml.validated.json"
    validated.parent.mkdir(parents=True, exist_ok=True)
    config = {"api": {"port": 6053}, "wifi": {"use_address": ADDRESS}}
    validated.write_text(json.dumps({"config": config}), encoding="utf-8")


def _truth(verdict: Verdict) -> DeviceTruth:
    return DeviceTruth(verdict=verdict, summary=f"the device says {verdict}")


@pytest.fixture
def device() -> Any:
    """The device double: answers that it runs the build unless told otherwise."""
    with (
        patch(
            "custom_components.esphome_pipeline.skip_wiring.device_truth",
            AsyncMock(return_value=_truth(Verdict.RUNS_THIS_BUILD)),
        ) as asked,
        # It is there: uploads are not held "device offline" (upload_proof.py).
        patch(
            "custom_components.esphome_pipeline.skip_wiring.device_answers",
            AsyncMock(return_value=True),
        ),
    ):
        yield asked


async def test_second_install_skips_the_compile_and_the_upload(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, device: AsyncMock
) -> None:
    """Nothing changed and the device runs the build: both complete skipped, no process."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    compiled, uploaded = await _install_done(hass, entry)
    assert (compiled["skipped"], uploaded["status"]) == (None, "completed")
    _with_native_api(fake)

    compiled, uploaded = await _install_done(hass, entry)
    assert (compiled["status"], compiled["skipped"]) == ("completed", "unchanged")
    assert (uploaded["status"], uploaded["skipped"]) == ("completed", "device_current")
    assert (_starts(fake, "compile"), _starts(fake, "upload")) == (1, 1)
    assert len(fake.flashed()) == 1
    [(endpoint, build), _] = device.await_args
    assert endpoint == ApiEndpoint(host=ADDRESS, port=6053)
    assert build.name == "kitchen"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_force_runs_both_jobs(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, device: AsyncMock
) -> None:
    """`force: true` reaches both jobs of the install: built and flashed; the device is asked
    only afterwards, for the proof that it took the new build."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    await _install_done(hass, entry)
    _with_native_api(fake)

    compiled, uploaded = await _install_done(hass, entry, force=True)
    assert (compiled["status"], compiled["skipped"]) == ("completed", None)
    assert (uploaded["status"], uploaded["skipped"]) == ("completed", None)
    assert (_starts(fake, "compile"), _starts(fake, "upload")) == (2, 2)
    assert len(fake.flashed()) == 2
    proofs = ["wait_seconds" in call.kwargs for call in device.await_args_list]
    assert proofs == [True]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_changed_configuration_and_other_build_run(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, device: AsyncMock
) -> None:
    """A changed file is compiled; a device running another build is flashed."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    await _install_done(hass, entry)
    _with_native_api(fake)
    fake.add_config("kitchen", friendly_name="Kitchen")
    # Another build before the flash (the skip check), this one after it (the proof).
    device.side_effect = [_truth(Verdict.RUNS_OTHER_BUILD), _truth(Verdict.RUNS_THIS_BUILD)]

    compiled, uploaded = await _install_done(hass, entry)
    assert (compiled["status"], compiled["skipped"]) == ("completed", None)
    assert (uploaded["status"], uploaded["skipped"]) == ("completed", None)
    assert (_starts(fake, "compile"), _starts(fake, "upload")) == (2, 2)
    assert device.await_count == 2
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_upload_action_skips_unless_forced(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, device: AsyncMock
) -> None:
    """The upload action asks the device too; its `force` uploads anyway."""
    fake.add_config("kitchen")
    await setup_entry(hass, entry)
    await _install_done(hass, entry)
    _with_native_api(fake)
    outcomes = []
    for force in (False, True):
        response = await hass.services.async_call(
            DOMAIN,
            "upload",
            {"configuration": "kitchen.yaml", "force": force},
            blocking=True,
            return_response=True,
        )
        assert isinstance(response, dict)
        [job] = response["jobs"]
        done = await wait_for_status(hass, entry, job["job_id"], *TERMINAL)
        outcomes.append((done["status"], done["skipped"]))
    assert outcomes == [("completed", "device_current"), ("completed", None)]
    assert len(fake.flashed()) == 2
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_the_folder_scan_keeps_its_fingerprint_caches(
    hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry, config_dir: Path
) -> None:
    """The folder scan keeps the fingerprint caches on disk for the next start."""
    fake.add_config("kitchen")
    # Only a file quiet for a while has a stamp the cache trusts.
    old = time.time() - 60
    os.utime(config_dir / "kitchen.yaml", (old, old))
    await setup_entry(hass, entry)
    cache = config_dir / ".esphome" / "esphome_pipeline" / "fingerprint-cache.json"
    assert await hass.async_add_executor_job(cache.is_file)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_device_asker_uses_home_assistant_zeroconf_for_local_names(
    hass: HomeAssistant,
) -> None:
    """`.local` names resolve through Home Assistant's one zeroconf; addresses need none."""
    build = BuildIdentity(
        name="kitchen",
        esphome_version="2026.10.0",
        build_time_str=None,
        config_hash=None,
        firmware=None,
        build_info=Path("build_info.json"),
    )
    shared = object()
    with (
        patch(
            "custom_components.esphome_pipeline.skip_wiring.device_truth",
            AsyncMock(return_value=_truth(Verdict.UNREACHABLE)),
        ) as truth,
        patch(
            "custom_components.esphome_pipeline.skip_wiring.zeroconf.async_get_async_instance",
            AsyncMock(return_value=shared),
        ),
    ):
        ask = device_asker(hass)
        await ask(ApiEndpoint(host="kitchen.local"), build)
        await ask(ApiEndpoint(host=ADDRESS), build)
    assert [call.kwargs["zeroconf"] for call in truth.await_args_list] == [shared, None]
