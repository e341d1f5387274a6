"""The logbook's words for the `esphome_pipeline_job` event.

Each status change of a job becomes one entry named after the configuration's device, e.g.
"Kitchen Light" + "compile failed: Unknown value 'banana', valid options are ...". The event
carries the device's id (`announce.py`), so the entry also shows on the device page. The
description reads only the event's data and the device registry: it works for events of
jobs that are long gone and of entries that are not loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .announce import ATTR_DEVICE_ID
from .const import DOMAIN, EVENT_JOB
from .outcomes import describe

# The keys of a logbook description (the logbook's LOGBOOK_ENTRY_NAME and _MESSAGE, which its
# package does not re-export for type checkers).
LOGBOOK_ENTRY_NAME: Final = "name"
LOGBOOK_ENTRY_MESSAGE: Final = "message"


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, str]]], None],
) -> None:
    """Describe every job event in words."""

    @callback
    def async_describe_job_event(event: Event) -> dict[str, str]:
        data: dict[str, Any] = dict(event.data)
        return {
            LOGBOOK_ENTRY_NAME: _device_name(hass, data),
            LOGBOOK_ENTRY_MESSAGE: describe(data),
        }

    async_describe_event(DOMAIN, EVENT_JOB, async_describe_job_event)


def _device_name(hass: HomeAssistant, data: dict[str, Any]) -> str:
    """The device's name as the user sees it, else the configuration's file name."""
    device_id = data.get(ATTR_DEVICE_ID)
    if isinstance(device_id, str) and (device := dr.async_get(hass).async_get(device_id)):
        return device.name_by_user or device.name or str(data.get("configuration") or DOMAIN)
    return str(data.get("configuration") or "ESPHome Pipeline")
