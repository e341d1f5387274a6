"""The coordinator: owns the engine and turns its events into Home Assistant state.

Push only, no polling: every engine status change fires `esphome_pipeline_job` and pushes a
new snapshot; progress pushes only when a job's percentage changed; output lines push nothing.
Pushes within one loop iteration are coalesced into one.

It also keeps the configuration list (a folder scan at start, every `RESCAN_INTERVAL` and
before every action), updates and removes the configuration devices to match the files,
records the fingerprint of each successful install, and runs auto-install.

Installed fingerprint: when an upload completes, the configuration's installed fingerprint
becomes the upload's label (the fingerprint its install chain was queued with); a plain upload
without a label takes the label of the configuration's last completed compile.

Auto-install (option): a configuration whose fingerprint differs from its installed one
(or, when nothing was ever installed, from the fingerprint first seen in this run) and that
auto-install has not queued before is installed once the same fingerprint is still current
`AUTO_INSTALL_SETTLE` seconds later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
import logging

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import async_call_later, async_track_time_interval
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .const import (
    AUTO_INSTALL_SETTLE,
    DOMAIN,
    EVENT_JOB,
    HOST_PLATFORM,
    HOST_PLATFORM_PORT,
    PORT_OTA,
    RESCAN_INTERVAL,
)
from .discovery import ScanResult, scan_config_dir
from .engine.events import EventKind, JobEvent
from .engine.fingerprint import NodeInfo
from .engine.models import Job, JobStatus, JobType, QueueStatus
from .engine.queue import FirmwareEngine, InstallChain
from .issues import async_clear_unreadable, async_report_unreadable
from .store import EntryStore

_LOGGER = logging.getLogger(__name__)

COMPILE_SHARE = 0.8
"""Share of an install's percentage given to the compile; the upload gets the rest.

A build takes minutes and an OTA upload seconds, so this keeps the bar moving evenly."""


@dataclass(frozen=True, kw_only=True, slots=True)
class JobView:
    """The fields entities show of one job, copied when the snapshot is taken."""

    job_id: str
    status: JobStatus
    progress: int | None
    held: bool

    @classmethod
    def of(cls, job: Job) -> JobView:
        """Copy the fields of a live job."""
        return cls(job_id=job.job_id, status=job.status, progress=job.progress, held=job.held)


@dataclass(frozen=True, kw_only=True, slots=True)
class ConfigurationState:
    """One configuration as entities see it."""

    node: NodeInfo
    compile: JobView | None
    upload: JobView | None
    installed: str | None
    install_in_progress: bool
    install_percentage: int | None


@dataclass(frozen=True, kw_only=True, slots=True)
class PipelineSnapshot:
    """Everything the entities of one entry show."""

    configurations: Mapping[str, ConfigurationState]
    queue: QueueStatus
    engine_running: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class EsphomePipelineRuntimeData:
    """What a loaded entry holds: its coordinator (which owns the engine)."""

    coordinator: PipelineCoordinator


type EsphomePipelineConfigEntry = ConfigEntry[EsphomePipelineRuntimeData]


def device_identifier(entry_id: str, configuration: str) -> tuple[str, str]:
    """Return the device registry identifier of a configuration device."""
    return (DOMAIN, f"{entry_id}_{configuration}")


class PipelineCoordinator(DataUpdateCoordinator[PipelineSnapshot]):
    """Owns one entry's engine and publishes its state."""

    config_entry: ConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        *,
        engine: FirmwareEngine,
        store: EntryStore,
        esphome_version: str,
        auto_install: bool,
    ) -> None:
        """Create the coordinator; `async_start` loads the engine and starts the lanes."""
        super().__init__(
            hass, _LOGGER, config_entry=entry, name=f"{DOMAIN} {entry.title}", update_interval=None
        )
        self.engine = engine
        self.store = store
        self.esphome_version = esphome_version
        self.config_dir = engine.config_dir
        self._auto_install = auto_install
        self._nodes: dict[str, NodeInfo] = {}
        self._unreadable: dict[str, str] = {}
        self._built: dict[str, str] = {}
        self._baseline: dict[str, str] = {}
        self._pending_auto: dict[str, tuple[str, CALLBACK_TYPE]] = {}
        self._pushed_progress: dict[str, int | None] = {}
        self._announced: dict[str, JobStatus] = {}
        self._push_handle: asyncio.Handle | None = None
        self._scan_lock = asyncio.Lock()
        self._engine_running = False
        self._unsubscribe: Callable[[], None] | None = None
        self._stopping = False
        self._scan_failing = False

    @property
    def nodes(self) -> Mapping[str, NodeInfo]:
        """The configurations of the last scan."""
        return self._nodes

    @property
    def unreadable(self) -> Mapping[str, str]:
        """Configurations the last scan could not parse, with the reason."""
        return self._unreadable

    @property
    def engine_running(self) -> bool:
        """True while the lanes run."""
        return self._engine_running

    async def async_start(self) -> None:
        """Scan, restore the queue, subscribe, then start the lanes as a background task."""
        await self.store.async_load()
        await self.async_rescan()
        self._remove_stale_devices()
        await self.engine.load()
        # Oldest first, so the newest build wins; this also records an upload that completed
        # while Home Assistant was down (the engine restores it as completed).
        for job in self.engine.jobs(statuses={JobStatus.COMPLETED}):
            self._record_success(job)
        self._unsubscribe = self.engine.subscribe(self._on_job_event)
        self._engine_running = True
        task = self.config_entry.async_create_background_task(
            self.hass, self.engine.run(), f"{DOMAIN} lanes {self.config_entry.entry_id}"
        )
        task.add_done_callback(self._on_engine_done)
        self.config_entry.async_on_unload(
            async_track_time_interval(
                self.hass, self._on_rescan_timer, RESCAN_INTERVAL, cancel_on_shutdown=True
            )
        )
        self.async_set_updated_data(self._snapshot())

    async def async_stop(self) -> None:
        """Stop the engine (running jobs come back queued next start) and every timer."""
        self._stopping = True
        for _, cancel in self._pending_auto.values():
            cancel()
        self._pending_auto.clear()
        if self._push_handle is not None:
            self._push_handle.cancel()
            self._push_handle = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        # Nothing watches the files once unloaded: their issues go (a setup raises them again).
        for configuration in self._unreadable:
            async_clear_unreadable(self.hass, self.config_entry.entry_id, configuration)
        await self.engine.stop()

    # ------------------------------------------------------------------ configurations

    async def async_rescan(self) -> None:
        """Scan the folder now and apply the result (devices, issues, auto-install)."""
        async with self._scan_lock:
            try:
                result = await self.hass.async_add_executor_job(
                    partial(scan_config_dir, self.config_dir, esphome_version=self.esphome_version)
                )
            except OSError as err:
                # The folder vanished or became unreadable: keep what we know, say it once.
                if not self._scan_failing:
                    _LOGGER.warning("Cannot scan %s: %s", self.config_dir, err)
                self._scan_failing = True
                return
            if self._scan_failing:
                _LOGGER.info("%s can be scanned again", self.config_dir)
                self._scan_failing = False
            self._apply_scan(result)

    @callback
    def _apply_scan(self, result: ScanResult) -> None:
        entry_id = self.config_entry.entry_id
        for configuration in self._unreadable.keys() - result.unreadable.keys():
            async_clear_unreadable(self.hass, entry_id, configuration)
        for configuration, error in result.unreadable.items():
            if self._unreadable.get(configuration) != error:
                async_report_unreadable(
                    self.hass, entry_id, str(self.config_dir), configuration, error
                )
        self._unreadable = dict(result.unreadable)
        # A known configuration saved with a typo keeps its device (and the user's entity
        # settings) with its last readable facts; its repair issue says what is wrong.
        nodes = dict(result.nodes)
        for configuration in result.unreadable.keys() & self._nodes.keys():
            nodes[configuration] = self._nodes[configuration]

        registry = dr.async_get(self.hass)
        for configuration in self._nodes.keys() - nodes.keys():
            device = registry.async_get_device({device_identifier(entry_id, configuration)})
            if device is not None:
                registry.async_update_device(device.id, remove_config_entry_id=entry_id)
            self._cancel_auto_install(configuration)
        for configuration, node in nodes.items():
            old = self._nodes.get(configuration)
            if old is not None and old.display_name != node.display_name:
                device = registry.async_get_device({device_identifier(entry_id, configuration)})
                if device is not None:
                    registry.async_update_device(device.id, name=node.display_name)
        self._nodes = nodes
        if self._auto_install:
            self._check_auto_install()
        if self.data is not None:
            self._schedule_push()

    @callback
    def _remove_stale_devices(self) -> None:
        """Remove devices of configurations deleted while the entry was not loaded."""
        entry_id = self.config_entry.entry_id
        current = {device_identifier(entry_id, name) for name in self._nodes}
        registry = dr.async_get(self.hass)
        for device in dr.async_entries_for_config_entry(registry, entry_id):
            ours = {item for item in device.identifiers if item[0] == DOMAIN}
            if (DOMAIN, entry_id) in ours or ours & current:
                continue
            registry.async_update_device(device.id, remove_config_entry_id=entry_id)

    @callback
    def _on_rescan_timer(self, _now: datetime) -> None:
        self.config_entry.async_create_task(self.hass, self.async_rescan(), "rescan")

    # ------------------------------------------------------------------------ actions

    def fingerprints(self, configurations: Sequence[str]) -> dict[str, str]:
        """Return the current fingerprint of each known configuration."""
        return {
            name: self._nodes[name].fingerprint for name in configurations if name in self._nodes
        }

    def effective_port(self, configuration: str, port: str) -> str:
        """Return the port to pass to ESPHome: OTA of a `host:` node goes to 127.0.0.1."""
        node = self._nodes.get(configuration)
        if port == PORT_OTA and node is not None and node.platform == HOST_PLATFORM:
            return HOST_PLATFORM_PORT
        return port

    def _by_port(self, configurations: Sequence[str], port: str) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for name in configurations:
            groups.setdefault(self.effective_port(name, port), []).append(name)
        return groups

    async def async_install(
        self, configurations: Sequence[str], *, port: str = PORT_OTA, force: bool = False
    ) -> list[InstallChain]:
        """Queue install chains, labelled with the current fingerprints."""
        chains: list[InstallChain] = []
        for group_port, names in self._by_port(configurations, port).items():
            chains += await self.engine.install(
                names, port=group_port, force=force, fingerprints=self.fingerprints(names)
            )
        return chains

    async def async_compile(self, configurations: Sequence[str], *, force: bool) -> list[Job]:
        """Queue compiles, labelled with the current fingerprints."""
        return await self.engine.compile(
            configurations, force=force, fingerprints=self.fingerprints(configurations)
        )

    async def async_upload(self, configurations: Sequence[str], *, port: str) -> list[Job]:
        """Queue uploads of the current builds."""
        jobs: list[Job] = []
        for group_port, names in self._by_port(configurations, port).items():
            jobs += await self.engine.upload(names, port=group_port)
        return jobs

    # ------------------------------------------------------------------ engine events

    @callback
    def _on_job_event(self, event: JobEvent) -> None:
        job = event.job
        if event.kind is EventKind.OUTPUT:
            return
        if event.kind is EventKind.PROGRESS:
            if self._pushed_progress.get(job.job_id) != job.progress:
                self._schedule_push()
            return
        # The engine also reports `held` flips as status events; the HA event is promised
        # per status change, so it fires only when the status differs from the last one sent.
        if self._announced.get(job.job_id) is not job.status:
            self.hass.bus.async_fire(EVENT_JOB, job.public_dict())
            if job.is_terminal:
                self._announced.pop(job.job_id, None)
            else:
                self._announced[job.job_id] = job.status
            if job.status is JobStatus.COMPLETED:
                self._record_success(job)
        self._schedule_push()

    @callback
    def _record_success(self, job: Job) -> None:
        if job.job_type is JobType.COMPILE and job.fingerprint:
            self._built[job.configuration] = job.fingerprint
        elif job.job_type is JobType.UPLOAD:
            fingerprint = job.fingerprint or self._built.get(job.configuration)
            if fingerprint and self.store.installed.get(job.configuration) != fingerprint:
                self.store.set_installed(job.configuration, fingerprint)
                self.config_entry.async_create_task(
                    self.hass, self.store.async_save(), "save installed fingerprint"
                )

    @callback
    def _on_engine_done(self, task: asyncio.Task[None]) -> None:
        self._engine_running = False
        # Only Home Assistant cancels the task (unload, shutdown); the engine stops itself then.
        if self._stopping or task.cancelled():
            return
        # The lanes ended on their own: say so once; the entities turn unavailable.
        _LOGGER.error(
            "The firmware engine stopped unexpectedly: %s", task.exception() or "no error"
        )
        self.async_set_updated_data(self._snapshot())

    # ---------------------------------------------------------------------- snapshots

    @callback
    def _schedule_push(self) -> None:
        if self._push_handle is None and not self._stopping:
            self._push_handle = self.hass.loop.call_soon(self._push)

    @callback
    def _push(self) -> None:
        self._push_handle = None
        self.async_set_updated_data(self._snapshot())

    def _snapshot(self) -> PipelineSnapshot:
        latest: dict[tuple[str, JobType], Job] = {}
        jobs = self.engine.jobs()
        by_id = {job.job_id: job for job in jobs}
        for job in jobs:  # oldest first, so the newest of each kind wins
            latest[(job.configuration, job.job_type)] = job
        self._pushed_progress = {
            job.job_id: job.progress for job in jobs if job.is_terminal is False
        }
        installed = self.store.installed
        states: dict[str, ConfigurationState] = {}
        for name, node in self._nodes.items():
            compile_job = latest.get((name, JobType.COMPILE))
            upload_job = latest.get((name, JobType.UPLOAD))
            in_progress, percentage = _install_progress(upload_job, by_id)
            states[name] = ConfigurationState(
                node=node,
                compile=None if compile_job is None else JobView.of(compile_job),
                upload=None if upload_job is None else JobView.of(upload_job),
                installed=installed.get(name),
                install_in_progress=in_progress,
                install_percentage=percentage,
            )
        return PipelineSnapshot(
            configurations=states,
            queue=self.engine.queue_status(),
            engine_running=self._engine_running,
        )

    # -------------------------------------------------------------------- auto-install

    @callback
    def _check_auto_install(self) -> None:
        installed = self.store.installed
        queued = self.store.auto_installed
        for name, node in self._nodes.items():
            reference = installed.get(name) or self._baseline.setdefault(name, node.fingerprint)
            fingerprint = node.fingerprint
            if fingerprint in (reference, queued.get(name)):
                self._cancel_auto_install(name)
                continue
            pending = self._pending_auto.get(name)
            if pending is not None and pending[0] == fingerprint:
                continue
            self._cancel_auto_install(name)
            cancel = async_call_later(
                self.hass, AUTO_INSTALL_SETTLE, partial(self._auto_install_due, name, fingerprint)
            )
            self._pending_auto[name] = (fingerprint, cancel)

    @callback
    def _cancel_auto_install(self, configuration: str) -> None:
        pending = self._pending_auto.pop(configuration, None)
        if pending is not None:
            pending[1]()

    @callback
    def _auto_install_due(self, configuration: str, fingerprint: str, _now: datetime) -> None:
        self._pending_auto.pop(configuration, None)
        self.config_entry.async_create_task(
            self.hass, self._async_auto_install(configuration, fingerprint), "auto-install"
        )

    async def _async_auto_install(self, configuration: str, fingerprint: str) -> None:
        # Re-read the folder: the fingerprint must still be the one that started the timer.
        # If it moved on, this rescan has already started a timer for the new one.
        await self.async_rescan()
        node = self._nodes.get(configuration)
        if node is None or node.fingerprint != fingerprint or self._stopping:
            return
        self.store.set_auto_installed(configuration, fingerprint)
        await self.store.async_save()
        _LOGGER.info("Configuration %s changed: installing it", configuration)
        await self.async_install([configuration])


def _install_progress(upload: Job | None, jobs: Mapping[str, Job]) -> tuple[bool, int | None]:
    """Return (in progress, percentage) of a configuration's latest upload and its compile."""
    if upload is None or upload.is_terminal:
        return False, None
    compile_job = jobs.get(upload.depends_on) if upload.depends_on else None
    if compile_job is None:
        return True, upload.progress
    if compile_job.status is JobStatus.COMPLETED:
        compile_part = 100
    elif compile_job.progress is None:
        return True, None
    else:
        compile_part = compile_job.progress
    upload_part = upload.progress or 0
    return True, round(compile_part * COMPILE_SHARE + upload_part * (1 - COMPILE_SHARE))
