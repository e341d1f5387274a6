"""Finding the device configurations in the ESPHome folder (blocking: run in an executor).

A configuration is a top-level `.yaml`/`.yml` file with an `esphome:` block. Skipped: hidden
files, `secrets.yaml`, anything that is not a regular file, and YAML without `esphome:`
(package files, includes). Sub-folders are not scanned: ESPHome's dashboard and CLI treat the
top level as the device list and sub-folders as shared includes. A file that cannot be read or
parsed is reported in `unreadable` and left out, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path

from .engine.fingerprint import ConfigurationReadError, NodeInfo, read_node

SKIPPED_NAMES = frozenset({"secrets.yaml", "secrets.yml"})


@dataclass(frozen=True, kw_only=True, slots=True)
class ScanResult:
    """One scan of the folder: the configurations found and the files that failed to parse."""

    nodes: dict[str, NodeInfo]
    unreadable: dict[str, str]


def scan_config_dir(config_dir: Path, *, esphome_version: str) -> ScanResult:
    """Read every configuration in `config_dir`. Raises OSError when the folder cannot be listed."""
    nodes: dict[str, NodeInfo] = {}
    unreadable: dict[str, str] = {}
    with os.scandir(config_dir) as entries:
        names = sorted(
            entry.name
            for entry in entries
            if entry.is_file()
            and not entry.name.startswith(".")
            and entry.name.lower().endswith((".yaml", ".yml"))
            and entry.name.lower() not in SKIPPED_NAMES
        )
    for name in names:
        try:
            node = read_node(config_dir, name, esphome_version=esphome_version)
        except ConfigurationReadError as err:
            unreadable[name] = str(err)
            continue
        if node is not None:
            nodes[name] = node
    return ScanResult(nodes=nodes, unreadable=unreadable)
