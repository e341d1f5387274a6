"""Fixtures for the peer-link tests: our identity, test receivers on 127.0.0.1, open links.

Receivers are real aiohttp servers speaking the real Noise handshake (`tests.fakes.test_receiver`)
and running the fake ESPHome CLI as real subprocesses. Everything started here is stopped at
teardown. Tests synchronise on receiver events and link status changes, never on sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from custom_components.esphome_pipeline.engine.peer.client import (
    PeerLink,
    dashboard_id_for,
    pair,
)
from custom_components.esphome_pipeline.engine.peer.identity import PeerIdentity
from tests.fakes import FAKE_COMMAND
from tests.fakes.test_receiver import PeerReceiver

WAIT = 30.0
"""Seconds a test waits for an event before failing (a safety net, never a synchronisation)."""

type ReceiverFactory = Callable[..., Awaitable[PeerReceiver]]
type LinkFactory = Callable[..., Awaitable[PeerLink]]


@pytest.fixture
def identity() -> PeerIdentity:
    """Our side's key pair."""
    return PeerIdentity.generate()


@pytest.fixture
async def make_receiver(tmp_path: Path, socket_enabled: None) -> AsyncIterator[ReceiverFactory]:
    """Start test receivers (each in its own folder unless one is given); stop them after."""
    started: list[PeerReceiver] = []

    async def factory(name: str = "receiver", **options: Any) -> PeerReceiver:
        options.setdefault("cli", FAKE_COMMAND)
        receiver = PeerReceiver(tmp_path / name, **options)
        await receiver.start()
        started.append(receiver)
        return receiver

    yield factory
    for receiver in started:
        await receiver.stop()


@pytest.fixture
async def make_link(identity: PeerIdentity) -> AsyncIterator[LinkFactory]:
    """Pair with a receiver and open a started link to it; closed after the test."""
    links: list[PeerLink] = []

    async def factory(receiver: PeerReceiver, *, paired: bool = True, **options: Any) -> PeerLink:
        if paired:
            await pair(
                "127.0.0.1",
                receiver.port,
                identity,
                pairing_key=receiver.pairing_key,
                expected_pin=receiver.pin,
                label="Test HA",
            )
        options.setdefault("reconnect_initial", 0.05)
        options.setdefault("reconnect_max", 0.2)
        link = PeerLink(
            host="127.0.0.1",
            port=receiver.port,
            identity=identity,
            pin=options.pop("pin", receiver.pin),
            dashboard_id=dashboard_id_for(identity),
            label="Test HA",
            **options,
        )
        link.start()
        links.append(link)
        return link

    yield factory
    for link in links:
        await link.close()
