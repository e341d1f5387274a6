"""Receivers found through zeroconf, offered in "Add build peer" for one click.

Home Assistant's zeroconf is the test fixture's fake (`mock_async_zeroconf`: a real DNS cache,
no sockets); the answers are real DNS records of `_esphomebuilder._tcp` announcements put in
that cache, and the browser is replaced by one that reports them as added. The receivers
themselves are our test receiver (real aiohttp server on 127.0.0.1, real Noise handshake), so
a found receiver is really previewed and paired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import json
from pathlib import Path
import re
import socket
from typing import Any, ClassVar
from unittest.mock import MagicMock, patch

from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from zeroconf import ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceInfo

from custom_components.esphome_pipeline import peer_discovery
from custom_components.esphome_pipeline.engine.peer.identity import emoji_fingerprint
from custom_components.esphome_pipeline.peer_discovery import (
    SERVICE_TYPE,
    FoundReceiver,
    async_found_receivers,
    receiver_from_info,
)
from custom_components.esphome_pipeline.peers import SUBENTRY_BUILD_PEER
from tests.fakes.test_receiver import PeerReceiver

type Announce = Callable[..., str]


class FakeBrowser:
    """Stands in for zeroconf's browser: reports every announced name as added at once."""

    instances: ClassVar[list[FakeBrowser]] = []
    names: ClassVar[list[str]] = []

    def __init__(self, zc: Zeroconf, service_type: str, handlers: list[Any]) -> None:
        self.handler = handlers[0]
        self.zc = zc
        self.service_type = service_type
        self.cancelled = False
        FakeBrowser.instances.append(self)
        for name in FakeBrowser.names:
            self.report(name, ServiceStateChange.Added)

    def report(self, name: str, change: ServiceStateChange) -> None:
        self.handler(
            zeroconf=self.zc, service_type=self.service_type, name=name, state_change=change
        )

    async def async_cancel(self) -> None:
        self.cancelled = True


@pytest.fixture
def fake_zeroconf(hass: HomeAssistant, mock_async_zeroconf: MagicMock) -> Iterator[Announce]:
    """Zeroconf loaded (faked); `announce(...)` puts an announcement in its cache."""
    hass.config.components.add("zeroconf")
    FakeBrowser.instances.clear()
    FakeBrowser.names.clear()
    cache = mock_async_zeroconf.zeroconf.cache

    def announce(instance: str, *, address: str = "127.0.0.1", **txt: str) -> str:
        name = f"{instance}.{SERVICE_TYPE}"
        info = ServiceInfo(
            SERVICE_TYPE,
            name,
            addresses=[socket.inet_aton(address)],
            port=6052,
            properties=txt,
            server=f"{instance}.local.",
        )
        # A new announcement of the same name replaces the old one, as on the wire.
        cache.async_remove_records(cache.async_entries_with_name(name))
        cache.async_add_records([info.dns_service(), info.dns_text(), *info.dns_addresses()])
        if name not in FakeBrowser.names:
            FakeBrowser.names.append(name)
        return name

    with patch.object(peer_discovery, "AsyncServiceBrowser", FakeBrowser):
        yield announce


def announce_receiver(announce: Announce, receiver: PeerReceiver, **extra: str) -> str:
    """Announce `receiver` the way Device Builder does."""
    txt = {
        "server_version": "1.26.0",
        "esphome_version": "2026.10.0",
        "friendly_name": "Desk PC",
        "pin_sha256": receiver.pin,
        "remote_build_port": str(receiver.port),
        **extra,
    }
    return announce("esphome-builder-desk", **txt)


async def open_flow(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_BUILD_PEER), context={"source": "user"}
    )
    assert result["type"] is FlowResultType.FORM
    return dict(result)


def offered(result: dict[str, Any]) -> list[dict[str, str]]:
    """The options of the form's receiver choice ([] when the form has none)."""
    for key, value in result["data_schema"].schema.items():
        if str(key) == "receiver":
            options: list[dict[str, str]] = value.config["options"]
            return options
    return []


async def submit(hass: HomeAssistant, flow_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return dict(await hass.config_entries.subentries.async_configure(flow_id, data))


async def test_a_found_receiver_is_offered_previewed_and_paired(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    fake_zeroconf: Announce,
    receiver: PeerReceiver,
) -> None:
    """One click on the found receiver: its fingerprint is shown, then the key pairs."""
    service = announce_receiver(fake_zeroconf, receiver)
    # A Device Builder that does not accept builds announces no peer-link port.
    fake_zeroconf("esphome-builder-other", friendly_name="Laptop", esphome_version="2026.9.0")

    result = await open_flow(hass, loaded)
    options = offered(result)
    assert [option["value"] for option in options] == [service, "manual"]
    assert options[0]["label"] == (
        f"Desk PC (127.0.0.1:{receiver.port}) · ESPHome 2026.10.0 · "
        f"{emoji_fingerprint(receiver.pin)}"
    )

    result = await submit(hass, result["flow_id"], {"receiver": service, "port": 6055})
    assert result["step_id"] == "pair"
    assert result["description_placeholders"]["emoji"] == emoji_fingerprint(receiver.pin)
    assert result["description_placeholders"]["address"] == f"127.0.0.1:{receiver.port}"

    result = await submit(hass, result["flow_id"], {"pairing_key": receiver.pairing_key})
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    (subentry,) = loaded.subentries.values()
    assert dict(subentry.data) == {"host": "127.0.0.1", "port": receiver.port, "pin": receiver.pin}

    # Paired now: the next "Add build peer" no longer offers it.
    assert [option["value"] for option in offered(await open_flow(hass, loaded))] == []


async def test_a_receiver_whose_key_differs_from_its_announcement_is_refused(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    fake_zeroconf: Announce,
    receiver: PeerReceiver,
) -> None:
    """What answers at the announced address is not what was announced: no fingerprint shown."""
    service = announce_receiver(fake_zeroconf, receiver, pin_sha256="ab" * 32)
    result = await open_flow(hass, loaded)
    result = await submit(hass, result["flow_id"], {"receiver": service, "port": 6055})
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": "announced_pin_differs"}
    assert not receiver.approved
    assert not loaded.subentries


async def test_host_and_port_can_still_be_typed_when_receivers_are_found(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    fake_zeroconf: Announce,
    receiver: PeerReceiver,
) -> None:
    """ "Enter host and port" uses the typed address; without a host it asks for one."""
    fake_zeroconf("esphome-builder-elsewhere", remote_build_port="6055", address="192.0.2.9")
    result = await open_flow(hass, loaded)
    assert len(offered(result)) == 2

    result = await submit(hass, result["flow_id"], {"receiver": "manual", "port": 6055})
    assert result["errors"] == {"host": "host_required"}

    result = await submit(
        hass, result["flow_id"], {"receiver": "manual", "host": "127.0.0.1", "port": receiver.port}
    )
    assert result["step_id"] == "pair"
    assert result["description_placeholders"]["name"] == "Desk PC"


async def test_without_zeroconf_the_form_asks_for_host_and_port_only(
    hass: HomeAssistant, loaded: MockConfigEntry
) -> None:
    """Home Assistant without its zeroconf integration: nothing is browsed, no choice shown."""
    assert "zeroconf" not in hass.config.components
    result = await open_flow(hass, loaded)
    assert offered(result) == []
    assert [str(key) for key in result["data_schema"].schema] == ["host", "port"]


async def test_the_browser_follows_the_network_and_stops_with_home_assistant(
    hass: HomeAssistant, fake_zeroconf: Announce
) -> None:
    """Started once, on Home Assistant's zeroconf; removals drop; stop cancels the browse."""
    first = fake_zeroconf("first", remote_build_port="6055", friendly_name="First")
    assert [found.friendly_name for found in await async_found_receivers(hass)] == ["First"]
    (browser,) = FakeBrowser.instances
    assert browser.service_type == SERVICE_TYPE

    second = fake_zeroconf("second", remote_build_port="6056", friendly_name="Second")
    browser.report(second, ServiceStateChange.Added)
    await hass.async_block_till_done()
    browser.report(first, ServiceStateChange.Removed)
    assert [found.friendly_name for found in await async_found_receivers(hass)] == ["Second"]
    assert len(FakeBrowser.instances) == 1

    # The receiver stops accepting builds: its updated announcement drops the port.
    fake_zeroconf("second", friendly_name="Second")
    browser.report(second, ServiceStateChange.Updated)
    await hass.async_block_till_done()
    assert await async_found_receivers(hass) == []

    # A name whose records never arrive (the request times out) is not offered.
    with patch.object(AsyncServiceInfo, "async_request", return_value=False) as ask:
        browser.report(f"silent.{SERVICE_TYPE}", ServiceStateChange.Added)
        await hass.async_block_till_done()
    ask.assert_awaited_once()
    assert await async_found_receivers(hass) == []

    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    assert browser.cancelled


def _info(properties: dict[str, str], addresses: list[str]) -> ServiceInfo:
    return ServiceInfo(
        SERVICE_TYPE,
        f"desk.{SERVICE_TYPE}",
        parsed_addresses=addresses,
        port=6052,
        properties=properties,
        server="desk.local.",
    )


@pytest.mark.parametrize(
    ("properties", "addresses", "expected"),
    [
        ({"remote_build_port": "6055"}, ["192.0.2.7"], ("192.0.2.7", 6055, "", "desk")),
        ({"remote_build_port": "x"}, ["192.0.2.7"], None),
        ({"remote_build_port": "70000"}, ["192.0.2.7"], None),
        ({}, ["192.0.2.7"], None),
        # Only link-local or IPv6 addresses: the host name is the address to use.
        (
            {"remote_build_port": "6055"},
            ["169.254.1.1", "fd00::5"],
            ("desk.local", 6055, "", "desk"),
        ),
        # A malformed announced pin is ignored (the preview shows the real one).
        (
            {"remote_build_port": "6055", "pin_sha256": "zz", "friendly_name": "Desk"},
            ["192.0.2.7"],
            ("192.0.2.7", 6055, "", "Desk"),
        ),
    ],
)
def test_reading_an_announcement(
    properties: dict[str, str],
    addresses: list[str],
    expected: tuple[str, int, str, str] | None,
) -> None:
    """Which announcements are receivers, and the address each is reached at."""
    found = receiver_from_info(_info(properties, addresses))
    if expected is None:
        assert found is None
        return
    assert isinstance(found, FoundReceiver)
    assert (found.host, found.port, found.pin, found.friendly_name) == expected


def test_no_translation_reads_as_a_markup_tag() -> None:
    """The frontend formats strings as ICU messages: `<folder>` became "UNCLOSED_TAG"."""
    strings = json.loads(
        (Path(peer_discovery.__file__).parent / "strings.json").read_text(encoding="utf-8")
    )

    def texts(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for value in node.values():
                yield from texts(value)
        elif isinstance(node, str):
            yield node

    assert [text for text in texts(strings) if re.search(r"</?[A-Za-z]", text)] == []
