"""Build peers in Home Assistant: the pairing subentry flow, the peer entities, removal, repairs.

Against our test receiver (real aiohttp server on 127.0.0.1, real Noise handshake). Every
failure of the flow must be a form error with nothing stored.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
import json
from pathlib import Path
import stat
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esphome_pipeline.const import DOMAIN
from custom_components.esphome_pipeline.diagnostics import async_get_config_entry_diagnostics
from custom_components.esphome_pipeline.engine.peer.client import PairingResult, pair
from custom_components.esphome_pipeline.engine.peer.identity import PeerIdentity
from custom_components.esphome_pipeline.engine.peer.status import LinkState
from custom_components.esphome_pipeline.peers import (
    SUBENTRY_BUILD_PEER,
    PeerManager,
    identity_path,
    pin_issue_id,
)
from tests.fakes import FAKE_COMMAND
from tests.fakes.real_receiver import free_port
from tests.fakes.test_receiver import PeerReceiver

from .conftest import setup_entry

WAIT = 30.0
type ReceiverFactory = Callable[..., Awaitable[PeerReceiver]]


@pytest.fixture
async def make_receiver(tmp_path: Path, socket_enabled: None) -> AsyncIterator[ReceiverFactory]:
    """Start test receivers on 127.0.0.1; stop them after the test."""
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


def manager_of(entry: MockConfigEntry) -> PeerManager:
    """Return the loaded entry's peer manager."""
    peers: PeerManager = entry.runtime_data.peers
    return peers


async def start_flow(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    """Open the "Add build peer" flow."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_BUILD_PEER), context={"source": "user"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return dict(result)


async def to_pair_step(
    hass: HomeAssistant, entry: MockConfigEntry, receiver: PeerReceiver
) -> dict[str, Any]:
    """Open the flow and preview the receiver."""
    result = await start_flow(hass, entry)
    result = dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"host": "127.0.0.1", "port": receiver.port}
        )
    )
    assert result["type"] is FlowResultType.FORM, result
    assert result["step_id"] == "pair"
    return result


async def pair_through_flow(
    hass: HomeAssistant, entry: MockConfigEntry, receiver: PeerReceiver
) -> str:
    """Pair through the flow; return the new subentry's id."""
    result = await to_pair_step(hass, entry, receiver)
    result = dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"pairing_key": receiver.pairing_key}
        )
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    (subentry_id,) = (
        sid for sid, sub in entry.subentries.items() if sub.subentry_type == SUBENTRY_BUILD_PEER
    )
    return subentry_id


async def test_pairing_stores_the_pin_and_the_peer_becomes_a_device(
    hass: HomeAssistant, loaded: MockConfigEntry, make_receiver: ReceiverFactory
) -> None:
    """The right key pairs: the subentry keeps host, port and pin; entities follow the link."""
    receiver = await make_receiver(friendly_name="Desk PC")
    result = await to_pair_step(hass, loaded, receiver)
    placeholders = result["description_placeholders"]
    assert placeholders["emoji"] == receiver.identity.emoji
    assert placeholders["pin"].replace(" ", "") == receiver.pin
    assert placeholders["esphome_version"] == "2026.10.0"

    result = dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"pairing_key": receiver.pairing_key.lower()}
        )
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Desk PC"
    await hass.async_block_till_done()
    (subentry,) = loaded.subentries.values()
    assert subentry.unique_id == receiver.pin
    assert dict(subentry.data) == {"host": "127.0.0.1", "port": receiver.port, "pin": receiver.pin}

    peer = manager_of(loaded).peers[subentry.subentry_id]
    await peer.link.wait_for(lambda status: status.available, WAIT)
    await hass.async_block_till_done()
    registry = er.async_get(hass)
    prefix = f"{loaded.entry_id}_peer_{subentry.subentry_id}"
    connected = registry.async_get_entity_id("binary_sensor", DOMAIN, f"{prefix}_connected")
    state = registry.async_get_entity_id("sensor", DOMAIN, f"{prefix}_state")
    version = registry.async_get_entity_id("sensor", DOMAIN, f"{prefix}_esphome_version")
    assert connected
    assert state
    assert version
    assert hass.states.get(connected).state == "on"  # type: ignore[union-attr]
    assert hass.states.get(state).state == "idle"  # type: ignore[union-attr]
    assert hass.states.get(version).state == "2026.10.0"  # type: ignore[union-attr]
    device = dr.async_get(hass).async_get_device({(DOMAIN, prefix)})
    assert device is not None
    assert device.name == "Desk PC"

    # Our key is private: created once, mode 0600.
    key = identity_path(hass, loaded.entry_id)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


async def test_wrong_key_is_a_form_error_and_the_right_one_then_pairs(
    hass: HomeAssistant, loaded: MockConfigEntry, make_receiver: ReceiverFactory
) -> None:
    """A wrong key leaves the form open with an error; nothing is stored."""
    receiver = await make_receiver()
    result = await to_pair_step(hass, loaded, receiver)
    result = dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"pairing_key": "AAAA-BBBB-CCCC-DDDD"}
        )
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "no_pairing_window"}
    assert not loaded.subentries
    assert not receiver.approved

    result = dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"pairing_key": receiver.pairing_key}
        )
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_closed_pairing_window_is_a_form_error(
    hass: HomeAssistant, loaded: MockConfigEntry, make_receiver: ReceiverFactory
) -> None:
    """A receiver that paired with someone else already has its window closed."""
    receiver = await make_receiver()
    await pair(
        "127.0.0.1",
        receiver.port,
        PeerIdentity.generate(),
        pairing_key=receiver.pairing_key,
        expected_pin=receiver.pin,
        label="Another HA",
    )
    result = await to_pair_step(hass, loaded, receiver)
    result = dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"pairing_key": receiver.pairing_key}
        )
    )
    assert result["errors"] == {"base": "no_pairing_window"}
    assert not loaded.subentries


async def test_unreachable_host_is_a_form_error(
    hass: HomeAssistant, loaded: MockConfigEntry, socket_enabled: None
) -> None:
    """Nothing listening: the first step says so and nothing is stored."""
    result = await start_flow(hass, loaded)
    result = dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"host": "127.0.0.1", "port": free_port()}
        )
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": "cannot_connect"}
    assert not loaded.subentries


async def test_pin_changed_since_the_preview_is_a_form_error(
    hass: HomeAssistant, loaded: MockConfigEntry, make_receiver: ReceiverFactory
) -> None:
    """Another receiver on the previewed address: refused before the key is sent."""
    first = await make_receiver("first")
    result = await to_pair_step(hass, loaded, first)
    port = first.port
    await first.stop()
    impostor = await make_receiver("impostor", port=port)
    result = dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"pairing_key": impostor.pairing_key}
        )
    )
    assert result["errors"] == {"base": "pin_changed"}
    assert not impostor.approved
    assert not loaded.subentries


async def test_a_paired_receiver_cannot_be_added_twice(
    hass: HomeAssistant, loaded: MockConfigEntry, make_receiver: ReceiverFactory
) -> None:
    """The subentry's unique id is the pin."""
    receiver = await make_receiver()
    await pair_through_flow(hass, loaded, receiver)
    result = await start_flow(hass, loaded)
    result = dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"host": "127.0.0.1", "port": receiver.port}
        )
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_removing_the_subentry_closes_the_link_and_removes_the_device(
    hass: HomeAssistant, loaded: MockConfigEntry, make_receiver: ReceiverFactory
) -> None:
    """No reload: the link closes, the device and entities go, the engine forgets the peer."""
    receiver = await make_receiver()
    subentry_id = await pair_through_flow(hass, loaded, receiver)
    manager = manager_of(loaded)
    link = manager.peers[subentry_id].link
    await link.wait_for(lambda status: status.connected, WAIT)
    coordinator = loaded.runtime_data.coordinator
    assert link.label in coordinator._engine._peers

    assert hass.config_entries.async_remove_subentry(loaded, subentry_id)
    await hass.async_block_till_done()
    assert link.status.state is LinkState.CLOSED
    assert subentry_id not in manager.peers
    assert link.label not in coordinator._engine._peers
    prefix = f"{loaded.entry_id}_peer_{subentry_id}"
    assert dr.async_get(hass).async_get_device({(DOMAIN, prefix)}) is None
    assert er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{prefix}_state") is None
    # The engine kept running: it was not a reload.
    assert coordinator.engine_running


async def test_pin_mismatch_on_connect_raises_a_repair_issue(
    hass: HomeAssistant,
    config_dir: Path,
    esphome_command: str,
    make_receiver: ReceiverFactory,
) -> None:
    """A stored pin that the receiver does not match: repair issue, state rejected."""
    receiver = await make_receiver()
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="ESPHome Pipeline (esphome)",
        unique_id=str(config_dir),
        data={"config_dir": str(config_dir)},
        options={"esphome_command": esphome_command},
        entry_id="01TESTENTRY",
        subentries_data=[
            ConfigSubentryData(
                data={"host": "127.0.0.1", "port": receiver.port, "pin": "ab" * 32},
                subentry_type=SUBENTRY_BUILD_PEER,
                title="Old receiver",
                unique_id="ab" * 32,
            )
        ],
    )
    await setup_entry(hass, entry)
    try:
        (subentry_id,) = entry.subentries
        peer = manager_of(entry).peers[subentry_id]
        await peer.link.wait_for(lambda status: status.state is LinkState.PIN_MISMATCH, WAIT)
        await hass.async_block_till_done()
        issue = ir.async_get(hass).async_get_issue(
            DOMAIN, pin_issue_id(entry.entry_id, subentry_id)
        )
        assert issue is not None
        assert issue.translation_key == "peer_pin_changed"
        state_id = er.async_get(hass).async_get_entity_id(
            "sensor", DOMAIN, f"{entry.entry_id}_peer_{subentry_id}_state"
        )
        assert hass.states.get(state_id).state == "rejected"  # type: ignore[arg-type,union-attr]
        assert not receiver.jobs

        hass.config_entries.async_remove_subentry(entry, subentry_id)
        await hass.async_block_till_done()
        issue_id = pin_issue_id(entry.entry_id, subentry_id)
        assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    finally:
        await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()


async def test_a_receiver_that_wants_approval_on_screen_is_a_form_error(
    hass: HomeAssistant, loaded: MockConfigEntry, make_receiver: ReceiverFactory
) -> None:
    """A pending request (the owner approves on the receiver) stores nothing yet."""
    receiver = await make_receiver()
    result = await to_pair_step(hass, loaded, receiver)
    pending = PairingResult(
        host="127.0.0.1", port=receiver.port, pin=receiver.pin, approved=False, esphome_version=None
    )
    with patch("custom_components.esphome_pipeline.peer_flow.pair", return_value=pending):
        result = dict(
            await hass.config_entries.subentries.async_configure(
                result["flow_id"], {"pairing_key": receiver.pairing_key}
            )
        )
    assert result["errors"] == {"base": "approval_pending"}
    assert not loaded.subentries


async def test_diagnostics_never_show_our_key(
    hass: HomeAssistant, loaded: MockConfigEntry, make_receiver: ReceiverFactory
) -> None:
    """The private key stays in its file."""
    receiver = await make_receiver()
    await pair_through_flow(hass, loaded, receiver)
    key = await hass.async_add_executor_job(identity_path(hass, loaded.entry_id).read_bytes)
    shown = json.dumps(await async_get_config_entry_diagnostics(hass, loaded), default=str)
    assert key.hex() not in shown
    assert base64.b64encode(key).decode() not in shown
