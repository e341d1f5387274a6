"""Whether a networked device answers at all: one bounded TCP connect to its native API port.

Owns the cheap presence probe asked before an OTA upload starts and, while an upload waits
for its device, every few seconds (`offline_watch.py`). The host is resolved the way the
native API client resolves it (aioesphomeapi: an IP as is, a `.local` name over mDNS and the
system resolver at once), then one TCP connection is opened to the API port and closed again
without a word. A connection means the device answers; refused, unreachable, unresolved or
silent within the bound means it does not. No handshake: this costs the device nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from aioesphomeapi.core import APIConnectionError
from aioesphomeapi.host_resolver import async_resolve_host
from aioesphomeapi.zeroconf import ZeroconfManager

from .build_records import ApiEndpoint

_LOGGER = logging.getLogger(__name__)

PRESENCE_TIMEOUT: Final = 3.0
"""Seconds one presence probe may take (resolve and connect)."""


async def device_answers(
    endpoint: ApiEndpoint, *, within: float = PRESENCE_TIMEOUT, zeroconf: Any = None
) -> bool:
    """True when a TCP connection to the device's native API port opens within `within` s.

    `zeroconf` is the shared zeroconf instance for `.local` names (Home Assistant's own).
    """
    try:
        async with asyncio.timeout(within):
            manager = None if zeroconf is None else ZeroconfManager(zeroconf)
            addresses = await async_resolve_host(
                [endpoint.host], endpoint.port, manager, timeout=within
            )
            address = addresses[0].sockaddr
            _reader, writer = await asyncio.open_connection(address.address, endpoint.port)
    except (TimeoutError, APIConnectionError, OSError, IndexError) as err:
        _LOGGER.debug("%s:%s does not answer: %r", endpoint.host, endpoint.port, err)
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
