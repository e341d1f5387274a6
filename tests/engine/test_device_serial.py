"""Serial install against the emulated ESP32 loader, driven by the real esptool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import json
import logging
import os
from pathlib import Path
import struct

import pytest

from custom_components.esphome_pipeline.engine.device.esptool_output import (
    _LoggingOutput,
    listening,
)
from custom_components.esphome_pipeline.engine.device.flash_layout import (
    FlashLayoutError,
    FlashRegion,
    esp32_flash_layout,
    read_partition_table,
)
from custom_components.esphome_pipeline.engine.device.serial import (
    BootNotSeenError,
    DeviceUnpluggedError,
    FlashStoppedError,
    SerialDeviceError,
    SerialFlasher,
)
from tests.fakes.esp_loader import (
    BOOT_BANNER,
    CHANGE_BAUDRATE,
    FLASH_END,
    SPI_FLASH_MD5,
    EspLoaderEmulator,
    SlipDecoder,
    slip_encode,
)

NAME = "garden"
OTA_DATA_OFFSET = 0x9000
APP_OFFSET = 0x10000


def partition_table() -> bytes:
    """ESPHome's layout: otadata, phy_init, app0, app1, nvs."""
    rows = [
        (0x01, 0x00, OTA_DATA_OFFSET, 0x2000, b"otadata"),
        (0x01, 0x01, 0xB000, 0x1000, b"phy_init"),
        (0x00, 0x10, APP_OFFSET, 0x1C0000, b"app0"),
        (0x00, 0x11, 0x1D0000, 0x1C0000, b"app1"),
        (0x01, 0x02, 0x390000, 0x70000, b"nvs"),
    ]
    table = b"".join(
        struct.pack("<2sBBII16sI", b"\xaa\x50", kind, sub, offset, size, label, 0)
        for kind, sub, offset, size, label in rows
    )
    return table + b"\xeb\xeb" + b"\xff" * 30


def write_build(data_dir: Path, *, app: bytes) -> Path:
    """A PlatformIO ESP32 build of NAME; returns its `.pioenvs/<name>` folder."""
    build = data_dir / "build" / NAME / ".pioenvs" / NAME
    build.mkdir(parents=True)
    (build / "bootloader.bin").write_bytes(b"\xe9" + os.urandom(20_000))
    (build / "partitions.bin").write_bytes(partition_table())
    (build / "ota_data_initial.bin").write_bytes(b"\xff" * 0x2000)
    (build / "firmware.bin").write_bytes(app)
    return build


def preload(emulator: EspLoaderEmulator, regions: tuple[FlashRegion, ...]) -> None:
    """Put the build's images into the emulated flash (a device already running it)."""
    for region in regions:
        data = region.path.read_bytes()
        image = data + b"\xff" * (-len(data) % 4)
        offset = region.at(0x1000)
        emulator.flash[offset : offset + len(image)] = image


@pytest.fixture
async def emulator(socket_enabled: None) -> AsyncIterator[EspLoaderEmulator]:
    """A running emulated ESP32 on a loopback port."""
    device = EspLoaderEmulator()
    await device.start()
    try:
        yield device
    finally:
        await device.close()


@pytest.fixture
def regions(tmp_path: Path) -> tuple[FlashRegion, ...]:
    """The regions of a fresh build (a 300 KB application)."""
    write_build(tmp_path, app=b"\xe9" + os.urandom(150_000) + b"\x00" * 150_000 + b"\x01\x02")
    return esp32_flash_layout(tmp_path, NAME)


async def test_current_device_is_not_flashed(
    emulator: EspLoaderEmulator, regions: tuple[FlashRegion, ...]
) -> None:
    """Every region's MD5 matches: skipped, and no FLASH_BEGIN ever reaches the device."""
    preload(emulator, regions)
    result = await SerialFlasher(emulator.url).install(regions)
    assert result.skipped
    assert result.check.current
    assert result.check.chip == "ESP32"
    assert [state.name for state in result.check.regions] == [
        "bootloader",
        "partition table",
        "OTA data",
        "application",
    ]
    assert [state.offset for state in result.check.regions] == [
        0x1000,
        0x8000,
        OTA_DATA_OFFSET,
        APP_OFFSET,
    ]
    assert not emulator.saw_flash_write()
    assert result.boot_log == ()


async def test_only_the_different_region_is_flashed(
    emulator: EspLoaderEmulator, regions: tuple[FlashRegion, ...], tmp_path: Path
) -> None:
    """A new application: only it is written (bytes verified in flash), then the boot log."""
    preload(emulator, regions)
    build = tmp_path / "build" / NAME / ".pioenvs" / NAME
    new_app = b"\xe9" + os.urandom(200_001)
    (build / "firmware.bin").write_bytes(new_app)
    flasher = SerialFlasher(emulator.url)
    check = await flasher.check(regions)
    assert check.different == ("application",)
    assert not emulator.saw_flash_write()

    result = await flasher.install(regions)
    assert result.flashed == ("application",)
    assert emulator.written_at == [APP_OFFSET]
    assert bytes(emulator.flash[APP_OFFSET : APP_OFFSET + len(new_app)]) == new_app
    assert any("rst:0xc" in line for line in result.boot_log)
    assert emulator.boots == 2  # the check reset it too
    assert (await flasher.check(regions)).current


async def test_rom_loader_gets_the_stub_first(tmp_path: Path, socket_enabled: None) -> None:
    """A chip in its ROM loader: esptool uploads its stub, then the same install works."""
    emulator = EspLoaderEmulator(rom_mode=True)
    await emulator.start()
    try:
        write_build(tmp_path, app=b"\xe9" + os.urandom(5000))
        regions = await asyncio.to_thread(esp32_flash_layout, tmp_path, NAME)
        result = await SerialFlasher(emulator.url).install(regions)
        assert set(result.flashed) == {"bootloader", "partition table", "application"}
        assert (await SerialFlasher(emulator.url).check(regions)).current
    finally:
        await emulator.close()


async def test_unplugged_mid_flash(regions: tuple[FlashRegion, ...], socket_enabled: None) -> None:
    """The cable is pulled during the write: a clear error naming the incomplete region."""
    emulator = EspLoaderEmulator(unplug_after_blocks=1)
    await emulator.start()
    try:
        flasher = SerialFlasher(emulator.url, write_attempts=1)
        with pytest.raises(DeviceUnpluggedError) as caught:
            await flasher.install(regions)
        message = str(caught.value)
        assert "stopped answering while the bootloader was written at 0x1000" in message
        assert "incomplete" in message
        assert emulator.boots == 0
    finally:
        await emulator.close()


@pytest.mark.parametrize(
    ("opcode", "error", "message"),
    [
        (SPI_FLASH_MD5, DeviceUnpluggedError, "stopped answering while its flash was read"),
        (FLASH_END, SerialDeviceError, "could not be reset"),
    ],
)
async def test_unplugged_outside_a_write(
    regions: tuple[FlashRegion, ...],
    socket_enabled: None,
    opcode: int,
    error: type[Exception],
    message: str,
) -> None:
    """Pulled while the flash is read or while leaving the loader: clear errors too."""
    emulator = EspLoaderEmulator(unplug_at_command=opcode)
    await emulator.start()
    try:
        with pytest.raises(error, match=message):
            await SerialFlasher(emulator.url, change_baud=True).check(regions)
        assert CHANGE_BAUDRATE in emulator.commands
    finally:
        await emulator.close()


def test_esptool_output_goes_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """esptool's console output lands in the debug log, never on stdout."""
    output = _LoggingOutput()
    with caplog.at_level(logging.DEBUG):
        output.print("Connecting", "...")
        output.print()
        output.note("a note")
        output.warning("a warning")
        output.error("an error")
        output.stage(finish=True)
        output.progress_bar(1, 2)
        output.set_verbosity("verbose")
        output.debug("nonce ", "00")
    assert [record.getMessage() for record in caplog.records] == [
        "esptool: Connecting ...",
        "esptool note: a note",
        "esptool warning: a warning",
        "esptool error: an error",
        "esptool debug: nonce 00",
    ]


class Heard:
    """An esptool listener and flash watcher that records what it hears."""

    def __init__(self, *, stop: bool = False) -> None:
        """Stop at once when `stop`."""
        self.lines: list[str] = []
        self.bars: list[tuple[int, int, str]] = []
        self.stop = stop

    def line(self, text: str) -> None:
        """Record a line."""
        self.lines.append(text)

    def bar(self, current: int, total: int, label: str) -> None:
        """Record a progress bar."""
        self.bars.append((current, total, label))

    def written(self, done: int, total: int) -> None:
        """Record bytes written."""
        self.bars.append((done, total, "written"))

    def stopping(self) -> bool:
        """Whether to stop."""
        return self.stop


def test_esptool_lines_per_thread_listener() -> None:
    """Partial prints become whole lines; dots, blanks and colours are dropped; nesting works."""
    output = _LoggingOutput()
    outer, inner = Heard(), Heard()
    output.print("before any listener")
    with listening(outer):
        output.print("Connecting...", end="")
        output.print(".", end="")
        output.note("no reset over TCP")
        output.print(".", end="")
        output.print()
        with listening(inner):
            output.print("\x1b[32mChip is ESP32\x1b[0m", "rev 3", sep=": ")
            output.progress_bar(1, 4, prefix="Writing at 0x00010000 ")
            output.print("left open", end="")
        output.warning("careful")
        output.error("broken")
        output.print("tail", end=None)
        output.print("no newline at the end", end="")
    assert outer.lines == [
        "Connecting....",
        "Note: no reset over TCP",
        "Warning: careful",
        "Error: broken",
        "tail",
        "no newline at the end",
    ]
    assert inner.lines == ["Chip is ESP32: rev 3", "left open"]
    assert inner.bars == [(1, 4, "Writing at 0x00010000")]
    output.progress_bar(2, 4)  # no listener on this thread: nothing happens


async def test_watcher_stops_before_anything_is_written(
    emulator: EspLoaderEmulator, regions: tuple[FlashRegion, ...]
) -> None:
    """A stop asked before the first write: nothing written, the chip reset to run its firmware."""
    heard = Heard(stop=True)
    with pytest.raises(FlashStoppedError) as caught:
        await SerialFlasher(emulator.url).flash(regions, watcher=heard)
    assert not caught.value.incomplete
    assert not emulator.saw_flash_write()
    assert emulator.boots == 1
    assert any(line.startswith("Detecting chip type") for line in heard.lines)


async def test_unreachable_port(socket_enabled: None, regions: tuple[FlashRegion, ...]) -> None:
    """Nothing listens: a clear error, no traceback soup."""
    emulator = EspLoaderEmulator()
    await emulator.start()
    url = emulator.url
    await emulator.close()
    with pytest.raises(SerialDeviceError, match=r"cannot reach the ESP loader on socket://"):
        await SerialFlasher(url, connect_attempts=1).check(regions)


async def test_no_boot_log_after_flash(
    regions: tuple[FlashRegion, ...], socket_enabled: None
) -> None:
    """A device that logs nothing after its reset fails the proof (bounded wait)."""
    emulator = EspLoaderEmulator(boot_banner=b"garbage without a boot line\r\n")
    await emulator.start()
    try:
        with pytest.raises(BootNotSeenError, match="logged no boot within 0.5 s"):
            await SerialFlasher(emulator.url, boot_timeout=0.5).install(regions)
    finally:
        await emulator.close()


async def test_boot_port_closed_or_gone(socket_enabled: None) -> None:
    """The reopened port closes, or cannot be opened: a clear error either way."""
    emulator = EspLoaderEmulator()
    await emulator.start()
    emulator.unplugged = True  # accepts, then closes at once
    with pytest.raises(BootNotSeenError, match="closed before the device logged a boot"):
        await SerialFlasher(emulator.url).wait_for_boot()
    url = emulator.url
    await emulator.close()
    with pytest.raises(BootNotSeenError, match="could not be reopened"):
        await SerialFlasher(url).wait_for_boot()


async def test_unreadable_image(tmp_path: Path) -> None:
    """A build image that vanished is reported before any port is opened."""
    region = FlashRegion("application", tmp_path / "gone.bin", APP_OFFSET)
    with pytest.raises(SerialDeviceError, match="cannot read the build's images"):
        await SerialFlasher("socket://127.0.0.1:9").check([region])


def test_layout_from_idedata(tmp_path: Path) -> None:
    """PlatformIO's cached project data decides images and offsets when present."""
    build = write_build(tmp_path, app=b"app")
    idedata = {
        "prog_path": str(build / "firmware.elf"),
        "extra": {
            "flash_images": [
                {"path": str(build / "bootloader.bin"), "offset": "0x0"},
                {"path": str(build / "partitions.bin"), "offset": "0x8000"},
                {"path": str(build / "boot_app0.bin"), "offset": "0xe000"},
                {"path": str(build / "ota_data_initial.bin"), "offset": "0xd000"},
                {"path": str(build / "spiffs.bin"), "offset": "0x290000"},
            ]
        },
    }
    (build / "spiffs.bin").write_bytes(b"data")
    (tmp_path / "idedata").mkdir()
    (tmp_path / "idedata" / f"{NAME}.json").write_text(json.dumps(idedata))
    layout = esp32_flash_layout(tmp_path, NAME)
    assert [(region.name, region.offset) for region in layout] == [
        ("bootloader", 0),
        ("partition table", 0x8000),
        ("OTA data", 0xD000),  # boot_app0.bin does not exist: left out
        ("spiffs.bin", 0x290000),
        ("application", APP_OFFSET),
    ]
    assert await_image(layout[-1]) == b"app\xff"
    assert layout[0].at(0x1000) == 0


def await_image(region: FlashRegion) -> bytes:
    """The region's padded image, read outside any event loop."""
    return region.image()


def test_layout_fallbacks(tmp_path: Path) -> None:
    """No idedata: the partition table decides; no image at all is a clear error."""
    with pytest.raises(FlashLayoutError, match="compile the configuration first"):
        esp32_flash_layout(tmp_path, NAME)
    build = write_build(tmp_path, app=b"app!")
    (tmp_path / "idedata").mkdir()
    (tmp_path / "idedata" / f"{NAME}.json").write_text("{broken")
    (build / "ota_data_initial.bin").unlink()
    layout = esp32_flash_layout(tmp_path, NAME)
    assert [region.name for region in layout] == ["bootloader", "partition table", "application"]
    assert layout[0].at(0x1000) == 0x1000
    assert read_partition_table(tmp_path / "missing.bin") == []
    (build / "partitions.bin").write_bytes(b"\xff" * 64)
    layout = esp32_flash_layout(tmp_path, NAME)
    assert layout[-1].offset == APP_OFFSET


async def test_emulator_protocol_edges(emulator: EspLoaderEmulator) -> None:
    """The emulator rejects a bad checksum and unknown commands, acknowledges a baud change."""
    reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
    decoder = SlipDecoder()

    async def ask(op: int, data: bytes, checksum: int = 0) -> bytes:
        writer.write(slip_encode(struct.pack("<BBHI", 0, op, len(data), checksum) + data))
        await writer.drain()
        while not (packets := decoder.feed(await reader.read(4096))):
            pass
        return packets[0]

    try:
        reply = await ask(CHANGE_BAUDRATE, struct.pack("<II", 460800, 115200))
        assert reply[-2:] == b"\x00\x00"
        reply = await ask(0x03, struct.pack("<IIII", 1, 0, 0, 0) + b"\x00", checksum=1)
        assert reply[-2] == 1  # no download started / checksum wrong
        reply = await ask(0x55, b"")
        assert reply[-2:] == b"\x01\x05"
        reply = await ask(0xD1, struct.pack("<II", 0, 4096))
        assert reply[-2:] == b"\x00\x00"
        writer.write(b"noise outside frames" + slip_encode(b"\x00"))  # ignored
        assert decoder.feed(b"\xc0\xc0\xdb\xdcx\xdb\xdd\xc0") == [b"\xc0x\xdb"]
    finally:
        writer.close()


def test_layout_from_esp_idf_flasher_args(tmp_path: Path) -> None:
    """ESPHome's native ESP-IDF toolchain: flasher_args.json names images and offsets."""
    build = tmp_path / "build" / NAME / "build"
    (build / "bootloader").mkdir(parents=True)
    (build / "bootloader" / "bootloader.bin").write_bytes(b"boot")
    (build / f"{NAME}.bin").write_bytes(b"app")
    args = {
        "bootloader": {"offset": "0x0", "file": "bootloader/bootloader.bin"},
        "partition-table": {"offset": "0x8000", "file": "partition_table/partition-table.bin"},
        "app": {"offset": "0x20000", "file": f"{NAME}.bin"},
    }
    (build / "flasher_args.json").write_text(json.dumps(args))
    layout = esp32_flash_layout(tmp_path, NAME)
    assert [(region.name, region.offset) for region in layout] == [
        ("bootloader", 0),
        ("application", 0x20000),
    ]
    (build / "flasher_args.json").write_text(json.dumps({"app": {"offset": 5}}))
    with pytest.raises(FlashLayoutError):
        esp32_flash_layout(tmp_path, NAME)
    (build / "flasher_args.json").write_text(json.dumps({"other": 1}))
    with pytest.raises(FlashLayoutError):
        esp32_flash_layout(tmp_path, NAME)


async def test_overlong_boot_noise_is_skipped(socket_enabled: None) -> None:
    """A line longer than the reader's limit is dropped; the boot line after it still counts."""
    emulator = EspLoaderEmulator()
    await emulator.start()
    emulator._pending_banner = b"~" * 70_000 + b"\r\n" + BOOT_BANNER
    try:
        log = await SerialFlasher(emulator.url).wait_for_boot()
    finally:
        await emulator.close()
    assert any(line.startswith("rst:0xc") for line in log)
    assert not any(line.startswith("~") for line in log)
