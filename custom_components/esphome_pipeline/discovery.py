"""Finding the device configurations in the ESPHome folder (blocking: run in an executor).

A configuration is a top-level file whose name the engine accepts as a configuration
(`engine/input_rules.py`: `.yaml`/`.yml`, not hidden, not a secrets file) and that has an
`esphome:` block. Skipped without a word: other names, sub-folders, and YAML without
`esphome:` (package files, includes). Sub-folders are not scanned: ESPHome's dashboard and
CLI treat the top level as the device list and sub-folders as shared includes. A file that is
not usable (a link leading outside the folder, a broken link, not a regular file) or cannot be
read or parsed is reported in `unreadable` with the reason and left out, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path

from .engine.fingerprint import ConfigurationReadError, Fingerprinter, NodeInfo, read_node
from .engine.input_rules import configuration_file_problem, is_configuration_file_name


@dataclass(frozen=True, kw_only=True, slots=True)
class ScanResult:
    """One scan of the folder: the configurations found and the files that failed to parse."""

    nodes: dict[str, NodeInfo]
    unreadable: dict[str, str]


def scan_config_dir(
    config_dir: Path, *, esphome_version: str, fingerprinter: Fingerprinter | None = None
) -> ScanResult:
    """Read every configuration in `config_dir`. Raises OSError when the folder cannot be listed.

    `fingerprinter` (for `config_dir` and `esphome_version`) keeps its caches across scans and
    writes its on-disk layer at the end; without one every file is read afresh.
    """
    nodes: dict[str, NodeInfo] = {}
    unreadable: dict[str, str] = {}
    with os.scandir(config_dir) as entries:
        names = sorted(
            entry.name
            for entry in entries
            if is_configuration_file_name(entry.name) and not entry.is_dir(follow_symlinks=False)
        )
    for name in names:
        problem = configuration_file_problem(config_dir, name)
        if problem is not None:
            unreadable[name] = problem
            continue
        try:
            node = (
                read_node(config_dir, name, esphome_version=esphome_version)
                if fingerprinter is None
                else fingerprinter.read_node(name)
            )
        except ConfigurationReadError as err:
            unreadable[name] = str(err)
            continue
        if node is not None:
            nodes[name] = node
    if fingerprinter is not None:
        fingerprinter.flush()
    return ScanResult(nodes=nodes, unreadable=unreadable)
