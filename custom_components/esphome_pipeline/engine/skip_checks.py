"""The two skip checks the dispatcher runs between claiming a job and running it.

Owns the decisions "this compile is not needed" and "this device already runs this build",
the engine's `SkipCheck`s (`skip.py`): `async def __call__(job, build) -> SkipReason | None`,
where `build` is the configuration's last successful `BuildRecord`. Each check answers None (run the
job) whenever it is unsure: a false skip is a bug, a false run only costs time.

- `BuildIsCurrent` (compile jobs): the job's fingerprint equals the last build's, the
  configuration's fingerprint read now still equals it and can vouch for every input, and the
  build's outputs (firmware image and `build_info.json`) are in place and not written since
  that build finished -> `SkipReason.UNCHANGED`.
- `DeviceRunsBuild` (uploads over the network: `OTA`, a host or IP): the device's native API
  answer (name, ESPHome version, compilation time) equals `build_info.json` ->
  `SkipReason.DEVICE_CURRENT`. Serial targets are not asked here: the serial upload
  (`serial_executor.py`) compares the flash MD5 of every region in the session that writes
  what differs, and ends `skipped: device_current` itself when nothing does. A check here
  first would reset the chip twice per upload (every serial connection resets it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
import logging
from pathlib import Path

from .device.build_records import (
    ApiEndpoint,
    BuildIdentity,
    read_api_endpoint,
    read_build_identity,
)
from .device.native_api import DeviceTruth, device_truth
from .fingerprint import Fingerprinter, NodeInfo
from .models import Job, JobType, SkipReason
from .skip import BuildRecord

_LOGGER = logging.getLogger(__name__)

SERIAL_PREFIXES = ("/", "COM", "socket://", "rfc2217://")
"""Upload targets reached over a serial line (ESPHome's rule, plus pyserial's URLs)."""
NETWORK_DEFAULT = "OTA"

NodeReader = Callable[[str], Awaitable[NodeInfo | None]]
DeviceAsker = Callable[[ApiEndpoint, BuildIdentity], Awaitable[DeviceTruth]]
VerdictListener = Callable[[Job, str], None]


def is_serial_port(port: str | None) -> bool:
    """True for an upload target on a serial line."""
    return port is not None and port.startswith(SERIAL_PREFIXES)


def fingerprint_reader(fingerprinter: Fingerprinter) -> NodeReader:
    """Read a configuration's current fingerprint in an executor (stat calls when warm)."""

    async def read(configuration: str) -> NodeInfo | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, fingerprinter.read_node, configuration)

    return read


class BuildIsCurrent:
    """Skip a compile whose inputs and outputs are those of the last successful build."""

    def __init__(self, data_dir: Path, read_node: NodeReader) -> None:
        """Use ESPHome's data folder and a reader of current fingerprints."""
        self._data_dir = data_dir
        self._read_node = read_node

    async def __call__(self, job: Job, build: BuildRecord | None) -> SkipReason | None:
        """`SkipReason.UNCHANGED` when nothing changed since `build`, else None."""
        if (
            job.job_type is not JobType.COMPILE
            or build is None
            or job.fingerprint is None
            or build.fingerprint != job.fingerprint
        ):
            return None
        try:
            node = await self._read_node(job.configuration)
        except Exception:
            _LOGGER.debug(
                "No skip for %s: fingerprint unreadable", job.configuration, exc_info=True
            )
            return None
        if node is None or node.fingerprint != job.fingerprint or node.unverifiable:
            return None
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self._outputs_unchanged, job.configuration, build):
            return None
        return SkipReason.UNCHANGED

    def _outputs_unchanged(self, configuration: str, build: BuildRecord) -> bool:
        """Blocking: the firmware and build_info.json exist and predate the build's end."""
        identity = read_build_identity(self._data_dir, configuration)
        if identity is None or identity.firmware is None:
            return False
        try:
            finished = datetime.fromisoformat(build.finished_at).timestamp()
            newest = max(identity.firmware.stat().st_mtime, identity.build_info.stat().st_mtime)
        except (OSError, ValueError):
            return False
        return newest <= finished


class DeviceRunsBuild:
    """Skip an upload when the device already runs the build it would receive."""

    def __init__(
        self,
        data_dir: Path,
        *,
        ask_device: DeviceAsker = device_truth,
        on_verdict: VerdictListener | None = None,
    ) -> None:
        """Use ESPHome's data folder; `on_verdict` hears the sentence behind each decision."""
        self._data_dir = data_dir
        self._ask_device = ask_device
        self._on_verdict = on_verdict

    async def __call__(self, job: Job, build: BuildRecord | None) -> SkipReason | None:
        """`SkipReason.DEVICE_CURRENT` when the device runs the build, else None."""
        if job.job_type is not JobType.UPLOAD or is_serial_port(job.port):
            return None
        loop = asyncio.get_running_loop()
        identity = await loop.run_in_executor(
            None, read_build_identity, self._data_dir, job.configuration
        )
        if identity is None:
            return None
        current, summary = await self._network(job, identity)
        _LOGGER.debug("%s (%s): %s", job.configuration, job.port, summary)
        if self._on_verdict is not None:
            self._on_verdict(job, summary)
        return SkipReason.DEVICE_CURRENT if current else None

    async def _network(self, job: Job, identity: BuildIdentity) -> tuple[bool, str]:
        address = None if job.port in (None, NETWORK_DEFAULT) else job.port
        loop = asyncio.get_running_loop()
        endpoint = await loop.run_in_executor(
            None,
            partial(
                read_api_endpoint, self._data_dir, job.configuration, identity.name, address=address
            ),
        )
        if endpoint is None:
            return False, "the configuration has no native API: the device cannot be asked"
        truth = await self._ask_device(endpoint, identity)
        return truth.runs_build, truth.summary
