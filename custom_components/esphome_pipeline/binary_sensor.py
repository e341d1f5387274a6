"""Binary sensors: each build peer's connectivity (`connected`).

The peers' devices and their other sensors are described in `peer_entities.py`.
"""

from __future__ import annotations

from typing import Final

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import EsphomePipelineConfigEntry
from .peer_entities import PeerEntity

# Pushed by the peer links; nothing to poll.
PARALLEL_UPDATES = 0

CONNECTED_DESCRIPTION: Final = BinarySensorEntityDescription(
    key="connected",
    translation_key="peer_connected",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EsphomePipelineConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the connectivity sensor of every build peer, now and for each one paired later."""
    entry.runtime_data.peers.async_add_peer_entities(
        async_add_entities,
        lambda peer: [PeerConnectedSensor(entry.entry_id, peer, CONNECTED_DESCRIPTION)],
    )


class PeerConnectedSensor(PeerEntity, BinarySensorEntity):
    """On while the link to the peer is open."""

    @property
    def is_on(self) -> bool:
        """Return True while connected."""
        return self.status.connected
