"""The persistent link: status, heartbeat, reconnect after a restart, pin checks, close."""

from __future__ import annotations

import asyncio
import shutil

from custom_components.esphome_pipeline.engine.peer.client import LinkState, PeerStatus
from custom_components.esphome_pipeline.engine.peer.identity import PeerIdentity

from .conftest import WAIT, LinkFactory, ReceiverFactory


def connected(status: PeerStatus) -> bool:
    return status.connected


async def test_link_reports_status_and_version(
    make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    receiver = await make_receiver(esphome_version="2026.10.0", friendly_name="Build box")
    link = await make_link(receiver)
    seen: list[PeerStatus] = []
    link.subscribe(seen.append)
    status = await link.wait_for(lambda s: s.connected and s.idle, WAIT)
    assert status.available
    assert status.esphome_version == "2026.10.0"
    assert status.friendly_name == "Build box"
    assert status.sessions == 1
    assert status.error is None
    await receiver.event("session").wait()


async def test_heartbeat_pings_and_answers(
    make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    receiver = await make_receiver(heartbeat_interval=0.05)
    link = await make_link(receiver, heartbeat_interval=0.05)
    await link.wait_for(connected, WAIT)
    await asyncio.wait_for(receiver.event("ping").wait(), WAIT)
    assert receiver.pings >= 1
    # Its pongs are counted; the session stays the same one across the heartbeats.
    status = await link.wait_for(lambda s: s.heartbeats >= 3, WAIT)
    assert status.connected
    assert status.sessions == 1


async def test_silent_peer_is_dropped_and_reconnected(
    make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    # The receiver neither pings nor answers pings: after `misses` silent intervals the link
    # gives the session up and opens a new one.
    receiver = await make_receiver(heartbeat_interval=3600, answer_pings=False)
    link = await make_link(receiver, heartbeat_interval=0.05, heartbeat_misses=2)
    status = await link.wait_for(lambda s: s.sessions >= 2, WAIT)
    assert status.sessions >= 2


async def test_reconnects_after_the_receiver_restarts(
    make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    receiver = await make_receiver()
    link = await make_link(receiver)
    await link.wait_for(lambda s: s.connected and s.idle, WAIT)
    port = receiver.port
    await receiver.stop()
    offline = await link.wait_for(lambda s: not s.connected, WAIT)
    assert offline.error is not None
    assert not offline.available
    restarted = await make_receiver(port=port)
    assert restarted.pin == receiver.pin
    status = await link.wait_for(lambda s: s.connected and s.idle, WAIT)
    assert status.sessions == 2


async def test_a_changed_identity_stops_the_link(
    make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    receiver = await make_receiver()
    link = await make_link(receiver)
    await link.wait_for(connected, WAIT)
    port = receiver.port
    await receiver.stop()
    # Same address, another machine (another key): the link must refuse it for good.
    shutil.rmtree(receiver.work_dir)
    impostor = await make_receiver(port=port)
    status = await link.wait_for(lambda s: s.state is LinkState.PIN_MISMATCH, WAIT)
    assert impostor.pin in (status.error or "")
    assert impostor.jobs == {}
    assert not impostor.event("session").is_set()


async def test_a_receiver_that_forgot_us_rejects_the_link(
    make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    receiver = await make_receiver()
    link = await make_link(receiver, paired=False)
    status = await link.wait_for(lambda s: s.state is LinkState.REJECTED, WAIT)
    assert "no_approved_peer" in (status.error or "")


async def test_close_ends_the_session_at_once(
    make_receiver: ReceiverFactory, make_link: LinkFactory, identity: PeerIdentity
) -> None:
    receiver = await make_receiver()
    link = await make_link(receiver)
    await link.wait_for(connected, WAIT)
    await link.close()
    assert link.status.state is LinkState.CLOSED
    # The receiver sees the session go (its session set empties once the socket closes).
    async with asyncio.timeout(WAIT):
        while receiver._sessions:
            await asyncio.sleep(0.01)
