"""Entities of the build peers: each paired peer is a device with its link's state.

Owns `PeerEntity` (bound to one peer's link, pushed by its status changes, unique ids
`<entry_id>_peer_<subentry_id>_<key>`, the peer's device under the entry's hub) and the
peer sensors (`state`: idle, building, offline, rejected; `esphome_version`, diagnostic).
The connectivity binary sensor (`connected`) is in `binary_sensor.py`; `sensor.py` adds the
sensors here with `async_add_peer_sensors`. The entities go with their subentry's device.
"""

from __future__ import annotations

from typing import Final

from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN
from .coordinator import EsphomePipelineConfigEntry
from .engine.peer.status import LinkState, PeerStatus
from .peers import BuildPeer

PEER_IDLE: Final = "idle"
PEER_BUILDING: Final = "building"
PEER_OFFLINE: Final = "offline"
PEER_REJECTED: Final = "rejected"
PEER_STATES: Final = [PEER_IDLE, PEER_BUILDING, PEER_OFFLINE, PEER_REJECTED]


def peer_state(status: PeerStatus) -> str:
    """Return what the `state` sensor shows for a link status."""
    if status.state in {LinkState.REJECTED, LinkState.PIN_MISMATCH}:
        return PEER_REJECTED
    if not status.connected:
        return PEER_OFFLINE
    return PEER_BUILDING if status.running or status.queue_depth else PEER_IDLE


class PeerEntity(Entity):
    """An entity of one build peer's device, pushed by the peer's link."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, entry_id: str, peer: BuildPeer, description: EntityDescription) -> None:
        """Bind to the peer's device; the description's key names the entity."""
        self.peer = peer
        self.entity_description = description
        self._attr_unique_id = f"{entry_id}_peer_{peer.subentry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, f"{entry_id}_peer_{peer.subentry_id}")},
            name=peer.label,
            manufacturer="ESPHome",
            model="Device Builder build peer",
            entry_type=DeviceEntryType.SERVICE,
            via_device=(DOMAIN, entry_id),
        )

    @property
    def status(self) -> PeerStatus:
        """The peer's link status now."""
        return self.peer.link.status

    async def async_added_to_hass(self) -> None:
        """Follow the link's status changes."""
        await super().async_added_to_hass()
        self.async_on_remove(self.peer.link.subscribe(lambda _status: self._on_status()))

    def _on_status(self) -> None:
        if self.hass is not None and self.entity_id:
            self.async_write_ha_state()


STATE_DESCRIPTION: Final = SensorEntityDescription(
    key="state",
    translation_key="peer_state",
    device_class=SensorDeviceClass.ENUM,
    options=PEER_STATES,
)
VERSION_DESCRIPTION: Final = SensorEntityDescription(
    key="esphome_version",
    translation_key="peer_esphome_version",
    entity_category=EntityCategory.DIAGNOSTIC,
)


class PeerStateSensor(PeerEntity, SensorEntity):
    """idle, building, offline or rejected."""

    @property
    def native_value(self) -> str:
        """Return the peer's state."""
        return peer_state(self.status)


class PeerVersionSensor(PeerEntity, SensorEntity):
    """The ESPHome version the peer builds with (known once it was connected)."""

    @property
    def native_value(self) -> str | None:
        """Return the peer's ESPHome version."""
        return self.status.esphome_version


def async_add_peer_sensors(
    entry: EsphomePipelineConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add the sensors of every build peer, now and for each peer paired later."""
    entry.runtime_data.peers.async_add_peer_entities(
        async_add_entities,
        lambda peer: [
            PeerStateSensor(entry.entry_id, peer, STATE_DESCRIPTION),
            PeerVersionSensor(entry.entry_id, peer, VERSION_DESCRIPTION),
        ],
    )
