"""Content hashes of local files, remembered by stamp so an unchanged file is never read twice.

Owns: the file stamp (`(size, mtime_ns)`, or a directory's `mtime_ns`, or "missing") and the
content-hash cache behind the configuration fingerprint. Two layers:

- in memory, for the life of the process: path -> (size, mtime_ns, SHA-256 of the bytes);
- on disk, the same map as JSON under `<config_dir>/.esphome/esphome_pipeline/`, so a restart
  does not read every file again. Written atomically (temporary file, then rename); a missing,
  corrupt or foreign file is ignored and rebuilt, never an error.

A stamp is trusted only once the file has been quiet for `SETTLE_NS`: a file written again
within the same timestamp tick (coarse on many file systems) as our read could keep its
stamp with new bytes, so a freshly written file is hashed again on every check until it
settles. Blocking: use from an executor.
"""

# Plain string paths and os.path on purpose: a warm check runs this thousands of times and
# pathlib objects cost several times more per call.
# ruff: noqa: PTH110, PTH114, PTH116, PTH117, PTH118, PTH120, PTH123

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
import stat
import tempfile
import time
from typing import Any, Final, NamedTuple

_LOGGER = logging.getLogger(__name__)

CACHE_DIR_PARTS: Final = (".esphome", "esphome_pipeline")
CACHE_FILE_NAME: Final = "fingerprint-cache.json"
CACHE_FORMAT: Final = 1
SETTLE_NS: Final = 2_000_000_000
"""A file whose mtime is younger than this may still change within its timestamp tick."""
MAX_DISK_ENTRIES: Final = 50_000
"""Above this many entries, only those used by this process are written back."""

DIRECTORY_SIZE: Final = -1
"""The size part of a directory's stamp: only its mtime (entries added or removed) counts."""


class Stamp(NamedTuple):
    """What `stat` says about a path: enough to tell that it changed, without reading it.

    A tuple, so the comparison a warm check makes thousands of times is a C one.
    """

    size: int
    mtime_ns: int

    @property
    def is_directory(self) -> bool:
        """True for a directory's stamp."""
        return self.size == DIRECTORY_SIZE

    def settled(self, now_ns: int) -> bool:
        """True when the path has been quiet long enough for its stamp to be trusted."""
        return now_ns - self.mtime_ns >= SETTLE_NS


def stamp_of(path: str) -> Stamp | None:
    """Return the path's stamp, or None when it does not exist (or cannot be stat'ed)."""
    try:
        result = os.stat(path)
    except (OSError, ValueError):
        return None
    if stat.S_ISDIR(result.st_mode):
        return Stamp(DIRECTORY_SIZE, result.st_mtime_ns)
    return Stamp(result.st_size, result.st_mtime_ns)


def default_cache_file(config_dir: Path) -> Path:
    """Where the on-disk layer of a configuration folder lives."""
    return config_dir.joinpath(*CACHE_DIR_PARTS, CACHE_FILE_NAME)


class ContentHashCache:
    """SHA-256 of file contents by path, valid while the file's stamp is unchanged."""

    def __init__(self, root: Path, cache_file: Path | None) -> None:
        """Cache hashes of files below `root`; persist them in `cache_file` (None: memory only)."""
        self._root = root
        self._cache_file = cache_file
        self._entries: dict[str, tuple[int, int, str]] = {}
        self._used: set[str] = set()
        self._loaded = False
        self._dirty = False
        self.reads = 0
        """Files read so far (for tests and the benchmark: a warm check reads none)."""

    def digest(self, path: str, stamp: Stamp, *, content: bytes | None = None) -> str | None:
        """Return the hex SHA-256 of the file at `path` whose stamp is `stamp`.

        `content`, when given, is the file's bytes (already read by the caller). Returns None
        when the file cannot be read.
        """
        self._load()
        key = self._key(path)
        self._used.add(key)
        entry = self._entries.get(key)
        if content is None and entry is not None and entry[:2] == (stamp.size, stamp.mtime_ns):
            return entry[2]
        if content is None:
            try:
                with open(path, "rb") as file:
                    content = file.read()
            except OSError:
                return None
            self.reads += 1
        digest = hashlib.sha256(content).hexdigest()
        if stamp.settled(time.time_ns()) and len(content) == stamp.size:
            if entry != (stamp.size, stamp.mtime_ns, digest):
                self._entries[key] = (stamp.size, stamp.mtime_ns, digest)
                self._dirty = True
        elif entry is not None:
            del self._entries[key]
            self._dirty = True
        return digest

    def flush(self) -> None:
        """Write the on-disk layer when it changed (atomically); errors are only logged."""
        if self._cache_file is None or not self._dirty:
            return
        entries = self._entries
        if len(entries) > MAX_DISK_ENTRIES:
            entries = {key: value for key, value in entries.items() if key in self._used}
        document = {"format": CACHE_FORMAT, "files": {k: list(v) for k, v in entries.items()}}
        folder = self._cache_file.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=".fingerprint-", suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    json.dump(document, file, separators=(",", ":"))
                Path(temporary).replace(self._cache_file)
            except BaseException:
                with contextlib.suppress(OSError):
                    Path(temporary).unlink()
                raise
        except OSError as err:
            _LOGGER.warning("Could not save the fingerprint cache %s: %s", self._cache_file, err)
            return
        self._dirty = False

    def _key(self, path: str) -> str:
        root = str(self._root)
        if path.startswith(root + os.sep):
            return path[len(root) + 1 :]
        return path

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._cache_file is None:
            return
        try:
            raw = self._cache_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as err:
            _LOGGER.debug("Fingerprint cache %s unreadable: %s", self._cache_file, err)
            return
        self._entries = _parse_entries(raw)
        if not self._entries and raw.strip():
            _LOGGER.debug("Fingerprint cache %s is corrupt; rebuilding it", self._cache_file)


def _parse_entries(raw: str) -> dict[str, tuple[int, int, str]]:
    """Read the JSON form; anything malformed is dropped (a cache is only a shortcut)."""
    try:
        document: Any = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(document, dict) or document.get("format") != CACHE_FORMAT:
        return {}
    files = document.get("files")
    if not isinstance(files, dict):
        return {}
    entries: dict[str, tuple[int, int, str]] = {}
    for key, value in files.items():
        if (
            isinstance(value, list)
            and len(value) == 3
            and all(isinstance(item, int) and not isinstance(item, bool) for item in value[:2])
            and isinstance(value[2], str)
            and len(value[2]) == 64
        ):
            entries[key] = (value[0], value[1], value[2])
    return entries
