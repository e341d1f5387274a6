"""Which build a device runs, in ESPHome Pipeline's terms: the fingerprint behind its answer.

Owns the decision that turns a device's native API answer (its name, ESPHome version and
compilation time, compared with the build in ESPHome's data folder) into what the `firmware`
entity shows, and the readable texts of a device that runs another build. No Home Assistant
import; `data_folder_fingerprint` is blocking (stat calls: run it in an executor).

Which fingerprint a running build has, in this order (the first that holds):

1. The device runs the build in ESPHome's data folder and that build is ESPHome Pipeline's
   last build of the configuration (`build_info.json` was not written after that compile
   finished): the fingerprint that compile was labelled with.
2. The device runs the build in the data folder, ESPHome Pipeline never built it (or someone
   built again since), and it is provably the configuration as it is now: same ESPHome
   version, every input the fingerprint covers (the YAML, includes, packages, secrets file,
   local components, fonts, ...) last changed before ESPHome generated that build's sources
   (`build_info.json` `build_time`), and nothing in the configuration that cannot be vouched
   for: the current fingerprint. So a folder built with the ESPHome dashboard or CLI shows its
   devices as installed from the first minute.
3. The device runs the build ESPHome Pipeline recorded as installed (same ESPHome version and
   compilation time): the installed fingerprint, confirmed.
4. Otherwise the device runs another build: no fingerprint; the entity shows what it runs.

A device that answers with another node name is another device: its answer says nothing
about this configuration (as when it does not answer at all).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .engine.device.build_records import BuildIdentity
from .engine.device.native_api import DeviceReport, compare
from .engine.device.survey import SurveyAnswer
from .engine.fingerprint import ConfigurationReadError, Fingerprinter
from .engine.skip import BuildRecord

DEVICE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S %z"
"""How ESPHome writes `build_time_str`, which the device reports as `compilation_time`."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RunningBuild:
    """What a configuration's device said it runs, and which build of ours that is."""

    esphome_version: str
    compilation_time: str
    """As the device reports it, e.g. `2026-11-27 16:14:49 +0000`."""
    fingerprint: str | None
    """The fingerprint of the build it runs when it is one we can name; None: another build."""
    folder_build_time: str | None = None
    """`build_time_str` of the build in ESPHome's data folder it was compared with."""

    @property
    def built_at(self) -> str | None:
        """The compilation time as an ISO time, when it is in ESPHome's format."""
        moment = device_time(self.compilation_time)
        return None if moment is None else moment.isoformat()


def device_time(text: str | None) -> datetime | None:
    """A device's `compilation_time` (or a `build_time_str`) as a time; None when unreadable."""
    if not text:
        return None
    try:
        return datetime.strptime(text.strip(), DEVICE_TIME_FORMAT)
    except ValueError:
        return None


def readable_time(text: str | None) -> str | None:
    """`2026-11-27 16:14 UTC` for `2026-11-27 16:14:49 +0000`; other texts as they are."""
    moment = device_time(text)
    if moment is None:
        return text.strip() if text else None
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def running_build(
    answer: SurveyAnswer,
    *,
    folder_fingerprint: str | None,
    installed: str | None,
    installed_build: Mapping[str, Any] | None,
) -> RunningBuild | None:
    """What the device runs, in our terms; None when the answer says nothing about it.

    `folder_fingerprint` is the fingerprint of the data folder's build (rules 1 and 2, from
    `data_folder_fingerprint`), `installed` and `installed_build` what ESPHome Pipeline
    recorded as installed (rule 3).
    """
    device = answer.truth.device
    if device is None or not _same_node(device, answer.build):
        return None
    fingerprint: str | None = None
    if answer.truth.runs_build and folder_fingerprint is not None:
        fingerprint = folder_fingerprint
    elif installed is not None and _runs_recorded(device, answer.build, installed, installed_build):
        fingerprint = installed
    return RunningBuild(
        esphome_version=device.esphome_version,
        compilation_time=device.compilation_time,
        fingerprint=fingerprint,
        folder_build_time=answer.build.build_time_str,
    )


def _same_node(device: DeviceReport, build: BuildIdentity) -> bool:
    """The answering device is this configuration's node (the MAC suffix allowed).

    Compared with the build under the device's own version and time, so only the name can
    differ.
    """
    own = replace(
        build, esphome_version=device.esphome_version, build_time_str=device.compilation_time
    )
    return compare(device, own).runs_build


def _runs_recorded(
    device: DeviceReport,
    build: BuildIdentity,
    installed: str,
    recorded: Mapping[str, Any] | None,
) -> bool:
    """The device runs the build recorded as installed (version and compilation time)."""
    if recorded is None or recorded.get("fingerprint") != installed:
        return False
    version, time = recorded.get("esphome_version"), recorded.get("compilation_time")
    if not isinstance(version, str) or not isinstance(time, str):
        return False
    return compare(device, replace(build, esphome_version=version, build_time_str=time)).runs_build


def data_folder_fingerprint(
    config_dir: Path,
    configuration: str,
    build: BuildIdentity,
    *,
    last_build: BuildRecord | None,
    esphome_version: str,
) -> str | None:
    """The fingerprint of the build in ESPHome's data folder, when it can be told. Blocking.

    Rule 1 (ESPHome Pipeline's last build), else rule 2 (the configuration as it is now,
    provably unchanged since the build); None when neither holds.
    """
    try:
        written = build.build_info.stat().st_mtime
    except OSError:
        return None
    if last_build is not None and last_build.fingerprint is not None:
        try:
            finished = datetime.fromisoformat(last_build.finished_at).timestamp()
        except ValueError:
            finished = None
        if finished is not None and written <= finished:
            return last_build.fingerprint
    return _current_if_unchanged(config_dir, configuration, build, esphome_version)


def _current_if_unchanged(
    config_dir: Path, configuration: str, build: BuildIdentity, esphome_version: str
) -> str | None:
    """Rule 2: the current fingerprint when every input predates the build's sources."""
    generated = device_time(build.build_time_str)
    if generated is None or build.esphome_version != esphome_version:
        return None
    fingerprinter = Fingerprinter(config_dir, esphome_version=esphome_version, cache_file=None)
    try:
        node = fingerprinter.read_node(configuration)
        inputs = fingerprinter.inputs_of(configuration)
    except ConfigurationReadError:
        return None
    if node is None or node.unverifiable:
        return None
    # ESPHome writes build_time in whole seconds: an input changed in that second or later
    # may postdate the sources, so only inputs older than it count as built.
    limit_ns = int(generated.timestamp()) * 1_000_000_000
    paths = [config_dir / configuration, *map(Path, inputs.stamps)]
    for path in paths:
        try:
            changed_ns = path.stat().st_mtime_ns
        except OSError:
            continue  # missing now: a name that is no file (a file ESPHome needs fails it)
        if changed_ns >= limit_ns:
            return None
    return node.fingerprint
