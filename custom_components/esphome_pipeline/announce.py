"""How a job's status change is told to people: the event's data and the log lines.

Owns: the data of the `esphome_pipeline_job` event (the job's public fields plus `device_id`,
the configuration's device, or the hub's for a reset, so the logbook of a device page and
device automations find it) and one log line per job start and end in home-assistant.log
(INFO; a failure is a WARNING with ESPHome's message). Queued jobs, held flips and progress
are not logged: a bulk install must not flood the log.

The coordinator calls `Announcer` from its event intake for every status change it announces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import logging
from typing import Any, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .configurations import device_identifier
from .const import DOMAIN
from .engine.fingerprint import NodeInfo
from .engine.models import Job, JobStatus
from .outcomes import describe

_LOGGER = logging.getLogger(__name__)

ATTR_DEVICE_ID: Final = "device_id"

PUSH_LOGGER: Final = logging.getLogger(f"{__package__}.snapshot_pushes")
"""The logger handed to the DataUpdateCoordinator: it would say "Manually updated ... data" at
DEBUG on every push (each progress step of every job). Held at INFO, so debug logging of the
integration shows the job lines, not that noise."""
PUSH_LOGGER.setLevel(logging.INFO)


class Announcer:
    """Builds the event data of a job and logs its start and end."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        nodes: Callable[[], Mapping[str, NodeInfo]],
    ) -> None:
        """Announce jobs of entry `entry_id`; `nodes` returns the configurations of the scan."""
        self._hass = hass
        self._entry_id = entry_id
        self._nodes = nodes

    def device_id(self, configuration: str) -> str | None:
        """Return the HA device id of a configuration (the hub's for ""), if registered."""
        identifier = (
            device_identifier(self._entry_id, configuration)
            if configuration
            else (DOMAIN, self._entry_id)
        )
        device = dr.async_get(self._hass).async_get_device(identifiers={identifier})
        return None if device is None else device.id

    def event_data(self, job: Job) -> dict[str, Any]:
        """Return the data of the job's event: its public fields and its device."""
        return {**job.public_dict(), ATTR_DEVICE_ID: self.device_id(job.configuration)}

    def name(self, configuration: str) -> str:
        """Return the name people know a configuration by (the device's name)."""
        if not configuration:
            return "ESPHome Pipeline"
        node = self._nodes().get(configuration)
        return configuration if node is None else node.display_name

    @callback
    def log(self, job: Job) -> None:
        """Log a job's start and end: INFO, and WARNING for a failure."""
        if job.status is JobStatus.QUEUED:
            return
        level = logging.WARNING if job.status is JobStatus.FAILED else logging.INFO
        _LOGGER.log(
            level,
            "%s: %s (job %s)",
            self.name(job.configuration),
            describe(job.public_dict()),
            job.job_id,
        )
