"""Pair with a receiver (ours or Device Builder's) and return a started link to it."""

from __future__ import annotations

from typing import Protocol

from custom_components.esphome_pipeline.engine.peer.client import dashboard_id_for, pair
from custom_components.esphome_pipeline.engine.peer.identity import PeerIdentity
from custom_components.esphome_pipeline.engine.peer.link import PeerLink
from custom_components.esphome_pipeline.engine.peer.wire import (
    HEARTBEAT_INTERVAL,
    RECONNECT_INITIAL,
    RECONNECT_MAX,
)

LINK_READY_TIMEOUT = 60.0


class Receiver(Protocol):
    """What pairing needs of a running receiver: where it listens, its pin, its key."""

    @property
    def port(self) -> int:
        """The peer-link port it listens on (127.0.0.1)."""

    @property
    def pin(self) -> str:
        """Its pin: the hex SHA-256 of its public key."""

    @property
    def pairing_key(self) -> str:
        """The one-time pairing key it printed."""


async def paired_link(
    receiver: Receiver,
    label: str,
    *,
    wait: bool = True,
    reconnect_initial: float = RECONNECT_INITIAL,
    reconnect_max: float = RECONNECT_MAX,
    heartbeat_interval: float = HEARTBEAT_INTERVAL,
) -> PeerLink:
    """Pair a fresh identity with `receiver`, start the link and (with `wait`) wait until it
    is available. The caller closes it.
    """
    identity = PeerIdentity.generate()
    await pair(
        "127.0.0.1",
        receiver.port,
        identity,
        pairing_key=receiver.pairing_key,
        expected_pin=receiver.pin,
        label=label,
    )
    link = PeerLink(
        host="127.0.0.1",
        port=receiver.port,
        identity=identity,
        pin=receiver.pin,
        dashboard_id=dashboard_id_for(identity),
        label=label,
        reconnect_initial=reconnect_initial,
        reconnect_max=reconnect_max,
        heartbeat_interval=heartbeat_interval,
    )
    link.start()
    if not wait:
        return link
    try:
        await link.wait_for(lambda status: status.available, LINK_READY_TIMEOUT)
    except BaseException:
        await link.close()
        raise
    return link
