"""Build receivers found on the network (`_esphomebuilder._tcp`), for "Add build peer".

ESPHome Device Builder announces itself as `_esphomebuilder._tcp.local.`. Its TXT record
carries `remote_build_port` (the peer-link port; present only while it accepts builds),
`pin_sha256`, `esphome_version` and `friendly_name`. `async_found_receivers` returns the
receivers seen so far so the flow can offer them for one click.

The browse runs on Home Assistant's shared zeroconf instance and only when the zeroconf
integration is loaded (it is part of `default_config`); without it nothing is opened and the
flow asks for host and port as before. The browser starts on first use and stays until Home
Assistant stops; only that first call waits, at most `FIRST_ANSWER_WAIT` seconds, for the
first answer. A Device Builder that does not accept builds (no `remote_build_port`) is not
offered. An announcement is a hint, not a proof: the flow still previews the receiver and shows
the fingerprint it really presents, and refuses one that differs from the announced pin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
import contextlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
import logging
from typing import Final

from homeassistant.components import zeroconf
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from homeassistant.util.hass_dict import HassKey
from zeroconf import IPVersion, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo

from .const import DOMAIN
from .engine.peer.identity import normalise_pin

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE: Final = "_esphomebuilder._tcp.local."
FIRST_ANSWER_WAIT: Final = 2.0
"""Seconds the first "Add build peer" form waits for the first answer (once per start)."""
RESOLVE_TIMEOUT_MS: Final = 3000
_BROWSER: HassKey[ReceiverBrowser] = HassKey(f"{DOMAIN}_receiver_browser")


@dataclass(frozen=True, slots=True)
class FoundReceiver:
    """A receiver as its announcement describes it (unchecked until previewed)."""

    service: str
    host: str
    port: int
    pin: str
    esphome_version: str
    friendly_name: str

    @property
    def address(self) -> str:
        """host:port, as the user would type it."""
        return f"{self.host}:{self.port}"


def receiver_from_info(info: ServiceInfo) -> FoundReceiver | None:
    """Read an announcement this module resolved; None for one that does not accept builds."""
    addresses = info.ip_addresses_by_version(IPVersion.All)
    return _receiver(info.name, info.decoded_properties, addresses, info.server or "")


def receiver_from_discovery(info: ZeroconfServiceInfo) -> FoundReceiver | None:
    """Read an announcement Home Assistant's zeroconf discovered (manifest `zeroconf`)."""
    properties = {key: value for key, value in info.properties.items() if isinstance(value, str)}
    return _receiver(info.name, properties, info.ip_addresses, info.hostname)


def _receiver(
    name: str,
    properties: Mapping[str, str | None],
    addresses: Sequence[IPv4Address | IPv6Address],
    server: str,
) -> FoundReceiver | None:
    try:
        port = int(properties.get("remote_build_port") or "")
    except ValueError:
        return None
    host = _best_host(addresses, server)
    if not 0 < port < 65536 or not host:
        return None
    return FoundReceiver(
        service=name,
        host=host,
        port=port,
        pin=_announced_pin(properties.get("pin_sha256")),
        esphome_version=properties.get("esphome_version") or "",
        friendly_name=properties.get("friendly_name") or name.split(".", 1)[0],
    )


def _announced_pin(value: str | None) -> str:
    """The announced pin in hex, or "" when none (or no valid one) is announced."""
    try:
        return normalise_pin(value or "")
    except ValueError:
        return ""


def _best_host(addresses: Sequence[IPv4Address | IPv6Address], server: str) -> str:
    """An IPv4 address when one is announced (typed as-is everywhere), else the host name."""
    for address in addresses:
        if isinstance(address, IPv4Address) and not (
            address.is_link_local or address.is_unspecified
        ):
            return str(address)
    return server.rstrip(".")


class ReceiverBrowser:
    """Browses `_esphomebuilder._tcp` and keeps what answered, by service name."""

    def __init__(self, hass: HomeAssistant, zc: Zeroconf) -> None:
        """Start browsing on `zc` (Home Assistant's shared instance)."""
        self._hass = hass
        self._zc = zc
        self.found: dict[str, FoundReceiver] = {}
        self.first_answer = asyncio.Event()
        self._browser = AsyncServiceBrowser(zc, SERVICE_TYPE, handlers=[self._on_change])

    def _on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        # zeroconf calls handlers by keyword, in the event loop.
        if state_change is ServiceStateChange.Removed:
            self.found.pop(name, None)
            return
        self._hass.async_create_background_task(
            self._async_resolve(service_type, name), f"{DOMAIN} resolve {name}"
        )

    async def _async_resolve(self, service_type: str, name: str) -> None:
        info = AsyncServiceInfo(service_type, name)
        if not info.load_from_cache(self._zc):
            await info.async_request(self._zc, RESOLVE_TIMEOUT_MS)
        if info.port is None or not info.decoded_properties:
            _LOGGER.debug("Receiver %s did not resolve", name)
            return
        receiver = receiver_from_info(info)
        if receiver is None:
            self.found.pop(name, None)
            return
        self.found[name] = receiver
        self.first_answer.set()

    async def async_stop(self) -> None:
        """Stop browsing."""
        await self._browser.async_cancel()


async def async_found_receivers(hass: HomeAssistant) -> list[FoundReceiver]:
    """Return the receivers announced now; [] when Home Assistant runs without zeroconf."""
    if "zeroconf" not in hass.config.components:
        return []
    browser = hass.data.get(_BROWSER)
    if browser is None:
        aiozc = await zeroconf.async_get_async_instance(hass)
        browser = hass.data[_BROWSER] = ReceiverBrowser(hass, aiozc.zeroconf)

        async def _async_stop(_event: Event) -> None:
            hass.data.pop(_BROWSER, None)
            await browser.async_stop()

        hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _async_stop)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_ANSWER_WAIT):
                await browser.first_answer.wait()
    return sorted(browser.found.values(), key=lambda found: (found.friendly_name, found.address))
