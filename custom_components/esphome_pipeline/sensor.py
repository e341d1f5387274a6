"""Sensors: each configuration's compile and upload job and its last error; the hub's queue.

Each sensor reads its values through its description's functions: a job sensor picks its job
out of the configuration's state (`job_fn`) and shows its status (`idle` when there is none;
`waiting` for an upload held behind its compile, the build gate or its offline device, and
why in `held_reason`), with ESPHome's message or
the cancel reason in its attributes. The `last_error` sensor shows that message as its state.
A hub sensor reads the snapshot's view of the queue (`value_fn`, `attributes_fn`).
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
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .coordinator import EsphomePipelineConfigEntry, PipelineCoordinator
from .engine.models import JobStatus
from .entity import ConfigurationEntity, HubEntity, async_add_configuration_entities
from .peer_entities import async_add_peer_sensors
from .snapshot import ConfigurationState, JobView, LaneView, PipelineSnapshot

# Push-updated from the coordinator; nothing to poll.
PARALLEL_UPDATES = 0

IDLE: Final = "idle"
BUSY: Final = "busy"
WAITING: Final = "waiting"
JOB_STATES: Final = [IDLE, *(str(status) for status in JobStatus)]
UPLOAD_STATES: Final = [*JOB_STATES, WAITING]
LANE_STATES: Final = [IDLE, BUSY]
ERROR_STATE_LENGTH: Final = 60
"""The `last_error` state is a headline this long at most: a longer state squeezes the entity's
name to "L…" on the device page. The whole message is the `message` attribute."""
RESET_NAME: Final = "Build environment reset"
"""What the `next_job` sensor shows for a reset (it has no configuration)."""


@dataclass(frozen=True, kw_only=True)
class JobSensorEntityDescription(SensorEntityDescription):
    """A sensor of one of a configuration's jobs."""

    job_fn: Callable[[ConfigurationState], JobView | None]
    value_fn: Callable[[JobView | None], str | None]
    attributes_fn: Callable[[JobView | None], Mapping[str, Any]]


@dataclass(frozen=True, kw_only=True)
class HubSensorEntityDescription(SensorEntityDescription):
    """A sensor of the queue itself."""

    value_fn: Callable[[PipelineSnapshot], StateType]
    attributes_fn: Callable[[PipelineSnapshot], Mapping[str, Any]] | None = None


def _status(job: JobView | None) -> str:
    return IDLE if job is None else str(job.status)


def _upload_status(job: JobView | None) -> str:
    return WAITING if job is not None and job.waiting else _status(job)


def _job_attributes(job: JobView | None) -> dict[str, Any]:
    return {
        "job_id": None if job is None else job.job_id,
        "progress": None if job is None else job.progress,
        "error": None if job is None else job.error,
        "cancel_reason": None if job is None else job.cancel_reason,
    }


def _error_state(job: JobView | None) -> str | None:
    if job is None or job.error is None:
        return None
    return headline(job.error)


def headline(message: str, limit: int = ERROR_STATE_LENGTH) -> str:
    """Shorten `message` to `limit` characters at a word boundary, marked with an ellipsis."""
    if len(message) <= limit:
        return message
    cut = message[: limit - 1]
    word_end = cut.rfind(" ")
    if word_end > limit // 2:
        cut = cut[:word_end]
    return cut.rstrip(" ,;:") + "…"


def _error_attributes(job: JobView | None) -> dict[str, Any]:
    return {
        "message": None if job is None else job.error,
        "job_id": None if job is None else job.job_id,
        "job_type": None if job is None else str(job.job_type),
        "status": None if job is None else str(job.status),
        "cancel_reason": None if job is None else job.cancel_reason,
        "finished_at": None if job is None else job.finished_at,
    }


def _lane_state(lane: LaneView) -> str:
    return BUSY if lane.jobs else IDLE


def _lane_attributes(lane: LaneView) -> dict[str, Any]:
    return {"jobs": list(lane.jobs), "configurations": list(lane.configurations)}


def _device_name(snapshot: PipelineSnapshot, configuration: str) -> str:
    if not configuration:
        return RESET_NAME
    state = snapshot.configurations.get(configuration)
    return configuration if state is None else state.node.display_name


def _next_name(snapshot: PipelineSnapshot) -> str | None:
    job = snapshot.hub.next_job
    return None if job is None else _device_name(snapshot, job.configuration)


def _next_attributes(snapshot: PipelineSnapshot) -> dict[str, Any]:
    job = snapshot.hub.next_job
    return {
        "configuration": None if job is None else job.configuration,
        "job_type": None if job is None else str(job.job_type),
        "job_id": None if job is None else job.job_id,
    }


JOB_SENSORS: Final = (
    JobSensorEntityDescription(
        key="compile",
        translation_key="compile",
        device_class=SensorDeviceClass.ENUM,
        options=JOB_STATES,
        job_fn=lambda state: state.compile,
        value_fn=_status,
        attributes_fn=_job_attributes,
    ),
    JobSensorEntityDescription(
        key="upload",
        translation_key="upload",
        device_class=SensorDeviceClass.ENUM,
        options=UPLOAD_STATES,
        job_fn=lambda state: state.upload,
        value_fn=_upload_status,
        # An upload also says whether it waits on its build (or the build gate).
        attributes_fn=lambda job: {
            **_job_attributes(job),
            "held": False if job is None else job.held,
            "held_reason": None if job is None else job.held_reason,
        },
    ),
    JobSensorEntityDescription(
        key="last_error",
        translation_key="last_error",
        entity_category=EntityCategory.DIAGNOSTIC,
        job_fn=lambda state: state.last_error,
        value_fn=_error_state,
        attributes_fn=_error_attributes,
    ),
)

HUB_SENSORS: Final = (
    HubSensorEntityDescription(
        key="compile_lane",
        translation_key="compile_lane",
        device_class=SensorDeviceClass.ENUM,
        options=LANE_STATES,
        value_fn=lambda snapshot: _lane_state(snapshot.hub.compile_lane),
        attributes_fn=lambda snapshot: _lane_attributes(snapshot.hub.compile_lane),
    ),
    HubSensorEntityDescription(
        key="upload_lane",
        translation_key="upload_lane",
        device_class=SensorDeviceClass.ENUM,
        options=LANE_STATES,
        value_fn=lambda snapshot: _lane_state(snapshot.hub.upload_lane),
        attributes_fn=lambda snapshot: _lane_attributes(snapshot.hub.upload_lane),
    ),
    HubSensorEntityDescription(
        key="queue_depth",
        translation_key="queue_depth",
        state_class=SensorStateClass.MEASUREMENT,
        # Devices waiting; the job count (an install is two jobs) is an attribute.
        value_fn=lambda snapshot: snapshot.hub.devices_waiting,
        attributes_fn=lambda snapshot: {
            "jobs": snapshot.hub.jobs_waiting,
            "next": None if snapshot.hub.next_job is None else snapshot.hub.next_job.configuration,
        },
    ),
    HubSensorEntityDescription(
        key="next_job",
        translation_key="next_job",
        value_fn=_next_name,
        attributes_fn=_next_attributes,
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
    async_add_peer_sensors(entry, async_add_entities)


class JobSensor(ConfigurationEntity, SensorEntity):
    """The configuration's latest job of one kind (its status), or its last error."""

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
    def native_value(self) -> str | None:
        """Return what the description shows of the job (its status, or its error)."""
        return self.entity_description.value_fn(self._job())

    @property
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """Return what the description shows of the job."""
        return self.entity_description.attributes_fn(self._job())


class HubSensor(HubEntity, SensorEntity):
    """A value of the queue: a lane's `busy`/`idle`, the devices waiting, what runs next."""

    entity_description: HubSensorEntityDescription

    def __init__(
        self, coordinator: PipelineCoordinator, description: HubSensorEntityDescription
    ) -> None:
        """Bind to the hub."""
        super().__init__(coordinator, description)

    @property
    def native_value(self) -> StateType:
        """Return the description's value of the queue status."""
        return self.entity_description.value_fn(self.coordinator.data)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Return the description's attributes of the queue status, if it has any."""
        attributes_fn = self.entity_description.attributes_fn
        return None if attributes_fn is None else attributes_fn(self.coordinator.data)
