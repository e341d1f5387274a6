"""What each configuration's device runs: asked at entry start, again when a device reconnects.

Owns the entry's survey of its devices (engine/device/survey.py) and the answers it gave:
each configuration's `RunningBuild` (device_runs.py), which the `firmware` update entity shows.

- When: once when the entry starts, as a background task of the entry (setup never waits for a
  slow or offline device; unloading cancels it); again for a device that Home Assistant's
  zeroconf sees announce itself (`_esphomelib._tcp`, when the zeroconf integration is loaded);
  and every `RESURVEY_INTERVAL` for the devices that have not answered yet.
- How: the native API question of `device_truth` (the configuration's encryption key), at
  most `SURVEY_CONCURRENCY` devices at once, `SURVEY_TIMEOUT` seconds each, only to the address
  the configuration names (`use_address`, a static IP, `<name>.local`; a `host:` node runs on
  this machine: 127.0.0.1). Configurations without a build in ESPHome's data folder or without
  `api:` are not asked.
- What follows: a device running a build whose fingerprint is known is recorded as installed
  (installed.record_running_build: no reinstall needed); a device running another build keeps
  that answer here (not stored), shown as the installed version with a release summary saying
  so. No answer (offline, no API) changes nothing. An answer stays until the device answers
  otherwise or an upload of its configuration completes (the install is newer news).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime, timedelta
from functools import partial
import logging
from typing import TYPE_CHECKING, Any, Final

from homeassistant.components import zeroconf
from homeassistant.core import CALLBACK_TYPE, callback
from homeassistant.helpers.event import async_track_time_interval
from zeroconf.asyncio import AsyncServiceBrowser

from .configurations import HOST_PLATFORM, HOST_PLATFORM_PORT
from .const import DOMAIN
from .device_runs import RunningBuild, data_folder_fingerprint, running_build
from .engine.device.build_records import ApiEndpoint, BuildIdentity
from .engine.device.native_api import DeviceTruth
from .engine.device.survey import SURVEY_CONCURRENCY, SurveyAnswer, survey
from .engine.fingerprint_inputs import ESPHOME_DATA_DIR
from .engine.models import Job, JobStatus, JobType
from .engine.skip import BuildRecord
from .installed import record_running_build
from .release import async_read_inputs, running_build_details
from .skip_wiring import ask_device

if TYPE_CHECKING:
    from .coordinator import PipelineCoordinator

_LOGGER = logging.getLogger(__name__)

SURVEY_TIMEOUT: Final = 5.0
"""Seconds one device gets to answer (connect, handshake, DeviceInfo)."""
RESURVEY_INTERVAL: Final = timedelta(minutes=5)
"""How often the devices that have not answered yet are asked again."""
ESPHOME_SERVICE: Final = "_esphomelib._tcp.local."
"""What ESPHome devices announce over mDNS (the instance name is the node name)."""

AnswerListener = Callable[[], None]


class DeviceSurvey:
    """The entry's question "what does each device run?", and the answers."""

    def __init__(
        self,
        coordinator: PipelineCoordinator,
        last_build: Callable[[str], BuildRecord | None],
    ) -> None:
        """Ask for `coordinator`'s configurations; `last_build` is the engine's build record."""
        self._coordinator = coordinator
        self._hass = coordinator.hass
        self._entry = coordinator.config_entry
        self._last_build = last_build
        self._data_dir = coordinator.config_dir / ESPHOME_DATA_DIR
        self._answers: dict[str, RunningBuild] = {}
        self._listeners: dict[str, list[AnswerListener]] = {}
        self._asking: set[str] = set()
        # An upload completing makes a question asked before it stale (see _async_take).
        self._installs: dict[str, int] = {}
        self._limit = asyncio.Semaphore(SURVEY_CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()

    def answer(self, configuration: str) -> RunningBuild | None:
        """What the configuration's device said it runs, or None (not asked, no answer)."""
        return self._answers.get(configuration)

    @callback
    def listen(self, configuration: str, listener: AnswerListener) -> CALLBACK_TYPE:
        """Call `listener` when the configuration's answer changes; return unsubscribe."""
        listeners = self._listeners.setdefault(configuration, [])
        listeners.append(listener)

        @callback
        def unsubscribe() -> None:
            listeners.remove(listener)

        return unsubscribe

    async def async_settled(self) -> None:
        """Return once every question asked so far is answered and its answer handled."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    @callback
    def _background(self, job: Coroutine[Any, Any, None], name: str) -> None:
        """Run `job` as a background task of the entry (cancelled when it unloads)."""
        task = self._entry.async_create_background_task(self._hass, job, f"{DOMAIN} {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @callback
    def start(self) -> None:
        """Ask every device in the background; watch for reconnects until the entry unloads."""
        self._entry.async_on_unload(
            async_track_time_interval(
                self._hass, self._on_resurvey_timer, RESURVEY_INTERVAL, cancel_on_shutdown=True
            )
        )
        self._background(self._async_start(), f"device survey {self._entry.entry_id}")

    async def _async_start(self) -> None:
        if "zeroconf" in self._hass.config.components:
            await self._async_watch_announcements()
        await self._async_ask(self._coordinator.nodes)

    async def _async_watch_announcements(self) -> None:
        """Browse `_esphomelib._tcp` on Home Assistant's shared zeroconf instance."""
        shared = await zeroconf.async_get_async_instance(self._hass)
        browser = AsyncServiceBrowser(
            shared.zeroconf, ESPHOME_SERVICE, handlers=[self._on_announcement]
        )
        self._entry.async_on_unload(browser.async_cancel)

    @callback
    def _on_announcement(self, *, name: str, state_change: Any, **_: Any) -> None:
        """A device announced itself (again): ask the configurations named like it."""
        if getattr(state_change, "name", "") not in ("Added", "Updated"):
            return
        instance = name.removesuffix("." + ESPHOME_SERVICE)
        named = [
            configuration
            for configuration, node in self._coordinator.nodes.items()
            if _answers_to(instance, node.name)
        ]
        if named:
            _LOGGER.debug("%s announced itself: asking %s", instance, ", ".join(named))
            # Uploads held "device offline" start at once, not at the next presence probe.
            self._coordinator.devices_seen(named)
            self._ask_in_background(named)

    @callback
    def _on_resurvey_timer(self, _now: datetime) -> None:
        unanswered = [name for name in self._coordinator.nodes if name not in self._answers]
        if unanswered:
            self._ask_in_background(unanswered)

    @callback
    def _ask_in_background(self, configurations: Iterable[str]) -> None:
        self._background(self._async_ask(configurations), "device question")

    async def _async_ask(self, configurations: Iterable[str]) -> None:
        """Ask these configurations' devices (not those being asked already)."""
        names = [name for name in configurations if name not in self._asking]
        if not names:
            return
        self._asking.update(names)
        installs = {name: self._installs.get(name, 0) for name in names}
        nodes = self._coordinator.nodes
        addresses = {
            name: HOST_PLATFORM_PORT
            for name in names
            if (node := nodes.get(name)) is not None and node.platform == HOST_PLATFORM
        }
        try:
            await survey(
                self._data_dir,
                names,
                ask_device=self._ask_device,
                addresses=addresses,
                on_answer=lambda answer: self._take(answer, installs[answer.configuration]),
            )
        finally:
            self._asking.difference_update(names)

    async def _ask_device(self, endpoint: ApiEndpoint, build: BuildIdentity) -> DeviceTruth:
        # One bound for every survey of the entry: a reconnect never adds to a full start.
        async with self._limit:
            return await ask_device(self._hass, endpoint, build, SURVEY_TIMEOUT)

    @callback
    def _take(self, answer: SurveyAnswer, installs: int) -> None:
        self._background(self._async_take(answer, installs), "device answer")

    async def _async_take(self, answer: SurveyAnswer, installs: int) -> None:
        """Turn one answer into what the entity shows (and the installed record)."""
        configuration = answer.configuration
        _LOGGER.debug("%s: %s", configuration, answer.truth.summary)
        if answer.truth.device is None:
            return  # no answer: what is known stays
        coordinator = self._coordinator
        folder_fingerprint = None
        if answer.truth.runs_build:
            folder_fingerprint = await self._hass.async_add_executor_job(
                partial(
                    data_folder_fingerprint,
                    coordinator.config_dir,
                    configuration,
                    answer.build,
                    last_build=self._last_build(configuration),
                    esphome_version=coordinator.esphome_version,
                )
            )
        store = coordinator.store
        running = running_build(
            answer,
            folder_fingerprint=folder_fingerprint,
            installed=store.installed.get(configuration),
            installed_build=store.installed_builds.get(configuration),
        )
        if running is None or self._stale(configuration, installs):
            return  # another device answered, or an install completed meanwhile
        if running.fingerprint is not None:
            await self._async_record(configuration, running, running.fingerprint, installs)
        if self._stale(configuration, installs):
            return
        if self._answers.get(configuration) != running:
            self._answers[configuration] = running
            self._notify(configuration)

    def _stale(self, configuration: str, installs: int) -> bool:
        """An upload of the configuration completed since the question was asked."""
        return self._installs.get(configuration, 0) != installs

    async def _async_record(
        self, configuration: str, running: RunningBuild, fingerprint: str, installs: int
    ) -> None:
        """Record a known build the device runs as installed, with its inputs when current."""
        coordinator = self._coordinator
        details = running_build_details(running, fingerprint)
        node = coordinator.nodes.get(configuration)
        recorded = coordinator.store.installed_builds.get(configuration, {})
        if (
            recorded.get("fingerprint") != fingerprint
            and node is not None
            and node.fingerprint == fingerprint
        ):
            inputs = await async_read_inputs(
                self._hass, coordinator.config_dir, configuration, coordinator.esphome_version
            )
            if inputs is not None:
                details["inputs"] = inputs.to_dict()
        if self._stale(configuration, installs):
            return
        if record_running_build(coordinator.store, configuration, details):
            _LOGGER.info(
                "%s runs the build %s: recorded as installed", configuration, fingerprint[:7]
            )
            coordinator.listeners.configurations_changed([configuration])
            await coordinator.store.async_save()

    @callback
    def job_completed(self, job: Job) -> None:
        """An upload completed: its install is newer than any answer given before it."""
        if job.job_type is not JobType.UPLOAD or job.status is not JobStatus.COMPLETED:
            return
        configuration = job.configuration
        self._installs[configuration] = self._installs.get(configuration, 0) + 1
        if self._answers.pop(configuration, None) is not None:
            self._notify(configuration)

    @callback
    def _notify(self, configuration: str) -> None:
        for listener in list(self._listeners.get(configuration, ())):
            listener()


def _answers_to(instance: str, node_name: str) -> bool:
    """The mDNS instance is the node: its name, or it with the MAC suffix ESPHome may add."""
    if instance == node_name:
        return True
    prefix, _, suffix = instance.rpartition("-")
    return prefix == node_name and len(suffix) == 6
