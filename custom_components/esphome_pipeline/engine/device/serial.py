"""A wired ESP32: which build its flash holds, flashing only what differs, and proof it booted.

Owns the serial install through esptool's Python API (blocking, so every esptool call runs in
an executor): connect to the port (a device path, or `socket://host:port` / `rfc2217://`),
read the MD5 of each flash region of the build (bootloader, partition table, OTA data,
application, from `flash_layout`), and compare it with the MD5 of the build's image. All equal:
the device runs this build and nothing is written. Otherwise only the differing regions are
written (`write_flash`, compressed, verified by esptool). Then the chip is reset (the RTS line;
on a raw `socket://` port, which carries no control lines, the loader's own reboot command), the
port is reopened with pyserial-asyncio-fast and the boot log is awaited (bounded).

Errors are `SerialDeviceError` with a sentence a person can act on; `DeviceUnpluggedError` when the
device stopped answering mid-flash (its flash is then incomplete).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
import hashlib
import logging
import re
import threading
from typing import Any, Final

from esptool.cmds import (  # type: ignore[import-untyped]
    attach_flash,
    detect_chip,
    run_stub,
    write_flash,
)
from esptool.logger import (  # type: ignore[import-untyped]
    TemplateLogger,
    log as esptool_log,
)
from esptool.util import FatalError  # type: ignore[import-untyped]
import serial  # type: ignore[import-untyped]
import serial_asyncio_fast  # type: ignore[import-untyped]

from .flash_layout import FlashRegion

_LOGGER = logging.getLogger(__name__)

ROM_BAUD: Final = 115200
FLASH_BAUD: Final = 460800
"""The rate `esphome upload` flashes at."""
CONNECT_ATTEMPTS: Final = 3
BOOT_TIMEOUT: Final = 10.0
BOOT_LOG_RE: Final = re.compile(r"rst:0x[0-9a-fA-F]+ \(|\[[A-Z]\]\[app[:\]]")
"""The ROM's reset line, or the first line ESPHome's application logs."""
_SOCKET_PREFIX: Final = "socket://"


class SerialDeviceError(Exception):
    """The serial device could not be checked or flashed; the message says why."""


class DeviceUnpluggedError(SerialDeviceError):
    """The device stopped answering while its flash was being written."""


class BootNotSeenError(SerialDeviceError):
    """The device did not log a boot after it was flashed and reset."""


@dataclass(frozen=True, slots=True)
class RegionState:
    """One flash region: the build's image and what the device holds there."""

    name: str
    offset: int
    size: int
    build_md5: str
    device_md5: str

    @property
    def current(self) -> bool:
        """True when the device's flash holds exactly the build's image."""
        return self.build_md5 == self.device_md5


@dataclass(frozen=True, slots=True)
class FlashCheck:
    """What the device's flash holds compared with a build."""

    chip: str
    regions: tuple[RegionState, ...]

    @property
    def current(self) -> bool:
        """True when every region holds the build's image: the device runs this build."""
        return all(region.current for region in self.regions)

    @property
    def different(self) -> tuple[str, ...]:
        """The names of the regions that differ."""
        return tuple(region.name for region in self.regions if not region.current)


@dataclass(frozen=True, slots=True)
class SerialInstallResult:
    """The outcome of a serial install."""

    check: FlashCheck
    flashed: tuple[str, ...]
    boot_log: tuple[str, ...]

    @property
    def skipped(self) -> bool:
        """True when nothing was written: the device already held the build."""
        return not self.flashed


class SerialFlasher:
    """Checks and flashes the ESP32 behind one serial port."""

    def __init__(
        self,
        port: str,
        *,
        baud: int = FLASH_BAUD,
        connect_attempts: int = CONNECT_ATTEMPTS,
        write_attempts: int | None = None,
        boot_timeout: float = BOOT_TIMEOUT,
        change_baud: bool | None = None,
    ) -> None:
        """Use `port`; `write_attempts` None keeps esptool's reconnect-and-retry on a lost port.

        `change_baud` None switches to `baud` except on a raw `socket://` bridge, which keeps
        its own UART rate whatever the chip does.
        """
        self._port = port
        self._baud = baud
        self._change_baud = (
            change_baud if change_baud is not None else not port.startswith(_SOCKET_PREFIX)
        )
        self._connect_attempts = connect_attempts
        self._write_attempts = write_attempts
        self._boot_timeout = boot_timeout
        _route_esptool_output()

    async def check(self, regions: Sequence[FlashRegion]) -> FlashCheck:
        """Compare the device's flash with the build's regions; write nothing, then reset."""
        check, _flashed = await self._in_executor(regions, write=False)
        return check

    async def install(self, regions: Sequence[FlashRegion]) -> SerialInstallResult:
        """Flash the regions that differ (none when current); after a flash, await the boot."""
        check, flashed = await self._in_executor(regions, write=True)
        boot_log = await self.wait_for_boot() if flashed else ()
        return SerialInstallResult(check=check, flashed=flashed, boot_log=boot_log)

    async def wait_for_boot(self) -> tuple[str, ...]:
        """Reopen the port and return the log lines up to the first boot line (bounded)."""
        lines: list[str] = []
        try:
            async with asyncio.timeout(self._boot_timeout):
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=self._port, baudrate=ROM_BAUD
                )
                try:
                    while line := await reader.readline():
                        lines.append(line.decode(errors="replace").rstrip())
                        if BOOT_LOG_RE.search(lines[-1]):
                            return tuple(lines)
                finally:
                    writer.close()
        except TimeoutError:
            raise BootNotSeenError(
                f"the device on {self._port} was flashed but logged no boot within "
                f"{self._boot_timeout:g} s; check that it is powered and not held in download mode"
            ) from None
        except (OSError, serial.SerialException) as err:
            raise BootNotSeenError(
                f"the device on {self._port} was flashed but its port could not be reopened: {err}"
            ) from err
        raise BootNotSeenError(
            f"the port {self._port} closed before the device logged a boot after flashing"
        )

    async def _in_executor(
        self, regions: Sequence[FlashRegion], *, write: bool
    ) -> tuple[FlashCheck, tuple[str, ...]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._session, list(regions), write)

    def _session(
        self, regions: list[FlashRegion], write: bool
    ) -> tuple[FlashCheck, tuple[str, ...]]:
        """Blocking: connect, compare, flash what differs, reset."""
        try:
            images = [(region, region.image()) for region in regions]
        except OSError as err:
            raise SerialDeviceError(f"cannot read the build's images: {err}") from err
        esp = self._connect()
        try:
            check = self._compare(esp, images)
            flashed: list[str] = []
            if write:
                for region, image in images:
                    state = next(s for s in check.regions if s.name == region.name)
                    if not state.current:
                        esp = self._write(esp, state, image)
                        flashed.append(state.name)
            self._reset(esp)
            return check, tuple(flashed)
        finally:
            esp._port.close()  # esptool offers no public close

    def _connect(self) -> Any:
        try:
            esp = detect_chip(self._port, baud=ROM_BAUD, connect_attempts=self._connect_attempts)
            esp = run_stub(esp)
            if self._change_baud and self._baud != ROM_BAUD:
                esp.change_baud(self._baud)
            attach_flash(esp)
        except (FatalError, OSError, serial.SerialException) as err:
            raise SerialDeviceError(
                f"cannot reach the ESP loader on {self._port}: {_first_line(err)}"
            ) from err
        return esp

    def _compare(self, esp: Any, images: list[tuple[FlashRegion, bytes]]) -> FlashCheck:
        bootloader = int(esp.BOOTLOADER_FLASH_OFFSET)
        states = []
        try:
            for region, image in images:
                offset = region.at(bootloader)
                states.append(
                    RegionState(
                        name=region.name,
                        offset=offset,
                        size=len(image),
                        build_md5=hashlib.md5(image).hexdigest(),  # noqa: S324 - esptool's hash
                        device_md5=str(esp.flash_md5sum(offset, len(image))),
                    )
                )
        except (FatalError, OSError, serial.SerialException) as err:
            raise DeviceUnpluggedError(
                f"the device on {self._port} stopped answering while its flash was read: "
                f"{_first_line(err)}"
            ) from err
        return FlashCheck(chip=str(esp.CHIP_NAME), regions=tuple(states))

    def _write(self, esp: Any, state: RegionState, image: bytes) -> Any:
        if self._write_attempts is not None:
            esp.WRITE_FLASH_ATTEMPTS = self._write_attempts
        try:
            write_flash(esp, [(state.offset, image)], flash_size="keep")
        except (FatalError, OSError, serial.SerialException) as err:
            raise DeviceUnpluggedError(
                f"the device on {self._port} stopped answering while the {state.name} was "
                f"written at {state.offset:#x}: its flash is incomplete; reconnect it and "
                f"install again ({_first_line(err)})"
            ) from err
        return esp

    def _reset(self, esp: Any) -> None:
        """Leave the loader so the application runs."""
        try:
            if self._port.startswith(_SOCKET_PREFIX):
                esp.flash_finish(reboot=True)
            else:
                esp.hard_reset()
        except (FatalError, OSError, serial.SerialException) as err:
            raise SerialDeviceError(
                f"the device on {self._port} could not be reset: {_first_line(err)}"
            ) from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class _LoggingOutput(TemplateLogger):  # type: ignore[misc]
    """esptool's console output, sent to this module's debug log instead of stdout."""

    def print(self, *args: Any, **kwargs: Any) -> None:
        message = " ".join(str(arg) for arg in args).strip()
        if message:
            _LOGGER.debug("esptool: %s", message)

    def note(self, message: str) -> None:
        _LOGGER.debug("esptool note: %s", message)

    def warning(self, message: str) -> None:
        _LOGGER.debug("esptool warning: %s", message)

    def error(self, message: str) -> None:
        _LOGGER.debug("esptool error: %s", message)

    def stage(self, finish: bool = False) -> None:
        """Collapsible stages are a console feature; nothing to do."""

    def progress_bar(self, *args: Any, **kwargs: Any) -> None:
        """Progress bars are a console feature; nothing to do."""

    def set_verbosity(self, verbosity: str) -> None:
        """The log level decides."""


_ROUTE_LOCK = threading.Lock()
_routed = False


def _route_esptool_output() -> None:
    """esptool prints to stdout by default; inside Home Assistant it goes to the log."""
    global _routed  # noqa: PLW0603 - one process-wide switch for esptool's process-wide logger
    with _ROUTE_LOCK:
        if not _routed:
            esptool_log.set_logger(_LoggingOutput())
            _routed = True


__all__ = [
    "BootNotSeenError",
    "DeviceUnpluggedError",
    "FlashCheck",
    "RegionState",
    "SerialDeviceError",
    "SerialFlasher",
    "SerialInstallResult",
]
