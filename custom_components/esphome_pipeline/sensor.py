"""Sensors: each configuration's compile and upload job, and the hub's lanes and queue depth.

Each sensor reads its values through its description's functions: a job sensor picks its job
out of the configuration's state (`job_fn`) and shows its status (`idle` when there is none);
a hub sensor reads the queue status (`value_fn`, `attributes_fn`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .coordinator import EsphomePipelineConfigEntry, PipelineCoordinator
from .engine.models import JobStatus, QueueStatus
from .entity import ConfigurationEntity, HubEntity, async_add_configuration_entities
from .snapshot import ConfigurationState, JobView

# Push-updated from the coordinator; nothing to poll.
PARALLEL_UPDATES = 0

IDLE: Final = "idle"
BUSY: Final = "busy"
JOB_STATES: Final = [IDLE, *(str(status) for status in JobStatus)]
LANE_STATES: Final = [IDLE, BUSY]


@dataclass(frozen=True, kw_only=True)
class JobSensorEntityDescription(SensorEntityDescription):
    """A sensor of one of a configuration's jobs."""

    job_fn: Callable[[ConfigurationState], JobView | None]
    attributes_fn: Callable[[JobView | None], Mapping[str, Any]]


@dataclass(frozen=True, kw_only=True)
class HubSensorEntityDescription(SensorEntityDescription):
    """A sensor of the queue itself."""

    value_fn: Callable[[QueueStatus], StateType]
    attributes_fn: Callable[[QueueStatus], Mapping[str, Any]] | None = None


def _job_attributes(job: JobView | None) -> dict[str, Any]:
    return {
        "job_id": None if job is None else job.job_id,
        "progress": None if job is None else job.progress,
    }


def _lane_state(running: tuple[str, ...]) -> str:
    return BUSY if running else IDLE


JOB_SENSORS: Final = (
    JobSensorEntityDescription(
        key="compile",
        translation_key="compile",
        device_class=SensorDeviceClass.ENUM,
        options=JOB_STATES,
        job_fn=lambda state: state.compile,
        attributes_fn=_job_attributes,
    ),
    JobSensorEntityDescription(
        key="upload",
        translation_key="upload",
        device_class=SensorDeviceClass.ENUM,
        options=JOB_STATES,
        job_fn=lambda state: state.upload,
        # An upload also says whether it waits on its build (or the build gate).
        attributes_fn=lambda job: {
            **_job_attributes(job),
            "held": False if job is None else job.held,
        },
    ),
)

HUB_SENSORS: Final = (
    HubSensorEntityDescription(
        key="compile_lane",
        translation_key="compile_lane",
        device_class=SensorDeviceClass.ENUM,
        options=LANE_STATES,
        value_fn=lambda queue: _lane_state(queue.compile_running),
        attributes_fn=lambda queue: {"jobs": list(queue.compile_running)},
    ),
    HubSensorEntityDescription(
        key="upload_lane",
        translation_key="upload_lane",
        device_class=SensorDeviceClass.ENUM,
        options=LANE_STATES,
        value_fn=lambda queue: _lane_state(queue.upload_running),
        attributes_fn=lambda queue: {"jobs": list(queue.upload_running)},
    ),
    HubSensorEntityDescription(
        key="queue_depth",
        translation_key="queue_depth",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda queue: queue.queue_depth,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EsphomePipelineConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the hub's sensors and the job sensors of every configuration."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(HubSensor(coordinator, description) for description in HUB_SENSORS)
    await async_add_configuration_entities(
        coordinator,
        entry,
        async_add_entities,
        lambda coordinator, name: [
            JobSensor(coordinator, name, description) for description in JOB_SENSORS
        ],
    )


class JobSensor(ConfigurationEntity, SensorEntity):
    """Status of the configuration's latest job of one kind; `idle` when there is none."""

    entity_description: JobSensorEntityDescription

    def __init__(
        self,
        coordinator: PipelineCoordinator,
        configuration: str,
        description: JobSensorEntityDescription,
    ) -> None:
        """Bind to the configuration and the job kind its description picks."""
        super().__init__(coordinator, configuration, description)

    def _job(self) -> JobView | None:
        state = self.state_of_configuration
        return None if state is None else self.entity_description.job_fn(state)

    @property
    def native_value(self) -> str:
        """Return the job's status, or `idle`."""
        job = self._job()
        return IDLE if job is None else str(job.status)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """Return what the description shows of the job."""
        return self.entity_description.attributes_fn(self._job())


class HubSensor(HubEntity, SensorEntity):
    """A value of the queue: a lane's `busy`/`idle` with its running jobs, or the depth."""

    entity_description: HubSensorEntityDescription

    def __init__(
        self, coordinator: PipelineCoordinator, description: HubSensorEntityDescription
    ) -> None:
        """Bind to the hub."""
        super().__init__(coordinator, description)

    @property
    def native_value(self) -> StateType:
        """Return the description's value of the queue status."""
        return self.entity_description.value_fn(self.coordinator.data.queue)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Return the description's attributes of the queue status, if it has any."""
        attributes_fn = self.entity_description.attributes_fn
        return None if attributes_fn is None else attributes_fn(self.coordinator.data.queue)
