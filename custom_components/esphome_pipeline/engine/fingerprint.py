"""Node facts and the configuration fingerprint, read without ESPHome.

Owns: the node facts a controller needs (`name`, `friendly_name`, platform) with top-level
substitutions applied, and the configuration fingerprint with its two cache layers.

The fingerprint (v2) is the first 12 hex digits of a SHA-256 over the ESPHome version, the
build options the caller passes, and every local input of the configuration (see
`fingerprint_inputs`: the YAML, includes and include folders, packages, `includes:`, local
external components, files named by fonts, images, animations, audio and any other key, the
secrets used, remote sources). It changes whenever the firmware could; a false "unchanged" is
a bug, a false "changed" only costs a compile. `NodeInfo.unverifiable` says when the
fingerprint cannot vouch for every input (an unpinned git source, a file outside the folder):
such a configuration must never be skipped as unchanged.

`Fingerprinter` keeps both cache layers for one folder: file hashes by stamp (memory and disk,
`fingerprint_cache`) and, per configuration, the stamps of every input of its last check, so a
repeated check of an unchanged configuration costs only `stat` calls. Blocking: use from an
executor.
"""

# Plain string paths and os.path on purpose: a warm check runs this thousands of times and
# pathlib objects cost several times more per call.
# ruff: noqa: PTH110, PTH114, PTH116, PTH117, PTH118, PTH120, PTH123

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import hashlib
import os
from pathlib import Path
from stat import S_ISDIR
import threading
import time
from typing import Any, Final

import yaml

from .fingerprint_cache import (
    DIRECTORY_SIZE,
    ContentHashCache,
    Stamp,
    default_cache_file,
    stamp_of,
)
from .fingerprint_inputs import MAX_FILES, InputCollector, Inputs, parse_yaml_bytes
from .fingerprint_yaml import (
    IncludeDirRef,
    IncludeRef,
    SecretRef,
    Tagged,
    load_yaml_structure,
    load_yaml_text,
    substitute,
)

# Re-exported under its old home for the diagnostics; defined once in input_rules.
from .input_rules import SECRETS_FILES

__all__ = [
    "MAX_FILES",
    "SECRETS_FILES",
    "ConfigurationReadError",
    "Fingerprinter",
    "IncludeDirRef",
    "IncludeRef",
    "NodeInfo",
    "SecretRef",
    "Tagged",
    "load_yaml_text",
    "read_node",
]

FINGERPRINT_LENGTH: Final = 12
FINGERPRINT_FORMAT: Final = b"esphome-pipeline fingerprint v2\0"
PLATFORM_KEYS: Final = (
    "host",
    "esp32",
    "esp8266",
    "rp2040",
    "bk72xx",
    "rtl87xx",
    "ln882x",
    "nrf52",
    "libretiny",
)
_USE_DEFAULT: Final = object()


class ConfigurationReadError(Exception):
    """The YAML file cannot be read or parsed; the message says why."""


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeInfo:
    """What a controller needs to know about one configuration."""

    name: str
    friendly_name: str | None
    platform: str | None
    fingerprint: str
    unverifiable: tuple[str, ...] = ()
    """Why the fingerprint cannot vouch for every input; empty when it can."""

    @property
    def display_name(self) -> str:
        """The device name people read: `friendly_name`, else `name`."""
        return self.friendly_name or self.name


@dataclass(frozen=True, slots=True)
class _Record:
    """One configuration's last check: the stamps of its inputs and what they gave."""

    stamps: tuple[tuple[str, Stamp | None], ...]
    node: NodeInfo | None


@dataclass(slots=True)
class _Document:
    stamp: Stamp
    digest: str | None
    document: Any = field(default=None)


class Fingerprinter:
    """Fingerprints of the configurations in one folder, with both cache layers."""

    def __init__(
        self,
        config_dir: Path,
        *,
        esphome_version: str,
        build_options: Mapping[str, str] | None = None,
        cache_file: Path | None | object = _USE_DEFAULT,
    ) -> None:
        """Read configurations in `config_dir`, built with `esphome_version` and `build_options`.

        `cache_file` is the on-disk layer (default: under `<config_dir>/.esphome/`; None keeps
        everything in memory).
        """
        self._config_dir = config_dir
        self._root = os.path.realpath(config_dir)
        options = {"esphome_version": esphome_version, **(build_options or {})}
        self._options = tuple(sorted((str(k), str(v)) for k, v in options.items()))
        store = default_cache_file(config_dir) if cache_file is _USE_DEFAULT else cache_file
        self._hashes = ContentHashCache(
            Path(self._root), store if isinstance(store, Path) else None
        )
        self._documents: dict[str, _Document] = {}
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    @property
    def files_read(self) -> int:
        """Files read from disk so far (a warm check reads none)."""
        return self._hashes.reads

    def read_node(self, configuration: str) -> NodeInfo | None:
        """Return the node facts and fingerprint, or None when the file has no `esphome:` block.

        Raises ConfigurationReadError when the file cannot be read or parsed. Safe to call from
        several executor threads (one check at a time).
        """
        with self._lock:
            return self._read_node(configuration)

    def _read_node(self, configuration: str) -> NodeInfo | None:
        record = self._records.get(configuration)
        if record is not None and _unchanged(record.stamps):
            return record.node
        self._records.pop(configuration, None)
        path = os.path.join(self._config_dir, configuration)
        stamp = stamp_of(path)
        try:
            with open(path, "rb") as file:
                raw = file.read()
            self._hashes.reads += 1
            document = load_yaml_structure(raw.decode("utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ConfigurationReadError(str(err)) from err
        stamps: dict[str, Stamp | None] = {path: stamp}
        node = None
        if isinstance(document, dict) and "esphome" in document and stamp is not None:
            digest = self._hashes.digest(path, stamp, content=raw) or ""
            inputs = InputCollector(self._root, self._hashes, self._read_document).collect(
                path, digest, document
            )
            stamps.update(inputs.stamps)
            node = self._node(document, Path(path), inputs)
        now = time.time_ns()
        if all(s is None or s.settled(now) for s in stamps.values()):
            self._records[configuration] = _Record(tuple(stamps.items()), node)
        return node

    def inputs_of(self, configuration: str) -> Inputs:
        """Return every input the configuration's fingerprint covers, read afresh.

        Raises ConfigurationReadError when the file cannot be read or parsed.
        """
        path = os.path.join(self._config_dir, configuration)
        stamp = stamp_of(path)
        try:
            with open(path, "rb") as file:
                raw = file.read()
            document = load_yaml_structure(raw.decode("utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ConfigurationReadError(str(err)) from err
        if stamp is None:
            raise ConfigurationReadError(f"{configuration} vanished while it was read")
        with self._lock:
            digest = self._hashes.digest(path, stamp, content=raw) or ""
            return InputCollector(self._root, self._hashes, self._read_document).collect(
                path, digest, document
            )

    def flush(self) -> None:
        """Write the on-disk cache layer when it changed."""
        with self._lock:
            self._hashes.flush()

    def _read_document(self, path: str, stamp: Stamp) -> tuple[str | None, Any]:
        """Hash and parse a YAML input once per stamp (shared packages are parsed once)."""
        cached = self._documents.get(path)
        if cached is not None and cached.stamp == stamp:
            return cached.digest, cached.document
        try:
            with open(path, "rb") as file:
                content = file.read()
        except OSError:
            return None, None
        self._hashes.reads += 1
        digest = self._hashes.digest(path, stamp, content=content)
        document = parse_yaml_bytes(content)
        if stamp.settled(time.time_ns()):
            self._documents[path] = _Document(stamp, digest, document)
        return digest, document

    def _node(self, document: dict[Any, Any], path: Path, inputs: Inputs) -> NodeInfo:
        esphome = document["esphome"]
        block = esphome if isinstance(esphome, dict) else {}
        merged = block.get("<<")  # `<<: *anchor` is kept as a key by the structure loader
        for base in merged if isinstance(merged, list) else [merged]:
            if isinstance(base, dict):
                block = {**base, **block}
        substitutions = document.get("substitutions")
        values = substitutions if isinstance(substitutions, dict) else {}
        return NodeInfo(
            name=_substituted(block.get("name"), values) or path.stem,
            friendly_name=_substituted(block.get("friendly_name"), values),
            platform=_platform(document, block),
            fingerprint=self._digest(inputs),
            unverifiable=tuple(inputs.unverifiable),
        )

    def _digest(self, inputs: Inputs) -> str:
        digest = hashlib.sha256(FINGERPRINT_FORMAT)
        for key, value in self._options:
            digest.update(b"option\0" + key.encode() + b"\0" + value.encode() + b"\0")
        for label in sorted(inputs.files):
            content = inputs.files[label]
            digest.update(b"file\0" + label.encode() + b"\0")
            digest.update(b"missing\0" if content is None else content.encode() + b"\0")
        for key in sorted(inputs.secrets):
            digest.update(b"secret\0" + key.encode() + b"\0" + inputs.secrets[key].encode())
        for source in sorted(inputs.remote):
            digest.update(b"remote\0" + source.encode() + b"\0")
        return digest.hexdigest()[:FINGERPRINT_LENGTH]


def _unchanged(stamps: tuple[tuple[str, Stamp | None], ...]) -> bool:
    """True when every path still has its stamp: the warm check, a tight loop of `stat` calls.

    Same rule as `stamp_of(path) == stamp`, without building a Stamp per path.
    """
    stat = os.stat
    for path, stamp in stamps:
        try:
            result = stat(path)
        except (OSError, ValueError):
            if stamp is not None:
                return False
            continue
        if stamp is None or result.st_mtime_ns != stamp.mtime_ns:
            return False
        is_directory = S_ISDIR(result.st_mode)
        if is_directory != (stamp.size == DIRECTORY_SIZE):
            return False
        if not is_directory and result.st_size != stamp.size:
            return False
    return True


def read_node(
    config_dir: Path,
    configuration: str,
    *,
    esphome_version: str,
    build_options: Mapping[str, str] | None = None,
) -> NodeInfo | None:
    """Return one configuration's node facts and fingerprint, without any cache.

    Returns None when the file has no `esphome:` block; raises ConfigurationReadError when it
    cannot be read or parsed. Use a `Fingerprinter` to check a folder repeatedly.
    """
    return Fingerprinter(
        config_dir,
        esphome_version=esphome_version,
        build_options=build_options,
        cache_file=None,
    ).read_node(configuration)


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildInputs:
    """What a configuration's fingerprint is made of, digest by digest (no content, no secret).

    Comparing two of them says what changed between two builds: which files, which secrets
    (by key; the value's digest only), and the ESPHome version.
    """

    esphome_version: str
    files: dict[str, str]
    """File label (relative to the folder) -> SHA-256 of its bytes, or "missing"."""
    secrets: dict[str, str]
    """Secret key -> SHA-256 of its value, or "missing"."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "esphome_version": self.esphome_version,
            "files": dict(self.files),
            "secrets": dict(self.secrets),
        }


def read_inputs(config_dir: Path, configuration: str, *, esphome_version: str) -> BuildInputs:
    """Return the inputs the fingerprint of `configuration` covers. Blocking.

    Raises ConfigurationReadError when the file cannot be read or parsed.
    """
    inputs = Fingerprinter(config_dir, esphome_version=esphome_version, cache_file=None).inputs_of(
        configuration
    )
    return BuildInputs(
        esphome_version=esphome_version,
        files={
            label: "missing" if digest is None else digest for label, digest in inputs.files.items()
        },
        secrets=dict(inputs.secrets),
    )


def _substituted(value: Any, substitutions: dict[Any, Any]) -> str | None:
    if value is None or isinstance(value, Tagged | SecretRef | IncludeRef | IncludeDirRef):
        return None
    return substitute(str(value), substitutions) or None


def _platform(document: dict[Any, Any], block: dict[Any, Any]) -> str | None:
    for key in PLATFORM_KEYS:
        if key in document:
            return key
    # Configurations from before ESPHome 2022 name the platform inside `esphome:`.
    legacy = block.get("platform")
    return str(legacy).lower() if isinstance(legacy, str) else None
