"""Check a build peer's artifact tarball and put the build in place, as if built here.

Owns the whole path from a downloaded tarball (Device Builder's layout: `storage.json`,
optional `idedata.json`, `platformio.ini`, `build_info.json`, and the build tree such as
`.pioenvs/<name>/firmware.bin`) to a local build folder `esphome upload` can use:

1. Headers first, before a byte of content is read: only regular files (no links, devices,
   fifos, folders or sparse files), names relative and plain (no absolute path, no `..`, no
   backslash, no empty part, no trailing slash), no duplicates, no name that is both a file
   and a folder, at most `MAX_MEMBERS` members, each declared size and the running total
   within the cap (64 MiB).
2. Content into a per-job staging folder, every file created new (never through a link),
   the bytes counted against the declared size; JSON members must be objects.
3. `storage.json` interpreted: its `name` as Device Builder validates it, a build path, a
   firmware path inside that build path that the tarball really carries.
4. Only then moved into `<data_dir>/build/<name>/`, with the storage file
   (`<data_dir>/storage/<configuration>.json`) and idedata rewritten to local paths, and the
   firmware checked to be there.

Everything here blocks: run it in an executor (`async_materialise` does). Errors are
`ArtifactError` with a sentence a user can act on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import gzip
import json
import os
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
import re
import shutil
import tarfile
from typing import IO, Any, Final, cast
import zlib

from .wire import MAX_ARTIFACT_BYTES

MAX_MEMBERS: Final = 4096
MAX_NAME_LENGTH: Final = 1024
STORAGE_MEMBER: Final = "storage.json"
IDEDATA_MEMBER: Final = "idedata.json"
CACHE_MEMBERS: Final = frozenset({"validated.json", "validated.yaml"})
"""Device Builder ships ESPHome's validated-config cache; we do not need it and drop it."""
NOT_IN_TREE: Final = frozenset({STORAGE_MEMBER, IDEDATA_MEMBER, *CACHE_MEMBERS})
DEVICE_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_READ_BLOCK: Final = 1 << 20
_CORRUPT: Final = (tarfile.TarError, EOFError, zlib.error, OSError)


class ArtifactError(Exception):
    """The artifact tarball is unusable; nothing was put in place."""


class _BoundedStream:
    """The decompressed archive, refused once it grows past what the cap allows.

    Sizes in member headers are checked before reading, but the headers themselves (pax and
    GNU long-name records) are read whole by `tarfile`: this bound keeps a forged header from
    unpacking gigabytes into memory.
    """

    def __init__(self, raw: gzip.GzipFile, limit: int) -> None:
        self._raw = raw
        self._limit = limit

    def read(self, size: int = -1) -> bytes:
        room = self._limit + 1 - self._raw.tell()
        data = self._raw.read(room if size < 0 else min(size, max(room, 0)))
        if self._raw.tell() > self._limit:
            raise ArtifactError(f"The artifacts unpack to more than {self._limit} bytes")
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


@dataclass(frozen=True, slots=True)
class MaterialisedBuild:
    """Where a peer's build now lives on this machine."""

    name: str
    build_path: Path
    firmware_path: Path
    storage_path: Path
    files: int
    size: int


def _member_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "a symbolic link"
    if member.islnk():
        return "a hard link"
    if member.isdir():
        return "a folder"
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a fifo"
    if member.issparse():
        return "a sparse file"
    return "not a regular file"


def check_member_name(name: str) -> PurePosixPath:
    """Return the member's path when it is a plain relative name; else raise ArtifactError."""
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ArtifactError("The artifacts contain a member with an empty or overlong name")
    if "\x00" in name or "\\" in name or any(ord(char) < 0x20 for char in name):
        raise ArtifactError(f"The artifacts contain a member with a forbidden name: {name!r}")
    if name.startswith("/") or name.endswith("/"):
        raise ArtifactError(f"The artifacts contain an absolute or folder-like name: {name!r}")
    parts = name.split("/")
    if any(part in {"", ".", ".."} for part in parts):
        raise ArtifactError(f"The artifacts contain a path that leaves its folder: {name!r}")
    return PurePosixPath(name)


def check_headers(tar: tarfile.TarFile, limit: int = MAX_ARTIFACT_BYTES) -> list[tarfile.TarInfo]:
    """Walk every header and apply the rules of step 1; return the members in order."""
    members: list[tarfile.TarInfo] = []
    names: set[str] = set()
    folders: set[str] = set()
    total = 0
    for member in tar:
        if len(members) >= MAX_MEMBERS:
            raise ArtifactError(f"The artifacts hold more than {MAX_MEMBERS} files")
        path = check_member_name(member.name)
        if not member.isfile() or member.issparse():
            raise ArtifactError(f"The artifact member {member.name!r} is {_member_kind(member)}")
        if member.size > limit:
            raise ArtifactError(
                f"The artifact member {member.name!r} declares {member.size} bytes (limit {limit})"
            )
        total += member.size
        if total > limit:
            raise ArtifactError(f"The artifacts declare more than {limit} bytes in total")
        if member.name in names:
            raise ArtifactError(f"The artifacts contain {member.name!r} twice")
        parents = {str(parent) for parent in path.parents if str(parent) != "."}
        if member.name in folders or parents & names:
            raise ArtifactError(f"The artifact member {member.name!r} is both a file and a folder")
        names.add(member.name)
        folders |= parents
        members.append(member)
    if not members:
        raise ArtifactError("The artifacts are empty")
    return members


def _open_new(path: Path) -> int:
    """Create `path` as a new file, refusing links; parents are created as real folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.open(path, flags, 0o644)


def _extract(
    tar: tarfile.TarFile, members: list[tarfile.TarInfo], tree: Path
) -> dict[str, dict[str, Any]]:
    """Copy every member into `tree`; return the parsed JSON members by name."""
    documents: dict[str, dict[str, Any]] = {}
    for member in members:
        source = tar.extractfile(member)
        if source is None:
            raise ArtifactError(f"The artifact member {member.name!r} cannot be read")
        # Top-level JSON members are metadata and must be objects; build-tree files are data.
        keep = "/" not in member.name and member.name.endswith(".json")
        kept = bytearray()
        written = 0
        with source, os.fdopen(_open_new(tree / member.name), "wb") as target:
            while block := source.read(_READ_BLOCK):
                written += len(block)
                if written > member.size:
                    raise ArtifactError(
                        f"The artifact member {member.name!r} is longer than declared"
                    )
                target.write(block)
                if keep:
                    kept.extend(block)
        if written != member.size:
            raise ArtifactError(f"The artifact member {member.name!r} is cut short")
        if keep:
            documents[member.name] = _json_object(member.name, bytes(kept))
    return documents


def _json_object(name: str, data: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(data)
    except ValueError as err:
        raise ArtifactError(f"The artifact member {name!r} is not valid JSON: {err}") from err
    if not isinstance(parsed, dict):
        raise ArtifactError(f"The artifact member {name!r} is not a JSON object")
    return parsed


def _receiver_path(value: str) -> PurePath:
    """Parse a path the receiver wrote, in its own flavour (it may run Windows)."""
    if re.match(r"^[A-Za-z]:[\\/]", value) or value.startswith("\\\\"):
        return PureWindowsPath(value)
    return PurePosixPath(value)


def firmware_relative_path(storage: dict[str, Any]) -> tuple[str, PurePosixPath]:
    """Return (device name, firmware path inside the build folder) from storage.json."""
    name = storage.get("name")
    if not isinstance(name, str) or not DEVICE_NAME_RE.fullmatch(name):
        raise ArtifactError(f"The artifacts' storage.json has an unusable device name: {name!r}")
    build_path = storage.get("build_path")
    firmware = storage.get("firmware_bin_path")
    if not isinstance(build_path, str) or not isinstance(firmware, str):
        raise ArtifactError("The artifacts' storage.json lacks its build or firmware path")
    receiver_build = _receiver_path(build_path)
    try:
        relative = _receiver_path(firmware).relative_to(receiver_build)
    except ValueError:
        raise ArtifactError(
            f"The firmware path {firmware!r} is outside the build folder {build_path!r}"
        ) from None
    if not relative.parts or any(part in {"", ".", ".."} for part in relative.parts):
        raise ArtifactError(f"The firmware path {firmware!r} leaves the build folder")
    return name, PurePosixPath(*relative.parts)


def _remap(value: Any, receiver_build: PurePath, local_build: Path) -> Any:
    """Rewrite a receiver path under its build folder to ours; leave anything else alone."""
    if not isinstance(value, str):
        return value
    try:
        relative = _receiver_path(value).relative_to(receiver_build)
    except ValueError:
        return value
    if any(part in {"", ".", ".."} for part in relative.parts):
        raise ArtifactError(f"The artifacts' idedata path {value!r} leaves the build folder")
    return str(local_build.joinpath(*relative.parts))


def _rewrite_idedata(idedata: dict[str, Any], receiver_build: PurePath, build: Path) -> None:
    idedata["prog_path"] = _remap(idedata.get("prog_path"), receiver_build, build)
    extra = idedata.get("extra")
    images = extra.get("flash_images") if isinstance(extra, dict) else None
    if isinstance(images, list):
        for image in images:
            if isinstance(image, dict):
                image["path"] = _remap(image.get("path"), receiver_build, build)
    # The compiler path points into the receiver's toolchain folder, useless here.
    idedata.pop("cc_path", None)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_bytes(data)
    temporary.replace(path)


def _check_folder(folder: Path) -> None:
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ArtifactError(f"The build folder has a link or a file where a folder goes: {folder}")


def _move_tree(tree: Path, members: list[tarfile.TarInfo], build: Path) -> None:
    """Move the staged build tree into `build`, never through a link in the destination."""
    for member in members:
        if member.name in NOT_IN_TREE:
            continue
        folder = build
        _check_folder(folder)
        for part in PurePosixPath(member.name).parts[:-1]:
            folder = folder / part
            _check_folder(folder)
        destination = folder / PurePosixPath(member.name).name
        if destination.is_symlink() or destination.is_dir():
            raise ArtifactError(f"The build folder has a link or a folder at {destination}")
        folder.mkdir(parents=True, exist_ok=True)
        (tree / member.name).replace(destination)


def materialise(
    tarball: Path,
    *,
    configuration: str,
    data_dir: Path,
    staging: Path,
    limit: int = MAX_ARTIFACT_BYTES,
) -> MaterialisedBuild:
    """Check `tarball` and put its build in place for `configuration` (blocking).

    `data_dir` is ESPHome's data folder (`<config_dir>/.esphome` by default); `staging` is
    this job's own empty folder on the same file system, removed afterwards either way.
    """
    if "/" in configuration or "\\" in configuration or configuration.startswith("."):
        raise ArtifactError(f"{configuration!r} is not a configuration file name")
    tree = staging / "tree"
    try:
        try:
            # Headers and padding add about 1 KiB per member on top of the content.
            bound = limit + MAX_MEMBERS * 1024 + (1 << 20)
            with (
                gzip.GzipFile(tarball, mode="rb") as raw,
                tarfile.open(fileobj=cast(IO[bytes], _BoundedStream(raw, bound)), mode="r:") as tar,
            ):
                members = check_headers(tar, limit)
                documents = _extract(tar, members, tree)
        except ArtifactError:
            raise
        except _CORRUPT as err:
            raise ArtifactError(f"The artifacts are not a valid gzip tar archive: {err}") from err
        storage = documents.get(STORAGE_MEMBER)
        if storage is None:
            raise ArtifactError("The artifacts lack storage.json")
        name, firmware = firmware_relative_path(storage)
        if not (tree / firmware).is_file():
            raise ArtifactError(f"The artifacts lack the firmware {firmware}")
        build = data_dir / "build" / name
        receiver_build = _receiver_path(storage["build_path"])
        idedata = documents.get(IDEDATA_MEMBER)
        if idedata is not None:
            _rewrite_idedata(idedata, receiver_build, build)
        _move_tree(tree, members, build)
        storage["build_path"] = str(build)
        storage["firmware_bin_path"] = str(build / firmware)
        storage_path = data_dir / "storage" / f"{configuration}.json"
        _write_atomically(storage_path, json.dumps(storage, indent=2).encode() + b"\n")
        if idedata is not None:
            _write_atomically(
                data_dir / "idedata" / f"{name}.json", json.dumps(idedata, indent=2).encode()
            )
        firmware_path = build / firmware
        if not firmware_path.is_file():
            raise ArtifactError(f"The firmware {firmware_path} is missing after unpacking")
        return MaterialisedBuild(
            name=name,
            build_path=build,
            firmware_path=firmware_path,
            storage_path=storage_path,
            files=len(members),
            size=sum(member.size for member in members),
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


async def async_materialise(
    tarball: Path,
    *,
    configuration: str,
    data_dir: Path,
    staging: Path,
    limit: int = MAX_ARTIFACT_BYTES,
) -> MaterialisedBuild:
    """Run `materialise` in the default executor."""

    def work() -> MaterialisedBuild:
        return materialise(
            tarball, configuration=configuration, data_dir=data_dir, staging=staging, limit=limit
        )

    return await asyncio.get_running_loop().run_in_executor(None, work)
