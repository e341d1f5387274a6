"""Sensors: each configuration's compile and upload job, and the hub's lanes and queue depth."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorStateClass
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import EsphomePipelineConfigEntry, PipelineCoordinator
from .engine.models import JobStatus
from .entity import ConfigurationEntity, HubEntity, async_add_configuration_entities
from .snapshot import JobView

# Push-updated from the coordinator; nothing to poll.
PARALLEL_UPDATES = 0

IDLE: Final = "idle"
BUSY: Final = "busy"
JOB_STATES: Final = [IDLE, *(str(status) for status in JobStatus)]
LANE_STATES: Final = [IDLE, BUSY]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EsphomePipelineConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the hub's sensors and two job sensors per configuration."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(
        [
            LaneSensor(coordinator, "compile_lane"),
            LaneSensor(coordinator, "upload_lane"),
            QueueDepthSensor(coordinator),
        ]
    )
    async_add_configuration_entities(
        coordinator,
        entry,
        async_add_entities,
        lambda coordinator, name: [
            JobSensor(coordinator, name, "compile"),
            JobSensor(coordinator, name, "upload"),
        ],
    )


class JobSensor(ConfigurationEntity, SensorEntity):
    """Status of the configuration's latest compile or upload job; `idle` when there is none."""

    _attr_device_class = SensorDeviceClass.ENUM
    _attr_options = JOB_STATES

    def __init__(self, coordinator: PipelineCoordinator, configuration: str, key: str) -> None:
        """Bind to the configuration and the job kind (`compile` or `upload`)."""
        super().__init__(coordinator, configuration, key)
        self._key = key

    def _job(self) -> JobView | None:
        state = self.state_of_configuration
        if state is None:
            return None
        return state.compile if self._key == "compile" else state.upload

    @property
    def native_value(self) -> str:
        """Return the job's status, or `idle`."""
        job = self._job()
        return IDLE if job is None else str(job.status)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """Return the job id and progress (and, for uploads, whether it waits on its build)."""
        job = self._job()
        attributes: dict[str, Any] = {
            "job_id": None if job is None else job.job_id,
            "progress": None if job is None else job.progress,
        }
        if self._key == "upload":
            attributes["held"] = False if job is None else job.held
        return attributes


class LaneSensor(HubEntity, SensorEntity):
    """`busy` while a lane runs a job, else `idle`; attribute `jobs` lists the running ids."""

    _attr_device_class = SensorDeviceClass.ENUM
    _attr_options = LANE_STATES

    def _running(self) -> tuple[str, ...]:
        queue = self.coordinator.data.queue
        return (
            queue.compile_running
            if self.translation_key == "compile_lane"
            else queue.upload_running
        )

    @property
    def native_value(self) -> str:
        """Return `busy` or `idle`."""
        return BUSY if self._running() else IDLE

    @property
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """Return the running job ids."""
        return {"jobs": list(self._running())}


class QueueDepthSensor(HubEntity, SensorEntity):
    """How many jobs wait in the queue."""

    _attr_state_class = SensorStateClass.MEASUREMENT

    def __init__(self, coordinator: PipelineCoordinator) -> None:
        """Bind to the hub."""
        super().__init__(coordinator, "queue_depth")

    @property
    def native_value(self) -> int:
        """Return the number of queued jobs."""
        return self.coordinator.data.queue.queue_depth
