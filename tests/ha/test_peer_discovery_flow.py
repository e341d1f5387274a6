"""A receiver Home Assistant's zeroconf discovered: the "Discovered" card pairs it as a peer.

The discovery is what Home Assistant's zeroconf hands the flow (`ZeroconfServiceInfo`, as for
the manifest's `zeroconf` entry); the receiver behind it is our test receiver (real aiohttp
server on 127.0.0.1, real Noise handshake).
"""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

from homeassistant.config_entries import SOURCE_ZEROCONF
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esphome_pipeline.const import CONF_CONFIG_DIR, CONF_ESPHOME_COMMAND, DOMAIN
from custom_components.esphome_pipeline.engine.peer.identity import emoji_fingerprint
from custom_components.esphome_pipeline.peer_discovery import SERVICE_TYPE
from custom_components.esphome_pipeline.peers import SUBENTRY_BUILD_PEER, PeerManager
from tests.fakes.real_receiver import free_port
from tests.fakes.test_receiver import PeerReceiver

from .conftest import setup_entry


def announcement(port: int, pin: str, **txt: str) -> ZeroconfServiceInfo:
    """What Home Assistant's zeroconf hands the flow for a Device Builder announcement."""
    properties = {
        "server_version": "1.26.0",
        "esphome_version": "2026.10.0",
        "friendly_name": "Desk PC",
        "pin_sha256": pin,
        "remote_build_port": str(port),
        **txt,
    }
    address = ip_address("127.0.0.1")
    return ZeroconfServiceInfo(
        ip_address=address,
        ip_addresses=[address],
        port=6052,
        hostname="esphome-builder-desk.local.",
        type=SERVICE_TYPE,
        name=f"esphome-builder-desk.{SERVICE_TYPE}",
        properties=properties,
    )


async def discover(hass: HomeAssistant, info: ZeroconfServiceInfo) -> dict[str, object]:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=info
    )
    return dict(result)


async def submit(hass: HomeAssistant, flow_id: str, data: dict[str, str]) -> dict[str, object]:
    return dict(await hass.config_entries.flow.async_configure(flow_id, data))


async def test_a_discovered_receiver_is_paired_into_the_entry(
    hass: HomeAssistant, loaded: MockConfigEntry, receiver: PeerReceiver
) -> None:
    """The card shows the fingerprint that answers; the right key adds the build peer."""
    result = await discover(hass, announcement(receiver.port, receiver.pin))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "pair_receiver"
    placeholders = result["description_placeholders"]
    assert isinstance(placeholders, dict)
    assert placeholders["emoji"] == emoji_fingerprint(receiver.pin)
    assert placeholders["address"] == f"127.0.0.1:{receiver.port}"
    flow_id = str(result["flow_id"])

    result = await submit(hass, flow_id, {"pairing_key": "AAAA-BBBB-CCCC-DDDD"})
    assert result["errors"] == {"base": "no_pairing_window"}
    assert not loaded.subentries

    result = await submit(hass, flow_id, {"pairing_key": receiver.pairing_key})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "peer_paired"
    await hass.async_block_till_done()
    (subentry,) = loaded.subentries.values()
    assert subentry.subentry_type == SUBENTRY_BUILD_PEER
    assert subentry.unique_id == receiver.pin
    assert dict(subentry.data) == {"host": "127.0.0.1", "port": receiver.port, "pin": receiver.pin}
    manager: PeerManager = loaded.runtime_data.peers
    assert list(manager.peers) == [subentry.subentry_id]

    # Announced again later: nothing to offer any more.
    result = await discover(hass, announcement(receiver.port, receiver.pin))
    assert result["reason"] == "peer_already_paired"


async def test_with_several_entries_the_user_picks_the_one_the_peer_joins(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    receiver: PeerReceiver,
    tmp_path: Path,
    esphome_command: str,
) -> None:
    """Two configuration folders: the form asks which entry the peer builds for."""
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = MockConfigEntry(
        domain=DOMAIN,
        title="ESPHome Pipeline (other)",
        unique_id=str(other_dir),
        data={CONF_CONFIG_DIR: str(other_dir)},
        options={CONF_ESPHOME_COMMAND: esphome_command},
    )
    await setup_entry(hass, other)
    result = await discover(hass, announcement(receiver.port, receiver.pin))
    assert [str(key) for key in result["data_schema"].schema] == ["pairing_key", "entry"]  # type: ignore[attr-defined]

    result = await submit(
        hass,
        str(result["flow_id"]),
        {"pairing_key": receiver.pairing_key, "entry": other.entry_id},
    )
    assert result["reason"] == "peer_paired"
    assert result["description_placeholders"] == {
        "name": "Desk PC",
        "entry": "ESPHome Pipeline (other)",
    }
    assert not loaded.subentries
    assert len(other.subentries) == 1
    await hass.config_entries.async_unload(other.entry_id)
    await hass.async_block_till_done()


async def test_what_is_not_offered(
    hass: HomeAssistant, loaded: MockConfigEntry, receiver: PeerReceiver
) -> None:
    """No peer-link port or pin, nothing answering, or another key than announced: no card."""
    without_port = announcement(receiver.port, receiver.pin)
    without_port.properties.pop("remote_build_port")
    assert (await discover(hass, without_port))["reason"] == "not_a_build_receiver"
    without_pin = announcement(receiver.port, "")
    assert (await discover(hass, without_pin))["reason"] == "not_a_build_receiver"

    silent = announcement(free_port(), "cd" * 32)
    assert (await discover(hass, silent))["reason"] == "receiver_unreachable"

    impostor = announcement(receiver.port, "ab" * 32)
    assert (await discover(hass, impostor))["reason"] == "announced_pin_differs"
    assert not receiver.approved
    assert not loaded.subentries


async def test_without_an_entry_there_is_nothing_to_join(
    hass: HomeAssistant, receiver: PeerReceiver
) -> None:
    """ESPHome Pipeline not set up yet: the discovery ends silently."""
    result = await discover(hass, announcement(receiver.port, receiver.pin))
    assert result["reason"] == "no_pipeline_entry"


async def test_pairing_through_add_build_peer_removes_the_discovered_card(
    hass: HomeAssistant, loaded: MockConfigEntry, receiver: PeerReceiver
) -> None:
    """The same receiver paired from the entry's menu: its card would offer nothing."""
    card = await discover(hass, announcement(receiver.port, receiver.pin))
    assert card["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_init(
        (loaded.entry_id, SUBENTRY_BUILD_PEER), context={"source": "user"}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "port": receiver.port}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"pairing_key": receiver.pairing_key}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert hass.config_entries.flow.async_progress_by_handler(DOMAIN) == []
