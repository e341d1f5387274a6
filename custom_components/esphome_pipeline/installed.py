"""The installed fingerprint of each configuration: what its last successful install built.

When an upload completes, the configuration's installed fingerprint becomes the upload's label
(the fingerprint its install chain was queued with); a plain upload without a label takes the
label of the configuration's last successful build (the engine's build record). The record
lives in the entry's store; the update entity shows it as the installed version.

When a device says it runs a build whose fingerprint is known (device_truth.py,
device_runs.py), `record_running_build` records that build as installed, without an install.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback

from .engine.models import Job, JobType
from .store import EntryStore


class InstalledRecord:
    """Records the installed fingerprint when an upload completes."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        store: EntryStore,
        last_build: Callable[[str], str | None],
    ) -> None:
        """Write to `store`; `last_build` names the build a plain upload flashed."""
        self._hass = hass
        self._entry = entry
        self._store = store
        self._last_build = last_build

    @callback
    def job_completed(self, job: Job) -> None:
        """Record the fingerprint a completed upload installed (saved in the background)."""
        if job.job_type is not JobType.UPLOAD:
            return
        fingerprint = job.fingerprint or self._last_build(job.configuration)
        if fingerprint and self._store.installed.get(job.configuration) != fingerprint:
            self._store.set_installed(job.configuration, fingerprint)
            self._entry.async_create_task(
                self._hass, self._store.async_save(), "save installed fingerprint"
            )


def record_running_build(store: EntryStore, configuration: str, details: dict[str, Any]) -> bool:
    """Record the build a device runs as installed (in memory; `async_save` writes it).

    `details` is its installed-build record (release.running_build_details), naming its
    fingerprint. Returns False when exactly that build is already recorded.
    """
    fingerprint = details["fingerprint"]
    recorded = store.installed_builds.get(configuration, {})
    if store.installed.get(configuration) == fingerprint and recorded.get("fingerprint") == (
        fingerprint
    ):
        # Already installed: keep its record (how and when), learn its compilation time.
        if recorded.get("compilation_time") == details.get("compilation_time"):
            return False
        details = {**recorded, "compilation_time": details.get("compilation_time")}
    store.set_installed(configuration, fingerprint)
    store.set_installed_build(configuration, details)
    return True
