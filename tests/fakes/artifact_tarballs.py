"""Artifact tarballs in Device Builder's layout: packed from a build, chip layouts, hostile ones.

Device Builder's receiver answers `download_artifacts` with a gzip tar of `storage.json`,
`idedata.json` (when the build made one), `platformio.ini`, `build_info.json` and the build
tree's flashable files under their build-relative names (`.pioenvs/<name>/firmware.bin`, ...).
`pack_build` does the same from a build ESPHome (real or fake) wrote; `chip_tarball` makes the
ESP32 (four images with offsets in idedata) and ESP8266 layouts; `hostile_tarball` makes
every malformed archive the checks must refuse.
"""

from __future__ import annotations

from collections.abc import Iterable
import io
import json
from pathlib import Path
import tarfile
from typing import Any

type Member = tuple[tarfile.TarInfo, bytes | None]

MIB = 1024 * 1024


def file_member(name: str, data: bytes) -> Member:
    """A regular file member."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    return info, data


def special_member(name: str, kind: bytes, *, link: str = "", size: int = 0) -> Member:
    """A member of another type (symlink, hard link, folder, device, fifo), or a lying size."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = size
    return info, None


def render(members: Iterable[Member]) -> bytes:
    """Write members into a gzip tar; a member with a size but no data gets a lying header."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if data is None and info.size and info.isfile():
                # A header that declares bytes the archive does not carry.
                tar.fileobj.write(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))  # type: ignore[union-attr]
                continue
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def storage_document(name: str, build_path: str, firmware: str, **extra: Any) -> dict[str, Any]:
    """A storage.json as ESPHome writes it."""
    return {
        "storage_version": 1,
        "name": name,
        "friendly_name": None,
        "esphome_version": "2026.10.0",
        "build_path": build_path,
        "firmware_bin_path": firmware,
        "loaded_integrations": ["api"],
        **extra,
    }


def pack_build(config_dir: Path, configuration: str) -> bytes:
    """Pack a finished build the way Device Builder's receiver does (blocking)."""
    storage_file = config_dir / ".esphome" / "storage" / f"{configuration}.json"
    storage = json.loads(storage_file.read_text(encoding="utf-8"))
    build = Path(storage["build_path"])
    name = storage["name"]
    members: list[Member] = [file_member("storage.json", storage_file.read_bytes())]
    idedata = config_dir / ".esphome" / "idedata" / f"{name}.json"
    for member_name, source in (
        ("idedata.json", idedata),
        ("platformio.ini", build / "platformio.ini"),
        ("build_info.json", build / "build_info.json"),
    ):
        if source.is_file():
            members.append(file_member(member_name, source.read_bytes()))
    firmware = Path(storage["firmware_bin_path"])
    # Like Device Builder: the firmware and the flashable images, never the build's
    # intermediate files (a host build leaves a 70 MiB precompiled header next to them).
    pioenvs = build / ".pioenvs" / name
    images = sorted(pioenvs.glob("*")) if pioenvs.is_dir() else []
    for path in [firmware, *images]:
        keep = path == firmware or path.suffix in {".bin", ".elf", ".uf2"}
        name_in_tar = path.relative_to(build).as_posix()
        if keep and path.is_file() and all(info.name != name_in_tar for info, _ in members):
            members.append(file_member(name_in_tar, path.read_bytes()))
    return render(members)


ESP32_IMAGES = {
    "bootloader.bin": "0x1000",
    "partitions.bin": "0x8000",
    "ota_data_initial.bin": "0xe000",
}


def chip_tarball(chip: str, name: str, receiver_build: str = "/data/build") -> bytes:
    """An ESP32 (firmware plus three images with offsets) or ESP8266 artifact tarball."""
    build = f"{receiver_build}/{name}"
    pioenvs = f".pioenvs/{name}"
    firmware = f"{build}/{pioenvs}/firmware.bin"
    storage = storage_document(name, build, firmware, esp_platform=chip.upper())
    images = ESP32_IMAGES if chip == "esp32" else {}
    idedata = {
        "prog_path": f"{build}/{pioenvs}/firmware.elf",
        "cc_path": "/opt/peer/.platformio/packages/toolchain/bin/gcc",
        "extra": {
            "flash_images": [
                {"path": f"{build}/{pioenvs}/{image}", "offset": offset}
                for image, offset in images.items()
            ]
        },
    }
    members = [
        file_member("storage.json", json.dumps(storage).encode()),
        file_member("idedata.json", json.dumps(idedata).encode()),
        file_member("platformio.ini", b"[env]\n"),
        file_member("build_info.json", json.dumps({"config_hash": 1}).encode()),
        file_member(f"{pioenvs}/firmware.bin", f"{chip} firmware of {name}".encode()),
        file_member(f"{pioenvs}/firmware.elf", b"\x7fELF"),
    ]
    members += [file_member(f"{pioenvs}/{image}", image.encode()) for image in images]
    return render(members)


def _good(name: str = "dev1") -> tuple[list[Member], str]:
    build = f"/receiver/build/{name}"
    storage = storage_document(name, build, f"{build}/.pioenvs/{name}/firmware.bin")
    return [
        file_member("storage.json", json.dumps(storage).encode()),
        file_member(f".pioenvs/{name}/firmware.bin", b"firmware"),
    ], build


def hostile_tarball(case: str, name: str = "dev1") -> bytes:
    """A malformed artifact tarball for `case` (see HOSTILE_TARBALLS)."""
    members, build = _good(name)
    storage, firmware = members
    firmware_name = f".pioenvs/{name}/firmware.bin"
    match case:
        case "symlink":
            members.append(special_member("evil", tarfile.SYMTYPE, link="/etc/passwd"))
        case "hardlink":
            members.append(special_member("evil", tarfile.LNKTYPE, link="storage.json"))
        case "absolute_path":
            members.append(file_member("/evil", b"x"))
        case "dot_dot":
            members.append(file_member("../../evil", b"x"))
        case "nested_dot_dot":
            members.append(file_member(".pioenvs/../../../evil", b"x"))
        case "device":
            members.append(special_member("evil", tarfile.CHRTYPE))
        case "fifo":
            members.append(special_member("evil", tarfile.FIFOTYPE))
        case "folder_as_firmware":
            members = [storage, special_member(firmware_name, tarfile.DIRTYPE)]
        case "declared_oversize":
            members.append(special_member("huge.bin", tarfile.REGTYPE, size=65 * MIB))
        case "total_oversize":
            members += [file_member(f"part{i}.bin", bytes(20 * MIB)) for i in range(4)]
        case "storage_not_json":
            members = [file_member("storage.json", b"{not json"), firmware]
        case "storage_array":
            members = [file_member("storage.json", b"[1, 2]"), firmware]
        case "build_info_string":
            members.append(file_member("build_info.json", b'"text"'))
        case "unsafe_name":
            bad = storage_document("../evil", build, f"{build}/{firmware_name}")
            members = [file_member("storage.json", json.dumps(bad).encode()), firmware]
        case "no_storage":
            members = [firmware]
        case "no_firmware":
            members = [storage]
        case "firmware_escapes":
            bad = storage_document(name, build, f"{build}/../../evil/firmware.bin")
            members = [file_member("storage.json", json.dumps(bad).encode()), firmware]
        case "firmware_outside":
            bad = storage_document(name, build, "/etc/firmware.bin")
            members = [file_member("storage.json", json.dumps(bad).encode()), firmware]
        case "duplicate":
            members.append(file_member(firmware_name, b"other"))
        case "file_and_folder":
            members.append(file_member(f".pioenvs/{name}/firmware.bin/inner", b"x"))
        case "backslash":
            members.append(file_member("..\\..\\evil", b"x"))
        case "not_gzip":
            return b"this is not a gzip archive at all"
        case "truncated":
            return render([*members, file_member("big.bin", bytes(range(256)) * 4096)])[:-2000]
        case "empty":
            return render([])
        case "pax_bomb":
            # A pax header (read whole by tarfile) that unpacks to 80 MiB.
            info, data = firmware
            info.pax_headers = {"comment": "x" * (80 * MIB)}
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(info, io.BytesIO(data or b""))
            return buffer.getvalue()
        case _:
            raise ValueError(f"unknown hostile tarball case {case!r}")
    return render(members)


HOSTILE_TARBALLS = (
    "symlink",
    "hardlink",
    "absolute_path",
    "dot_dot",
    "nested_dot_dot",
    "device",
    "fifo",
    "folder_as_firmware",
    "declared_oversize",
    "total_oversize",
    "storage_not_json",
    "storage_array",
    "build_info_string",
    "unsafe_name",
    "no_storage",
    "no_firmware",
    "firmware_escapes",
    "firmware_outside",
    "duplicate",
    "file_and_folder",
    "backslash",
    "not_gzip",
    "truncated",
    "empty",
    "pax_bomb",
)
