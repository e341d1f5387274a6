"""Firmware versions people can read, and what changed since the installed build.

Owns: the version texts of the `firmware` update entity (ESPHome version, build time, short
hash), the release summary (which files changed, which secrets changed — by key, never a
value —, whether the ESPHome version changed, or that ESPHome Pipeline never installed the
device), and `ReleaseRecorder`, which stores what an installed build was made of when its
upload completes (the entry store's `installed_builds`).

The hash at the end of both version texts is the fingerprint's start: two versions are the
same build exactly when their hashes are equal (`same_build`). A device never installed by
ESPHome Pipeline shows `NEVER_INSTALLED`, which has no hash, so it is always offered Install.
A device that says it runs another build (device_truth.py) shows what it runs, also without a
hash (`running_version`, `other_build_summary`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
import logging
from pathlib import Path
import re
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback

from .device_runs import RunningBuild, readable_time
from .engine.device.build_records import read_build_identity
from .engine.fingerprint import BuildInputs, ConfigurationReadError, NodeInfo, read_inputs
from .engine.fingerprint_inputs import ESPHOME_DATA_DIR
from .engine.models import Job, JobType
from .engine.skip import BuildRecord
from .store import EntryStore

_LOGGER = logging.getLogger(__name__)

SHORT_HASH: Final = 7
NEVER_INSTALLED: Final = "Not installed yet"
SUMMARY_LIMIT: Final = 255
"""Home Assistant shows at most this many characters of a release summary."""
_HASH_AT_END: Final = re.compile(r"\b([0-9a-f]{7,12})$")


def latest_version(esphome_version: str, fingerprint: str) -> str:
    """What the configuration would build now: "2026.10.0 · 1a2b3c4"."""
    return f"{esphome_version} · {fingerprint[:SHORT_HASH]}"


def installed_version(fingerprint: str | None, build: Mapping[str, Any] | None) -> str:
    """The installed build: "2026.10.0 · 2026-11-27 16:41 UTC · 1a2b3c4" (what is known)."""
    if fingerprint is None:
        return NEVER_INSTALLED
    parts: list[str] = []
    if build is not None and build.get("fingerprint") == fingerprint:
        if isinstance(version := build.get("esphome_version"), str):
            parts.append(version)
        if built := _time(build.get("built_at")):
            parts.append(built)
    return " · ".join([*parts, fingerprint[:SHORT_HASH]])


def running_version(running: RunningBuild) -> str:
    """What a device running another build runs: "2026.9.0 · 2026-11-01 08:00 UTC" (no hash)."""
    built = readable_time(running.compilation_time)
    return " · ".join([running.esphome_version, *([built] if built else [])])


def other_build_summary(running: RunningBuild, esphome_version: str) -> str:
    """Say that the device runs another build than this configuration's."""
    built = readable_time(running.compilation_time)
    text = f"The device runs ESPHome {running.esphome_version}"
    text += f" built {built}" if built else ""
    text += f"; this configuration builds ESPHome {esphome_version}"
    if folder := readable_time(running.folder_build_time):
        text += f" (last built {folder})"
    text += ". Install puts this configuration's build on it."
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def running_build_details(running: RunningBuild, fingerprint: str) -> dict[str, Any]:
    """The installed-build record of a build the device says it runs (no install seen)."""
    return {
        "fingerprint": fingerprint,
        "esphome_version": running.esphome_version,
        "built_at": running.built_at,
        "compilation_time": running.compilation_time,
        "installed_at": None,
        "source": "device",
    }


def same_build(latest: str, installed: str) -> bool:
    """True when two version texts name the same build (their hashes are equal)."""
    latest_hash, installed_hash = _hash(latest), _hash(installed)
    return latest_hash is not None and latest_hash == installed_hash


def release_summary(
    *,
    fingerprint: str,
    installed: str | None,
    build: Mapping[str, Any] | None,
    current: BuildInputs | None,
) -> str | None:
    """Say what changed since the installed build; None when it is the current one."""
    if installed == fingerprint:
        return None
    if installed is None:
        return (
            "Never installed by ESPHome Pipeline: Install builds this configuration and "
            "uploads it to the device."
        )
    same = build is not None and build.get("fingerprint") == installed
    inputs = build.get("inputs") if build is not None and same else None
    if current is None or not isinstance(inputs, Mapping):
        return "The configuration changed since the installed build."
    changes: list[str] = []
    files = _changed(inputs.get("files"), current.files)
    if files:
        changes.append("files changed: " + ", ".join(files))
    secrets = _changed(inputs.get("secrets"), current.secrets)
    if secrets:
        changes.append("secrets changed: " + ", ".join(secrets))
    before = inputs.get("esphome_version")
    if isinstance(before, str) and before != current.esphome_version:
        changes.append(f"ESPHome {before} → {current.esphome_version}")
    if not changes:
        return "The configuration changed since the installed build."
    text = "Since the installed build: " + "; ".join(changes) + "."
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def _changed(before: object, now: Mapping[str, str]) -> list[str]:
    """Names whose digest differs, appeared or disappeared (sorted)."""
    old = before if isinstance(before, Mapping) else {}
    return sorted(name for name in {*old, *now} if old.get(name) != now.get(name))


def _hash(version: str) -> str | None:
    match = _HASH_AT_END.search(version)
    return None if match is None else match[1][:SHORT_HASH]


def _time(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.strftime("%Y-%m-%d %H:%M UTC")


class ReleaseRecorder:
    """Stores what an installed build was made of, when its upload completes."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        store: EntryStore,
        *,
        config_dir: Path,
        esphome_version: str,
        nodes: Callable[[], Mapping[str, NodeInfo]],
        last_build: Callable[[str], BuildRecord | None],
        on_recorded: Callable[[str], None],
    ) -> None:
        """Write to `store`; `nodes` and `last_build` say what is current and what was built.

        `on_recorded(configuration)` is called once a record is in the store (its entities
        show it).
        """
        self._hass = hass
        self._entry = entry
        self._store = store
        self._config_dir = config_dir
        self._esphome_version = esphome_version
        self._nodes = nodes
        self._last_build = last_build
        self._on_recorded = on_recorded
        self._recording: set[str] = set()

    @callback
    def job_completed(self, job: Job) -> None:
        """Record the build a completed upload installed (once per installed build).

        At a start every completed upload of the history comes by again: a build already
        recorded, or being recorded, is not recorded twice.
        """
        if job.job_type is not JobType.UPLOAD:
            return
        fingerprint = self._store.installed.get(job.configuration)
        recorded = self._store.installed_builds.get(job.configuration, {})
        if (
            fingerprint is None
            or recorded.get("fingerprint") == fingerprint
            or job.configuration in self._recording
        ):
            return
        self._recording.add(job.configuration)
        build = self._last_build(job.configuration)
        node = self._nodes().get(job.configuration)
        details: dict[str, Any] = {
            "job_id": job.job_id,
            "fingerprint": fingerprint,
            "esphome_version": self._esphome_version,
            "built_at": build.finished_at if build and build.fingerprint == fingerprint else None,
            "installed_at": job.finished_at,
        }
        # The file list is that of the build only while the files are still as built.
        same_files = node is not None and node.fingerprint == fingerprint
        self._entry.async_create_task(
            self._hass,
            self._async_record(job.configuration, details, with_inputs=same_files),
            "record installed build",
        )

    async def _async_record(
        self, configuration: str, details: dict[str, Any], *, with_inputs: bool
    ) -> None:
        try:
            if details["built_at"] is not None:
                # The build just uploaded is the data folder's: what the device will report.
                identity = await self._hass.async_add_executor_job(
                    read_build_identity, self._config_dir / ESPHOME_DATA_DIR, configuration
                )
                if identity is not None and identity.build_time_str:
                    details["compilation_time"] = identity.build_time_str
            if with_inputs:
                inputs = await async_read_inputs(
                    self._hass, self._config_dir, configuration, self._esphome_version
                )
                if inputs is not None:
                    details["inputs"] = inputs.to_dict()
            self._store.set_installed_build(configuration, details)
        finally:
            self._recording.discard(configuration)
        self._on_recorded(configuration)
        await self._store.async_save()


async def async_read_inputs(
    hass: HomeAssistant, config_dir: Path, configuration: str, esphome_version: str
) -> BuildInputs | None:
    """Read a configuration's inputs off the event loop; None when it cannot be read."""
    try:
        return await hass.async_add_executor_job(
            lambda: read_inputs(config_dir, configuration, esphome_version=esphome_version)
        )
    except ConfigurationReadError as err:
        _LOGGER.debug("Cannot read %s for its release summary: %s", configuration, err)
        return None
