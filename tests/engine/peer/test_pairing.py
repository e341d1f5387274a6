"""Preview and pairing against a test receiver: right key, wrong key, pin changed, unreachable."""

from __future__ import annotations

import socket

import pytest

from custom_components.esphome_pipeline.engine.peer.client import (
    PairingError,
    await_approval,
    pair,
    preview,
)
from custom_components.esphome_pipeline.engine.peer.identity import PeerIdentity, emoji_fingerprint
from tests.fakes.test_receiver import HOSTILE_HANDSHAKE

from .conftest import ReceiverFactory


async def test_preview_shows_the_receivers_identity(
    make_receiver: ReceiverFactory, identity: PeerIdentity
) -> None:
    receiver = await make_receiver(esphome_version="2026.9.1", friendly_name="Desk PC")
    seen = await preview("127.0.0.1", receiver.port, identity)
    assert seen.pin == receiver.pin
    assert seen.emoji == emoji_fingerprint(receiver.pin)
    assert seen.emoji_names.count(",") == 6
    assert seen.formatted_pin.replace(" ", "") == receiver.pin
    assert seen.esphome_version == "2026.9.1"
    assert seen.friendly_name == "Desk PC"
    assert seen.requires_pairing_key
    assert receiver.approved == {}


async def test_right_key_pairs_and_a_second_request_is_approved_again(
    make_receiver: ReceiverFactory, identity: PeerIdentity
) -> None:
    receiver = await make_receiver()
    result = await pair(
        "127.0.0.1",
        receiver.port,
        identity,
        pairing_key=receiver.pairing_key.lower(),
        expected_pin=receiver.pin,
        label="HA",
    )
    assert result.approved
    assert result.pin == receiver.pin
    assert result.esphome_version == receiver.esphome_version
    assert list(receiver.approved.values()) == [identity.pin]
    status = await await_approval(
        "127.0.0.1", receiver.port, identity, expected_pin=receiver.pin, label="HA"
    )
    assert status.approved


async def test_wrong_key_is_refused_and_nothing_is_stored(
    make_receiver: ReceiverFactory, identity: PeerIdentity
) -> None:
    receiver = await make_receiver()
    with pytest.raises(PairingError) as caught:
        await pair(
            "127.0.0.1",
            receiver.port,
            identity,
            pairing_key="WRNG-KEYS-WRNG-KEYS",
            expected_pin=receiver.pin,
            label="HA",
        )
    assert caught.value.kind == "no_pairing_window"
    assert "pairing key is wrong" in str(caught.value)
    assert receiver.approved == {}


async def test_closed_window_after_the_first_pairing(
    make_receiver: ReceiverFactory, identity: PeerIdentity
) -> None:
    receiver = await make_receiver()
    await pair(
        "127.0.0.1",
        receiver.port,
        identity,
        pairing_key=receiver.pairing_key,
        expected_pin=receiver.pin,
        label="HA",
    )
    with pytest.raises(PairingError) as caught:
        await pair(
            "127.0.0.1",
            receiver.port,
            PeerIdentity.generate(),
            pairing_key=receiver.pairing_key,
            expected_pin=receiver.pin,
            label="Other",
        )
    assert caught.value.kind == "no_pairing_window"


async def test_pin_changed_since_preview_sends_nothing(
    make_receiver: ReceiverFactory, identity: PeerIdentity
) -> None:
    receiver = await make_receiver()
    previewed = "0" * 64
    with pytest.raises(PairingError) as caught:
        await pair(
            "127.0.0.1",
            receiver.port,
            identity,
            pairing_key=receiver.pairing_key,
            expected_pin=previewed,
            label="HA",
        )
    assert caught.value.kind == "pin_changed"
    assert receiver.pin in str(caught.value)
    # The key never reached the receiver: it is still unpaired and its window open.
    assert receiver.approved == {}


async def test_unreachable_host(socket_enabled: None, identity: PeerIdentity) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(PairingError) as caught:
        await preview("127.0.0.1", free_port, identity)
    assert caught.value.kind == "unreachable"
    with pytest.raises(PairingError) as invalid:
        await preview("bad host/name", 6055, identity)
    assert invalid.value.kind == "unreachable"


async def test_a_pairing_with_another_key_for_our_id_is_rejected(
    make_receiver: ReceiverFactory, identity: PeerIdentity
) -> None:
    receiver = await make_receiver()
    await pair(
        "127.0.0.1",
        receiver.port,
        identity,
        pairing_key=receiver.pairing_key,
        expected_pin=receiver.pin,
        label="HA",
    )
    receiver.approved = dict.fromkeys(receiver.approved, "f" * 64)
    with pytest.raises(PairingError) as caught:
        await pair(
            "127.0.0.1",
            receiver.port,
            identity,
            pairing_key=None,
            expected_pin=receiver.pin,
            label="HA",
        )
    assert caught.value.kind == "rejected"


@pytest.mark.parametrize("hostile", HOSTILE_HANDSHAKE)
async def test_something_else_than_a_receiver_is_a_protocol_error(
    make_receiver: ReceiverFactory, identity: PeerIdentity, hostile: str
) -> None:
    receiver = await make_receiver(hostile=hostile)
    with pytest.raises(PairingError) as caught:
        await preview("127.0.0.1", receiver.port, identity)
    assert caught.value.kind == "protocol"


async def test_a_stalled_handshake_times_out(
    make_receiver: ReceiverFactory, identity: PeerIdentity
) -> None:
    receiver = await make_receiver(hostile="handshake_stall")
    with pytest.raises(PairingError) as caught:
        await preview("127.0.0.1", receiver.port, identity, connect_timeout=0.2)
    assert caught.value.kind == "unreachable"
    assert "did not complete the handshake" in str(caught.value)
