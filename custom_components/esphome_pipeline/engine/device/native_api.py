"""What a networked device runs, asked over its native API and compared with a build.

Owns one short native API session (aioesphomeapi's `APIClient`, the client Home Assistant
itself uses; the configuration's encryption key when it has one; a short timeout) that reads
`DeviceInfo`: name, ESPHome version and `compilation_time`. Since ESPHome 2026.1 a device
reports the build time of its image (`build_time_str` in the build's `build_info.json`) as
`compilation_time`, so name, version and that time together say which build it runs.

The verdict is one of: the device runs this build; it runs another build (and which: its
version and build time against the build's); it is unreachable (and why). A device that
answers with another name is another device: reported as another build, never as current.
`wait_for_build` is the proof after an upload: it asks again (bounded) until the device
answers with the new build.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
import logging
from typing import Any, Final

from aioesphomeapi.client import APIClient
from aioesphomeapi.core import APIConnectionError

from .build_records import ApiEndpoint, BuildIdentity

_LOGGER = logging.getLogger(__name__)

QUERY_TIMEOUT: Final = 5.0
"""Seconds one question to a device may take (connect, handshake, DeviceInfo)."""
PROOF_TIMEOUT: Final = 60.0
"""Seconds a device gets to come back with a new build after an upload."""
PROOF_INTERVAL: Final = 1.0
"""Seconds between two questions while waiting for it."""
CLIENT_INFO: Final = "ESPHome Pipeline"
_HEX: Final = frozenset("0123456789abcdef")


class Verdict(StrEnum):
    """What the device runs, compared with a build."""

    RUNS_THIS_BUILD = "runs_this_build"
    RUNS_OTHER_BUILD = "runs_other_build"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceReport:
    """What a device says about itself."""

    name: str
    esphome_version: str
    compilation_time: str
    project_name: str = ""
    project_version: str = ""

    def describe(self) -> str:
        """`ESPHome 2026.10.0, built 2026-11-27 16:14:49 +0000` for people."""
        return f"ESPHome {self.esphome_version}, built {self.compilation_time}"


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceTruth:
    """The verdict, what the device said (when it answered) and a sentence for people."""

    verdict: Verdict
    summary: str
    device: DeviceReport | None = None

    @property
    def runs_build(self) -> bool:
        """True when the device runs exactly the build it was compared with."""
        return self.verdict is Verdict.RUNS_THIS_BUILD


class DeviceUnreachableError(Exception):
    """The device did not answer on its native API; the message says why."""


class NewBuildNotSeenError(Exception):
    """After an upload, the device did not come back running the new build in time."""

    def __init__(self, message: str, last: DeviceTruth) -> None:
        """Keep the last answer (or silence) next to the message."""
        super().__init__(message)
        self.last = last


async def query_device(
    endpoint: ApiEndpoint, *, wait_seconds: float = QUERY_TIMEOUT, zeroconf: Any = None
) -> DeviceReport:
    """Ask the device at `endpoint` what it runs. Raises DeviceUnreachableError.

    `zeroconf` is the shared zeroconf instance for `.local` names (Home Assistant's own).
    """
    client = APIClient(
        endpoint.host,
        endpoint.port,
        None,
        noise_psk=endpoint.noise_psk,
        zeroconf_instance=zeroconf,
        client_info=CLIENT_INFO,
    )
    target = f"{endpoint.host}:{endpoint.port}"
    deadline = asyncio.timeout(wait_seconds)
    try:
        async with deadline:
            await client.connect(login=False)
            info = await client.device_info()
    except (TimeoutError, APIConnectionError, OSError) as err:
        # aioesphomeapi turns the timeout's cancellation into its own error: ask the deadline.
        if deadline.expired():
            raise DeviceUnreachableError(
                f"{target} did not answer within {wait_seconds:g} s"
            ) from None
        raise DeviceUnreachableError(f"{target}: {err or type(err).__name__}") from err
    finally:
        try:
            await client.disconnect(force=True)
        except (APIConnectionError, OSError) as err:  # pragma: no cover - best effort
            _LOGGER.debug("Disconnect from %s failed: %s", target, err)
    return DeviceReport(
        name=info.name,
        esphome_version=info.esphome_version,
        compilation_time=info.compilation_time.strip(),
        project_name=info.project_name,
        project_version=info.project_version,
    )


def compare(device: DeviceReport, build: BuildIdentity) -> DeviceTruth:
    """Whether `device` runs `build`, with the difference spelled out when it does not."""
    if not _same_node(device.name, build.name):
        return DeviceTruth(
            verdict=Verdict.RUNS_OTHER_BUILD,
            summary=f"the device answering is {device.name!r}, not {build.name!r}",
            device=device,
        )
    same_version = device.esphome_version == build.esphome_version
    same_time = build.build_time_str is not None and device.compilation_time == (
        build.build_time_str.strip()
    )
    if same_version and same_time:
        return DeviceTruth(
            verdict=Verdict.RUNS_THIS_BUILD,
            summary=f"the device runs this build ({build.describe()})",
            device=device,
        )
    return DeviceTruth(
        verdict=Verdict.RUNS_OTHER_BUILD,
        summary=f"the device runs another build: {device.describe()} "
        f"(this build: {build.describe()})",
        device=device,
    )


def _same_node(device_name: str, build_name: str) -> bool:
    """The device's name is the build's, or it with the MAC suffix `name_add_mac_suffix` adds."""
    if device_name == build_name:
        return True
    prefix, _, suffix = device_name.rpartition("-")
    return prefix == build_name and len(suffix) == 6 and all(c in _HEX for c in suffix.lower())


async def device_truth(
    endpoint: ApiEndpoint,
    build: BuildIdentity,
    *,
    wait_seconds: float = QUERY_TIMEOUT,
    zeroconf: Any = None,
) -> DeviceTruth:
    """Ask the device and compare its answer with `build`."""
    try:
        device = await query_device(endpoint, wait_seconds=wait_seconds, zeroconf=zeroconf)
    except DeviceUnreachableError as err:
        return DeviceTruth(verdict=Verdict.UNREACHABLE, summary=f"the device is unreachable: {err}")
    return compare(device, build)


async def wait_for_build(
    endpoint: ApiEndpoint,
    build: BuildIdentity,
    *,
    within: float = PROOF_TIMEOUT,
    interval: float = PROOF_INTERVAL,
    zeroconf: Any = None,
) -> DeviceTruth:
    """Ask the device until it runs `build` (the proof after an upload), at most `within` s.

    Raises NewBuildNotSeenError ("the device did not come back with the new firmware") with
    the last answer when it does not.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while True:
        remaining = max(end - loop.time(), 0.1)
        truth = await device_truth(
            endpoint, build, wait_seconds=min(QUERY_TIMEOUT, remaining), zeroconf=zeroconf
        )
        if truth.runs_build:
            return truth
        if loop.time() + interval >= end:
            raise NewBuildNotSeenError(
                f"the device did not come back with the new firmware within {within:g} s "
                f"({truth.summary})",
                truth,
            )
        await asyncio.sleep(interval)
