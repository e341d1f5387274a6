"""What is known about a build peer right now, and who wants to hear when it changes.

Owns `LinkState`, `PeerStatus` (connection, the compile lane from `queue_status`, ESPHome
version and name, last error, session and heartbeat counts) and `StatusBoard`, which holds the
current status, calls listeners on every change and lets a caller await the first status that
satisfies a condition (how the scheduler and the tests wait, without polling).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
import logging
import re
from typing import Any, Final

from .wire import clip

_LOGGER = logging.getLogger(__name__)
_VERSION_RE: Final = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$")


class LinkState(StrEnum):
    """Where the link stands."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    OFFLINE = "offline"
    REJECTED = "rejected"
    """The receiver refused the link (it no longer knows us); retried with backoff."""
    PIN_MISMATCH = "pin_mismatch"
    """The receiver presented another key: the link stopped and sends nothing more."""
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """What is known about the peer right now."""

    state: LinkState = LinkState.CONNECTING
    idle: bool = False
    running: bool = False
    queue_depth: int = 0
    esphome_version: str | None = None
    friendly_name: str | None = None
    error: str | None = None
    sessions: int = 0
    """How many sessions were opened so far (a reconnect raises it)."""
    heartbeats: int = 0
    """How many of our heartbeat pings the peer answered so far (all sessions together)."""

    @property
    def connected(self) -> bool:
        """True while a session is open."""
        return self.state is LinkState.CONNECTED

    @property
    def available(self) -> bool:
        """True when the peer could start a compile at once."""
        return self.connected and self.idle and not self.running and self.queue_depth == 0


def version_from(response: dict[str, Any]) -> str | None:
    value = response.get("esphome_version")
    return value if isinstance(value, str) and _VERSION_RE.fullmatch(value) else None


def text_from(response: dict[str, Any], key: str) -> str | None:
    value = response.get(key)
    return clip(value.strip(), 128) or None if isinstance(value, str) else None


class StatusBoard:
    """The current status of one peer, its listeners and its waiters."""

    def __init__(self) -> None:
        """Start as connecting."""
        self._status = PeerStatus()
        self._listeners: list[Callable[[PeerStatus], None]] = []
        self._waiters: list[tuple[Callable[[PeerStatus], bool], asyncio.Future[PeerStatus]]] = []

    @property
    def status(self) -> PeerStatus:
        """The current status."""
        return self._status

    def subscribe(self, callback: Callable[[PeerStatus], None]) -> Callable[[], None]:
        """Call `callback` with every new status; return the function that unsubscribes."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    async def wait_for(
        self, predicate: Callable[[PeerStatus], bool], within: float | None = None
    ) -> PeerStatus:
        """Return the first status (the current one included) for which `predicate` holds."""
        if predicate(self._status):
            return self._status
        future: asyncio.Future[PeerStatus] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(within):
                return await future
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def update(self, **changes: Any) -> None:
        """Change some fields and tell everyone who listens or waits."""
        self._status = replace(self._status, **changes)
        for callback in list(self._listeners):
            try:
                callback(self._status)
            except Exception:
                _LOGGER.exception("A peer status listener failed")
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(self._status):
                future.set_result(self._status)
