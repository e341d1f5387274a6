"""A wired ESP32: which build its flash holds, flashing only what differs, and proof it booted.

Owns the serial install through esptool's Python API (blocking, so every esptool call runs in
an executor): connect to the port (a device path, or `socket://host:port` / `rfc2217://`),
read the MD5 of each flash region of the build (bootloader, partition table, OTA data,
application, from `flash_layout`), and compare it with the MD5 of the build's image. All equal:
the device runs this build and nothing is written. Otherwise only the differing regions are
written (`write_flash`, compressed, verified by esptool). Then the chip is reset (the RTS line;
on a raw `socket://` port, which carries no control lines, the loader's own reboot command), the
port is reopened with pyserial-asyncio-fast and the boot log is awaited (bounded).

A `FlashWatcher` hears an install as it happens (esptool's lines, the bytes written so far,
through `esptool_output`) and can stop it between two flash blocks: `FlashStoppedError`.

Errors are `SerialDeviceError` with a sentence a person can act on; `DeviceUnpluggedError` when the
device stopped answering mid-flash (its flash is then incomplete).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
import hashlib
import re
from typing import Any, Final, Protocol

from esptool.cmds import (  # type: ignore[import-untyped]
    attach_flash,
    detect_chip,
    run_stub,
    write_flash,
)
from esptool.util import FatalError  # type: ignore[import-untyped]
import serial  # type: ignore[import-untyped]
import serial_asyncio_fast  # type: ignore[import-untyped]

from .esptool_output import listening, route_esptool_output
from .flash_layout import FlashRegion

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


class FlashStoppedError(Exception):
    """The watcher asked to stop; `incomplete` when a region was being written (flash broken)."""

    def __init__(self, message: str, *, incomplete: bool) -> None:
        """Say where it stopped."""
        super().__init__(message)
        self.incomplete = incomplete


class FlashWatcher(Protocol):
    """Hears an install as it happens; called in the esptool (executor) thread."""

    def line(self, text: str) -> None:
        """A line of esptool's output, or of the install itself."""

    def written(self, done: int, total: int) -> None:
        """`done` of the `total` bytes to write (all regions being written) are written."""

    def stopping(self) -> bool:
        """True when the install should stop at the next flash block."""


class _Unwatched:
    """No one watches: esptool's lines go to the debug log only, nothing stops the install."""

    def line(self, text: str) -> None:
        """Nobody to tell."""

    def written(self, done: int, total: int) -> None:
        """Nobody to tell."""

    def stopping(self) -> bool:
        """Never asked to stop."""
        return False


class _WriteProgress:
    """esptool's per-region progress bars as bytes of the whole install; the stop points."""

    def __init__(self, watcher: FlashWatcher) -> None:
        self._watcher = watcher
        self._total = 0
        self._done = 0
        self._region: RegionState | None = None

    def plan(self, regions: Sequence[RegionState]) -> None:
        """The regions about to be written; stop here when asked (nothing written yet)."""
        self._total = sum(region.size for region in regions)
        if self._watcher.stopping():
            raise FlashStoppedError("stopped before anything was written", incomplete=False)

    def begin(self, region: RegionState) -> None:
        """A region's write starts (the previous one is complete)."""
        self.end()
        self._region = region
        self._stop_point()

    def end(self) -> None:
        """The region being written is complete."""
        if self._region is not None:
            self._done += self._region.size
            self._region = None
            self._watcher.written(self._done, self._total)

    def _stop_point(self) -> None:
        region = self._region
        if region is not None and self._watcher.stopping():
            raise FlashStoppedError(
                f"stopped while the {region.name} was written at {region.offset:#x}: the "
                "device's flash is incomplete; install again",
                incomplete=True,
            )

    def line(self, text: str) -> None:
        """esptool printed a line."""
        self._watcher.line(text)

    def bar(self, current: int, total: int, label: str) -> None:
        """esptool wrote another block of the region (its bar counts the bytes it sent)."""
        if self._region is not None and total > 0:
            share = min(current, total) * self._region.size // total
            self._watcher.written(self._done + share, self._total)
        self._stop_point()


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
        route_esptool_output()

    @property
    def port(self) -> str:
        """The port this flasher opens."""
        return self._port

    @property
    def boot_timeout(self) -> float:
        """Seconds `wait_for_boot` waits for the boot log."""
        return self._boot_timeout

    async def check(self, regions: Sequence[FlashRegion]) -> FlashCheck:
        """Compare the device's flash with the build's regions; write nothing, then reset."""
        check, _flashed = await self._in_executor(regions, write=False)
        return check

    async def install(self, regions: Sequence[FlashRegion]) -> SerialInstallResult:
        """Flash the regions that differ (none when current); after a flash, await the boot."""
        check, flashed = await self.flash(regions)
        boot_log = await self.wait_for_boot() if flashed else ()
        return SerialInstallResult(check=check, flashed=flashed, boot_log=boot_log)

    async def flash(
        self,
        regions: Sequence[FlashRegion],
        *,
        watcher: FlashWatcher | None = None,
        force: bool = False,
    ) -> tuple[FlashCheck, tuple[str, ...]]:
        """Write the regions that differ (every region when `force`), then reset the chip.

        Returns the comparison and the names of the regions written. `watcher` hears it as it
        happens and may stop it (FlashStoppedError). The boot is not awaited (`wait_for_boot`).
        """
        return await self._in_executor(regions, write=True, watcher=watcher, force=force)

    async def wait_for_boot(self) -> tuple[str, ...]:
        """Reopen the port and return the log lines up to the first boot line (bounded)."""
        lines: list[str] = []
        try:
            async with asyncio.timeout(self._boot_timeout):
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=self._port, baudrate=ROM_BAUD
                )
                try:
                    while True:
                        try:
                            line = await reader.readline()
                        except ValueError:  # longer than the reader's limit: noise, dropped
                            continue
                        if not line:
                            break
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
        self,
        regions: Sequence[FlashRegion],
        *,
        write: bool,
        watcher: FlashWatcher | None = None,
        force: bool = False,
    ) -> tuple[FlashCheck, tuple[str, ...]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._session, list(regions), write, watcher, force)

    def _session(
        self,
        regions: list[FlashRegion],
        write: bool,
        watcher: FlashWatcher | None,
        force: bool,
    ) -> tuple[FlashCheck, tuple[str, ...]]:
        """Blocking: connect, compare, flash what differs (or all when `force`), reset."""
        try:
            images = [(region, region.image()) for region in regions]
        except OSError as err:
            raise SerialDeviceError(f"cannot read the build's images: {err}") from err
        progress = _WriteProgress(watcher or _Unwatched())
        with listening(progress):
            esp = self._connect()
            try:
                check = self._compare(esp, images)
                todo = [
                    (state, image)
                    for state, (_region, image) in zip(check.regions, images, strict=True)
                    if write and (force or not state.current)
                ]
                try:
                    progress.plan([state for state, _ in todo])
                except FlashStoppedError:
                    self._reset(esp)  # nothing written: the device runs its firmware again
                    raise
                for state, image in todo:
                    progress.begin(state)
                    esp = self._write(esp, state, image)
                    progress.end()
                self._reset(esp)
                return check, tuple(state.name for state, _ in todo)
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


__all__ = [
    "BootNotSeenError",
    "DeviceUnpluggedError",
    "FlashCheck",
    "FlashStoppedError",
    "FlashWatcher",
    "RegionState",
    "SerialDeviceError",
    "SerialFlasher",
    "SerialInstallResult",
]
