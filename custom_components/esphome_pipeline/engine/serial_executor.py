"""Serial uploads of ESP32 builds, done by the engine itself through esptool.

Owns `SerialUploadExecutor`, the upload lane's `Executor`: an upload job whose port is a serial
line (`is_serial_port`: a device path, `socket://`, `rfc2217://`) and whose configuration was
last built for the ESP32 family is flashed here with `device.serial.SerialFlasher`; every other
job goes to the executor it wraps (the ESPHome CLI: `esphome upload --device`, which is also
what ESP8266 and other builds over serial keep using).

Why not the CLI for these: ESPHome treats `socket://` ports as network targets (OTA), always
writes every image, and cannot tell "already on the device" from "written". Here the device's
flash MD5 of each region (bootloader, partition table, OTA data, application) is compared with
the build's image and only the differing regions are written; esptool's output and progress go
into the job's log and progress (progress never goes down; a redraw line per percent, so the
log stays small); then the port is reopened and the boot log awaited (bounded) and logged.

A cancel stops the flash between two blocks (the job ends cancelled and its log says the flash
is incomplete). esptool is blocking: it runs in an executor thread (`SerialFlasher`); this
module only waits on it, and on a stop request while the boot log is awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Final

from .device.build_records import read_build_target
from .device.flash_layout import FlashLayoutError, FlashRegion, esp32_flash_layout
from .device.serial import (
    FlashCheck,
    FlashStoppedError,
    SerialDeviceError,
    SerialFlasher,
)
from .executors import Executor, JobSink
from .fingerprint_inputs import ESPHOME_DATA_DIR
from .lanes import Outcome, RunningJob
from .models import Job, JobStatus, JobType, SkipReason
from .output import MAX_LINE_LENGTH, clean_text
from .skip_checks import is_serial_port

"""ESPHome's data folder under the configuration folder (builds, StorageJSON)."""
STOP_POLL: Final = 0.1
"""Seconds between looks for a stop request while the boot log is awaited (no process to end)."""

SerialFactory = Callable[[str], SerialFlasher]


class SerialUploadExecutor:
    """Flashes ESP32 builds over serial with esptool; hands every other job to `fallback`."""

    def __init__(
        self,
        fallback: Executor,
        *,
        data_dir: Path,
        flasher: SerialFactory | None = None,
        stop_poll: float = STOP_POLL,
    ) -> None:
        """Read builds under ESPHome's `data_dir`; `flasher` makes the port's SerialFlasher.

        None: this module's `SerialFlasher`, looked up when a job runs (tests replace it).
        """
        self._fallback = fallback
        self._data_dir = data_dir
        self._flasher = flasher
        self._stop_poll = stop_poll

    async def run(self, running: RunningJob, sink: JobSink) -> Outcome:
        """Flash a serial ESP32 upload here; run anything else on the wrapped executor."""
        job = running.job
        if job.job_type is not JobType.UPLOAD or not is_serial_port(job.port):
            return await self._fallback.run(running, sink)
        loop = asyncio.get_running_loop()
        regions = await loop.run_in_executor(None, self._esp32_regions, job.configuration)
        if regions is None:
            return await self._fallback.run(running, sink)
        # No process: a stop request is noticed between flash blocks (and during the boot wait).
        running.spawned(None)
        if running.stop_requested():
            return running.stopped_outcome()
        if isinstance(regions, FlashLayoutError):
            return _failed(job, sink, str(regions))
        flasher = (self._flasher or SerialFlasher)(job.port or "")
        return await self._flash(running, sink, flasher, regions)

    def _esp32_regions(
        self, configuration: str
    ) -> tuple[FlashRegion, ...] | FlashLayoutError | None:
        """Blocking: the ESP32 build's regions, why there are none, or None (not an ESP32 build)."""
        target = read_build_target(self._data_dir, configuration)
        if target is None or not target.is_esp32:
            return None
        try:
            return esp32_flash_layout(self._data_dir, target.name)
        except FlashLayoutError as err:
            return err

    async def _flash(
        self,
        running: RunningJob,
        sink: JobSink,
        flasher: SerialFlasher,
        regions: tuple[FlashRegion, ...],
    ) -> Outcome:
        job = running.job
        names = ", ".join(region.name for region in regions)
        sink.output(job, f"Serial upload with esptool to {flasher.port} ({names})", False)
        watcher = JobFlashWatcher(running, sink, asyncio.get_running_loop())
        try:
            check, flashed = await flasher.flash(regions, watcher=watcher, force=job.force)
        except FlashStoppedError as err:
            sink.output(job, f"Serial upload {err}", False)
            return running.stopped_outcome()
        except SerialDeviceError as err:
            return _failed(job, sink, str(err))
        except asyncio.CancelledError:
            watcher.abandon()  # the worker is cancelled: the thread stops at its next block
            raise
        for line in _region_lines(check, flashed):
            sink.output(job, line, False)
        if running.stop_requested():
            return running.stopped_outcome()
        if not flashed:
            return Outcome(status=JobStatus.COMPLETED, skipped=SkipReason.DEVICE_CURRENT)
        return await self._await_boot(running, sink, flasher)

    async def _await_boot(
        self, running: RunningJob, sink: JobSink, flasher: SerialFlasher
    ) -> Outcome:
        job = running.job
        sink.output(job, f"Waiting up to {flasher.boot_timeout:g} s for the device to boot", False)
        boot = asyncio.ensure_future(flasher.wait_for_boot())
        stop = asyncio.ensure_future(self._wait_stop(running))
        try:
            await asyncio.wait({boot, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not boot.done():
                boot.cancel()
        if not boot.done() or boot.cancelled():
            await asyncio.gather(boot, return_exceptions=True)
            return running.stopped_outcome()
        try:
            boot_log = boot.result()
        except SerialDeviceError as err:
            return _failed(job, sink, str(err))
        for line in boot_log:
            if text := clean_text(line).strip()[:MAX_LINE_LENGTH]:
                sink.output(job, text, False)
        sink.output(job, "The device booted after the flash", False)
        return Outcome(status=JobStatus.COMPLETED, exit_code=0)

    async def _wait_stop(self, running: RunningJob) -> None:
        # RunningJob has no awaitable stop signal (a stop ends a process; here there is none).
        while not running.stop_requested():  # noqa: ASYNC110
            await asyncio.sleep(self._stop_poll)


class JobFlashWatcher:
    """A job's `FlashWatcher`: esptool's lines and bytes written, into the job, via the loop.

    Called in the esptool thread; everything it reports is handed to the loop in order
    (`call_soon_threadsafe`). Progress is the share of bytes written, reported only when it
    rises, with one redraw line per percent.
    """

    def __init__(self, running: RunningJob, sink: JobSink, loop: asyncio.AbstractEventLoop) -> None:
        """Report `running.job` to `sink` in `loop`."""
        self._running = running
        self._sink = sink
        self._loop = loop
        self._best = -1
        self._redraw = False
        self._abandoned = False

    def abandon(self) -> None:
        """Nobody waits for the flash any more: stop at the next block."""
        self._abandoned = True

    def stopping(self) -> bool:
        """True once the job was asked to stop (read from the esptool thread)."""
        return self._abandoned or self._running.stop_requested()

    def line(self, text: str) -> None:
        """A line of esptool's output."""
        self._redraw = False
        self._loop.call_soon_threadsafe(self._sink.output, self._running.job, text, False)

    def written(self, done: int, total: int) -> None:
        """Bytes written so far: a higher percentage is reported, with a redraw line."""
        value = 100 if total <= 0 else min(100, done * 100 // total)
        if value <= self._best:
            return
        self._best = value
        job = self._running.job
        text = f"Writing: {value}% ({done} of {total} bytes)"
        self._loop.call_soon_threadsafe(self._report, job, value, text, self._redraw)
        self._redraw = True

    def _report(self, job: Job, value: int, text: str, redraw: bool) -> None:
        self._sink.output(job, text, redraw)
        self._sink.progress(job, value)


def _region_lines(check: FlashCheck, flashed: tuple[str, ...]) -> list[str]:
    lines = []
    for region in check.regions:
        if region.name in flashed:
            verdict = "written" if not region.current else "written again (force)"
        else:
            verdict = "already on the device"
        lines.append(f"{region.name} at {region.offset:#x} ({region.size} bytes): {verdict}")
    return lines


def _failed(job: Job, sink: JobSink, reason: str) -> Outcome:
    error = f"Serial upload failed: {reason}"
    sink.output(job, error, False)
    return Outcome(status=JobStatus.FAILED, error=error)


def serial_uploads(fallback: Executor, config_dir: Path) -> SerialUploadExecutor:
    """The upload lane's executor for a configuration folder: serial ESP32 uploads here."""
    return SerialUploadExecutor(fallback, data_dir=config_dir / ESPHOME_DATA_DIR)
