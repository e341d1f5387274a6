"""The warm path for one entry: the skip checks its engine runs before each job.

Owns what the engine's `skip_checks` are for an entry's folder (`skip_checks` below):

- "the build is current" (`BuildIsCurrent`: a compile ends `skipped: unchanged` and starts no
  process) reads fingerprints through the entry's one `Fingerprinter`, the same one the folder
  scan labels installs with, so the label on a job and the check agree and a warm check costs
  only `stat` calls;
- "the device already runs it" (`DeviceRunsBuild`: an upload ends `skipped: device_current`)
  asks a networked device over its native API (`device_asker`: Home Assistant's zeroconf for
  `.local` names); a serial ESP32 upload compares the flash MD5s itself, in the session
  that writes (`engine/serial_executor.py`).

ESPHome keeps its builds in the folder's data folder (`<config_dir>/.esphome`), where the
checks read the build records. A job queued with `force` is never skipped (the dispatcher's
rule); a check that is unsure lets the job run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from homeassistant.components import zeroconf
from homeassistant.core import HomeAssistant

from .engine.device.build_records import ApiEndpoint, BuildIdentity
from .engine.device.native_api import DeviceTruth, device_truth
from .engine.device.presence import device_answers
from .engine.fingerprint import Fingerprinter
from .engine.fingerprint_inputs import ESPHOME_DATA_DIR
from .engine.skip import SkipCheck
from .engine.skip_checks import (
    BuildIsCurrent,
    DeviceAsker,
    DeviceRunsBuild,
    fingerprint_reader,
)
from .engine.upload_proof import NetworkUploads

MDNS_SUFFIX: Final = ".local"


def esphome_data_dir(config_dir: Path) -> Path:
    """ESPHome's data folder of a configuration folder (builds and their records)."""
    return config_dir / ESPHOME_DATA_DIR


async def ask_device(
    hass: HomeAssistant,
    endpoint: ApiEndpoint,
    build: BuildIdentity,
    wait_seconds: float | None = None,
) -> DeviceTruth:
    """Ask the device what it runs; `.local` names resolve through Home Assistant's zeroconf."""
    shared = None
    if endpoint.host.endswith(MDNS_SUFFIX):
        # One zeroconf for the whole of Home Assistant: never a second responder.
        shared = await zeroconf.async_get_async_instance(hass)
    if wait_seconds is None:
        return await device_truth(endpoint, build, zeroconf=shared)
    return await device_truth(endpoint, build, wait_seconds=wait_seconds, zeroconf=shared)


def device_asker(hass: HomeAssistant) -> DeviceAsker:
    """The skip check's question: does the device run this build?"""

    async def ask(endpoint: ApiEndpoint, build: BuildIdentity) -> DeviceTruth:
        return await ask_device(hass, endpoint, build)

    return ask


def network_uploads(hass: HomeAssistant, proof_timeout: float) -> NetworkUploads:
    """How the entry's network uploads reach their devices: the same question as the skip
    check (so both see a device alike) for the proof, a TCP probe for presence."""

    async def ask(endpoint: ApiEndpoint, build: BuildIdentity, within: float) -> DeviceTruth:
        return await ask_device(hass, endpoint, build, within)

    async def present(endpoint: ApiEndpoint) -> bool:
        return await device_answers(endpoint)

    return NetworkUploads(proof_timeout=proof_timeout, ask=ask, presence=present)


def skip_checks(
    config_dir: Path, fingerprinter: Fingerprinter, ask_device: DeviceAsker
) -> tuple[SkipCheck, ...]:
    """The checks an entry's engine runs: the build is current, the device runs it."""
    data_dir = esphome_data_dir(config_dir)
    return (
        BuildIsCurrent(data_dir, fingerprint_reader(fingerprinter)),
        DeviceRunsBuild(data_dir, ask_device=ask_device),
    )
