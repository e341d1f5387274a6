"""The coordinator: owns one entry's engine, publishes its state and is the one way to it.

Owns: the life cycle (load the store, scan, restore the queue, run the lanes as a background
task of the entry, rescan every `RESCAN_INTERVAL` and on "check for updates", stop), the
intake of engine events, and the request facade that actions, buttons, the update entity and
diagnostics use. Nothing else in the Home Assistant layer touches the engine.

Push only: each status change fires `esphome_pipeline_job`, in order (a burst in slices of
`job_events.JobEventFirer`); only the changed configuration's entities write state
(`push.PushScheduler`); all of them only when configurations come or go, or the engine starts
or ends.

Requests that name configurations read the folder first, so a file saved a moment ago can be
targeted, a deleted one cannot, and an install or compile is labelled with the fingerprint of
the file as it is now.

Collaborators: `configurations.Configurations` (the folder, devices, issues),
`announce.Announcer` (the event's data, one log line per job start and end),
`installed.InstalledRecord`, `release.ReleaseRecorder` (what an installed build was made
of), `device_truth.DeviceSurvey` (what each device runs), `auto_install.AutoInstaller` and
`snapshot.build_snapshot` (what the entities show).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
import logging
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .announce import PUSH_LOGGER, Announcer
from .auto_install import AutoInstaller
from .configurations import Configurations
from .const import DOMAIN, PORT_OTA, RESCAN_INTERVAL
from .device_truth import DeviceSurvey
from .engine.events import EventKind, JobEvent
from .engine.executors import Executor
from .engine.fingerprint import Fingerprinter, NodeInfo
from .engine.firmware import FirmwareEngine, InstallChain
from .engine.models import Job, JobStatus, QueueStatus
from .engine.routing import Routing
from .engine.streams import DEFAULT_MAX_LINES as MAX_LINES, JobStream
from .installed import InstalledRecord
from .issues import async_report_dropped_jobs
from .job_events import JobEventFirer
from .push import PushScheduler
from .release import ReleaseRecorder
from .snapshot import LatestJobs, PipelineSnapshot, build_snapshot, updated_snapshot
from .store import EntryStore

if TYPE_CHECKING:
    from .peers import PeerManager

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class EsphomePipelineRuntimeData:
    """What a loaded entry holds: its coordinator (which owns the engine)."""

    coordinator: PipelineCoordinator
    peers: PeerManager


type EsphomePipelineConfigEntry = ConfigEntry[EsphomePipelineRuntimeData]


class PipelineCoordinator(DataUpdateCoordinator[PipelineSnapshot]):
    """Owns one entry's engine, publishes its state and forwards every request to it."""

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
        fingerprinter: Fingerprinter | None = None,
    ) -> None:
        """Create the coordinator; `async_start` loads the engine and starts the lanes."""
        super().__init__(
            hass,
            PUSH_LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            # The folder is read every RESCAN_INTERVAL and when Home Assistant asks for a
            # refresh (`homeassistant.update_entity`, Settings -> Updates "Check for updates").
            update_interval=RESCAN_INTERVAL,
            always_update=False,
        )
        self._engine = engine
        self.store = store
        self.esphome_version = esphome_version
        self.config_dir = engine.config_dir
        self._configurations = Configurations(
            hass,
            entry,
            engine.config_dir,
            esphome_version=esphome_version,
            on_change=self._on_configurations_changed,
            fingerprinter=fingerprinter,
        )
        self._announcer = Announcer(hass, entry.entry_id, lambda: self._configurations.nodes)
        self._installed = InstalledRecord(hass, entry, store, self._last_build_fingerprint)
        self._release = ReleaseRecorder(
            hass,
            entry,
            store,
            config_dir=engine.config_dir,
            esphome_version=esphome_version,
            nodes=lambda: self._configurations.nodes,
            last_build=self._engine.last_build,
            on_recorded=self._on_release_recorded,
        )
        self.devices = DeviceSurvey(self, self._engine.last_build)
        self._auto_installer = (
            AutoInstaller(hass, entry, store, self._configurations, self.async_install)
            if auto_install
            else None
        )
        self._announced: dict[str, JobStatus] = {}
        self._latest = LatestJobs()
        self._push = PushScheduler(hass, self._publish_changes)
        self._job_events = JobEventFirer(hass)
        self._known_nodes: Mapping[str, NodeInfo] = {}
        self._published = False
        self._engine_running = False
        self._unsubscribe: Callable[[], None] | None = None
        self._stopping = False

    @property
    def nodes(self) -> Mapping[str, NodeInfo]:
        """The configurations of the last scan."""
        return self._configurations.nodes

    @property
    def unreadable(self) -> Mapping[str, str]:
        """Configurations the last scan could not parse, with the reason."""
        return self._configurations.unreadable

    @property
    def compile_workers(self) -> int:
        """How many compiles may run at once on this machine."""
        return self._engine.compile_workers

    @property
    def upload_slots(self) -> int:
        """How many uploads may run at once."""
        return self._engine.upload_slots

    @property
    def engine_running(self) -> bool:
        """True while the lanes run."""
        return self._engine_running

    # ---------------------------------------------------------------------- life cycle

    async def async_start(self) -> None:
        """Scan, restore the queue, subscribe, then start the lanes as a background task."""
        await self.store.async_load()
        await self._configurations.async_rescan()
        self._configurations.remove_stale_devices()
        await self._engine.load()
        dropped = self._engine.dropped
        if dropped.count:
            # Kept until the user confirms it: a clean start later does not undo the loss.
            async_report_dropped_jobs(
                self.hass, self.config_entry.entry_id, dropped.count, dropped.reasons
            )
        # Oldest first, so the newest build wins; this also records an upload that completed
        # while Home Assistant was down (the engine restores it as completed).
        for job in self._engine.jobs(statuses={JobStatus.COMPLETED}):
            self._installed.job_completed(job)
        self._unsubscribe = self._engine.subscribe(self._on_job_event)
        self._engine_running = True
        task = self.config_entry.async_create_background_task(
            self.hass, self._engine.run(), f"{DOMAIN} lanes {self.config_entry.entry_id}"
        )
        task.add_done_callback(self._on_engine_done)
        self._publish_all()
        self.devices.start()

    async def async_stop(self) -> None:
        """Stop the engine (running jobs come back queued next start) and every timer."""
        self._stopping = True
        if self._auto_installer is not None:
            self._auto_installer.stop()
        self._push.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._job_events.flush()  # a burst's last events: fired, never dropped
        # Nothing watches the files once unloaded: their issues go (a setup raises them again).
        self._configurations.clear_issues()
        await self._engine.stop()

    async def async_rescan(self) -> None:
        """Scan the folder now and apply the result (devices, issues, auto-install, entities)."""
        await self._configurations.async_rescan()

    async def _async_update_data(self) -> PipelineSnapshot:
        """Rescan; what it changed is already pushed, so the snapshot is returned as it is."""
        await self.async_rescan()
        return self.data

    @callback
    def _on_configurations_changed(self) -> None:
        if self._auto_installer is not None:
            self._auto_installer.check()
        nodes = self._configurations.nodes
        known, self._known_nodes = self._known_nodes, dict(nodes)
        if not self._published or self._stopping:
            return
        if known.keys() != nodes.keys():
            # Configurations came or went: entities are added or turn unavailable.
            self._publish_all()
        else:
            # Most scans change nothing; an edited file republishes only its own entities.
            self._push.configurations_changed(
                [name for name, node in nodes.items() if known.get(name) != node]
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
        self._publish_all()

    # -------------------------------------------------------------------------- requests

    async def async_targets(self, configurations: Sequence[str]) -> list[str]:
        """Rescan, then return the named configurations once each, in order (checked files).

        Raises a translated `ServiceValidationError` for a name the folder does not hold.
        """
        return await self._configurations.async_targets(configurations)

    async def async_install(
        self, configurations: Sequence[str], *, port: str = PORT_OTA, force: bool = False
    ) -> list[InstallChain]:
        """Rescan, then queue install chains labelled with the current fingerprints."""
        names = await self.async_targets(configurations)
        chains: list[InstallChain] = []
        for group_port, group in (await self._configurations.async_by_port(names, port)).items():
            chains += await self._engine.install(
                group,
                port=group_port,
                force=force,
                fingerprints=self._configurations.fingerprints(group),
            )
        return chains

    async def async_compile(
        self, configurations: Sequence[str], *, force: bool = False
    ) -> list[Job]:
        """Rescan, then queue compiles labelled with the current fingerprints."""
        names = await self.async_targets(configurations)
        return await self._engine.compile(
            names, force=force, fingerprints=self._configurations.fingerprints(names)
        )

    async def async_upload(
        self, configurations: Sequence[str], *, port: str = PORT_OTA, force: bool = False
    ) -> list[Job]:
        """Rescan, then queue uploads of the current builds."""
        names = await self.async_targets(configurations)
        jobs: list[Job] = []
        for group_port, group in (await self._configurations.async_by_port(names, port)).items():
            jobs += await self._engine.upload(group, port=group_port, force=force)
        return jobs

    async def async_clean(self, configurations: Sequence[str]) -> list[Job]:
        """Rescan, then queue cleans (each cancels its configuration's active jobs first)."""
        return await self._engine.clean(await self.async_targets(configurations))

    async def async_reset_build_env(self) -> Job:
        """Cancel every active job, then queue the removal of all build files."""
        return await self._engine.reset_build_env()

    async def async_cancel(self, job_id: str) -> list[str]:
        """Cancel a job and the jobs that depend on it; return the ids cancelled."""
        return await self._engine.cancel(job_id)

    async def async_cancel_configurations(self, configurations: Sequence[str]) -> list[str]:
        """Rescan, then cancel every active job of these configurations; return the ids."""
        return await self._engine.cancel_configurations(await self.async_targets(configurations))

    def jobs(
        self,
        *,
        statuses: Collection[JobStatus] | None = None,
        configurations: Collection[str] | None = None,
    ) -> list[Job]:
        """Return the jobs (oldest first), optionally only these statuses / configurations."""
        return self._engine.jobs(statuses=statuses, configurations=configurations)

    def get_job(self, job_id: str) -> Job | None:
        """Return the job with this id, or None."""
        return self._engine.get(job_id)

    def queue_status(self) -> QueueStatus:
        """Return what runs on each lane and how many jobs wait."""
        return self._engine.queue_status()

    def subscribe(self, callback: Callable[[JobEvent], None]) -> Callable[[], None]:
        """Call `callback` for every engine job event (it must not wait); return unsubscribe."""
        return self._engine.subscribe(callback)

    @callback
    def async_add_build_peer(self, label: str, executor: Executor) -> None:
        """Let build peer `label` take compiles, run by `executor` (peers.py)."""
        self._engine.add_build_peer(label, executor)

    async def async_remove_build_peer(self, label: str) -> None:
        """Stop using build peer `label`; its running compile goes back to the queue."""
        await self._engine.remove_build_peer(label)

    @callback
    def devices_seen(self, configurations: Collection[str]) -> None:
        """These configurations' devices announced themselves: held uploads start now."""
        for configuration in configurations:
            self._engine.device_seen(configuration)

    @callback
    def set_build_routing(self, routing: Routing) -> None:
        """Route compiles by `routing` from now on (peers.py keeps it current)."""
        self._engine.set_routing(routing)

    def open_stream(self, *, job_id: str | None = None, max_lines: int = MAX_LINES) -> JobStream:
        """Return a bounded, coalescing stream of job events (of one job, or all); close it."""
        return self._engine.open_stream(job_id=job_id, max_lines=max_lines)

    # -------------------------------------------------------------------- engine events

    @callback
    def _on_job_event(self, event: JobEvent) -> None:
        job = event.job
        if event.kind is EventKind.OUTPUT:
            return
        self._latest.observe(job)
        if event.kind is EventKind.PROGRESS:
            self._push.progress(job)
            return
        # The engine also reports `held` flips as status events; the HA event is promised
        # per status change, so it fires only when the status differs from the last one sent.
        # Its data is taken here, in the engine's order; a burst fires in slices (job_events).
        if self._announced.get(job.job_id) is not job.status:
            self._job_events.fire(self._announcer.event_data(job))
            self._announcer.log(job)
            if job.is_terminal:
                self._announced.pop(job.job_id, None)
            else:
                self._announced[job.job_id] = job.status
            if job.status is JobStatus.COMPLETED:
                self._job_completed(job)
        self._push.status(job)

    @callback
    def _on_release_recorded(self, configuration: str) -> None:
        if self._published and not self._stopping:
            self._push.configurations_changed([configuration])

    @callback
    def _job_completed(self, job: Job) -> None:
        self._installed.job_completed(job)
        self._release.job_completed(job)
        self.devices.job_completed(job)

    def _last_build_fingerprint(self, configuration: str) -> str | None:
        build = self._engine.last_build(configuration)
        return None if build is None else build.fingerprint

    # ------------------------------------------------------------------------ pushes

    @property
    def listeners(self) -> PushScheduler:
        """Where entities (per configuration, or the queue) and whole-fleet views listen."""
        return self._push

    @callback
    def _publish_all(self) -> None:
        """Rebuild the whole snapshot and tell every listener (rare: start, scan, engine end)."""
        self._push.cancel_pending()
        self._published = True
        jobs = self._engine.jobs()
        self._latest = LatestJobs(jobs)
        self.async_set_updated_data(
            build_snapshot(
                nodes=self._configurations.nodes,
                jobs=jobs,
                installed=self.store.installed,
                installed_builds=self.store.installed_builds,
                queue=self._engine.queue_status(),
                engine_running=self._engine_running,
            )
        )
        self._push.notify_changed()

    @callback
    def _publish_changes(self, configurations: Collection[str], queue: bool) -> None:
        """Update the snapshot for what changed and tell only those listeners."""
        if not self._published:
            return
        snapshot, changed, queue_changed = updated_snapshot(
            self.data,
            configurations,
            nodes=self._configurations.nodes,
            latest=self._latest,
            installed=self.store.installed_view,
            installed_builds=self.store.installed_builds_view,
            job_by_id=self._engine.get,
            # The hub's view reads the whole table: at most once per loop iteration, when
            # the queue moved (a job changed status), never per progress step.
            queue=(self._engine.queue_status(), self._engine.jobs) if queue else None,
        )
        # Set without `async_set_updated_data`: that would call every entity's listener.
        self.data = snapshot
        self._push.notify(changed, queue_changed)
