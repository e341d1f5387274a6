"""Where each image of an ESP32 build goes in flash, read from the build's own records.

Owns: the list of flash regions (bootloader, partition table, OTA data, application) of a
PlatformIO ESP32 build, each an image file and an offset, computed as `esphome upload` does:

1. PlatformIO's project data that ESPHome caches (`<data_dir>/idedata/<name>.json`): the
   application (`prog_path` as `.bin`) at 0x10000, and `extra.flash_images` (path, offset);
2. else ESP-IDF's `flasher_args.json` (ESPHome's native ESP-IDF toolchain writes it under
   `build/<name>/build/`): its `bootloader`, `partition-table`, `otadata` and `app` entries;
3. else the build folder `.pioenvs/<name>/`: `bootloader.bin` at the chip's bootloader offset
   (0x1000 on the ESP32 and ESP32-S2, 0x0 on later chips: known once connected, so left to the
   caller), `partitions.bin` at 0x8000, and from that partition table the OTA data partition
   (`ota_data_initial.bin` or `boot_app0.bin`) and the first application partition
   (`firmware.bin`).

Blocking (reads small files): call from an executor.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import struct
from typing import Any, Final

PARTITION_TABLE_OFFSET: Final = 0x8000
DEFAULT_APP_OFFSET: Final = 0x10000
PARTITION_ENTRY: Final = struct.Struct("<2sBBII16sI")
PARTITION_MAGIC: Final = b"\xaa\x50"
TYPE_APP: Final = 0x00
TYPE_DATA: Final = 0x01
SUBTYPE_OTA_DATA: Final = 0x00
OTA_DATA_IMAGES: Final = ("ota_data_initial.bin", "boot_app0.bin")
FLASH_ALIGNMENT: Final = 4


class FlashLayoutError(Exception):
    """The build has no complete set of images; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class FlashRegion:
    """One image of the build and where it goes; `offset` None = the chip's bootloader offset."""

    name: str
    path: Path
    offset: int | None

    def image(self) -> bytes:
        """The bytes written to flash: the file padded to 4 bytes with 0xFF, as esptool does."""
        data = self.path.read_bytes()
        remainder = len(data) % FLASH_ALIGNMENT
        return data + b"\xff" * ((FLASH_ALIGNMENT - remainder) % FLASH_ALIGNMENT)

    def at(self, bootloader_offset: int) -> int:
        """The region's offset once the chip (and so its bootloader offset) is known."""
        return bootloader_offset if self.offset is None else self.offset


def esp32_flash_layout(data_dir: Path, name: str) -> tuple[FlashRegion, ...]:
    """The regions of the ESP32 build of node `name` under `data_dir` (`<config>/.esphome`).

    Raises FlashLayoutError when the application image is missing (nothing was built).
    """
    build = data_dir / "build" / name / ".pioenvs" / name
    regions = (
        _from_idedata(data_dir / "idedata" / f"{name}.json")
        or _from_flasher_args(data_dir / "build" / name / "build" / "flasher_args.json")
        or _from_build(build)
    )
    present = tuple(region for region in regions if region.path.is_file())
    if not any(region.name == "application" for region in present):
        raise FlashLayoutError(f"no firmware image in {build}: compile the configuration first")
    return present


def _from_idedata(path: Path) -> list[FlashRegion] | None:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        program = Path(data["prog_path"]).with_suffix(".bin")
        extra = data.get("extra", {}).get("flash_images", [])
        images = [(Path(item["path"]), int(str(item["offset"]), 0)) for item in extra]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    regions = [FlashRegion(_region_name(p, offset), p, offset) for p, offset in images]
    return [*regions, FlashRegion("application", program, DEFAULT_APP_OFFSET)]


FLASHER_ARGS_REGIONS: Final = (
    ("bootloader", "bootloader"),
    ("partition-table", "partition table"),
    ("otadata", "OTA data"),
    ("app", "application"),
)


def _from_flasher_args(path: Path) -> list[FlashRegion] | None:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        regions = [
            FlashRegion(name, path.parent / data[key]["file"], int(str(data[key]["offset"]), 0))
            for key, name in FLASHER_ARGS_REGIONS
            if key in data
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return regions or None


def _region_name(path: Path, offset: int) -> str:
    if offset == PARTITION_TABLE_OFFSET or "partition" in path.name:
        return "partition table"
    if "bootloader" in path.name:
        return "bootloader"
    if path.name in OTA_DATA_IMAGES:
        return "OTA data"
    return path.name


def _from_build(build: Path) -> list[FlashRegion]:
    table = build / "partitions.bin"
    regions = [
        FlashRegion("bootloader", build / "bootloader.bin", None),
        FlashRegion("partition table", table, PARTITION_TABLE_OFFSET),
    ]
    partitions = read_partition_table(table)
    ota_data = next((p for p in partitions if p[0] == TYPE_DATA and p[1] == SUBTYPE_OTA_DATA), None)
    if ota_data is not None:
        image = next((build / n for n in OTA_DATA_IMAGES if (build / n).is_file()), None)
        if image is not None:
            regions.append(FlashRegion("OTA data", image, ota_data[2]))
    app = next((p[2] for p in partitions if p[0] == TYPE_APP), DEFAULT_APP_OFFSET)
    regions.append(FlashRegion("application", build / "firmware.bin", app))
    return regions


def read_partition_table(path: Path) -> list[tuple[int, int, int, int]]:
    """(type, subtype, offset, size) of each entry of a binary partition table; [] if none."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    entries = []
    for start in range(0, len(data) - PARTITION_ENTRY.size + 1, PARTITION_ENTRY.size):
        magic, kind, subtype, offset, size, _label, _flags = PARTITION_ENTRY.unpack_from(
            data, start
        )
        if magic != PARTITION_MAGIC:
            break
        entries.append((kind, subtype, offset, size))
    return entries
