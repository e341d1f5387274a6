"""Meeting a build peer: preview its identity, pair with it, and the link that follows.

Owns the one-shot handshakes a pairing flow runs: `preview` (the receiver's pin and emoji
fingerprint, ESPHome version and whether it wants a pairing key; it changes nothing on the
receiver), `pair` (sends our pairing request with the key, but only after the receiver's key
matched the previewed pin) and `await_approval` (for a receiver whose owner approves requests
on its screen). Every failure is a `PairingError` with a `kind` a form can show:

- `unreachable`: nothing answers at host:port, or the handshake did not finish;
- `pin_changed`: the receiver's key is not the one previewed (nothing was sent);
- `no_pairing_window`: the key was wrong or the pairing window is closed (a headless
  receiver answers both the same way on purpose);
- `rejected`: the receiver refused for another reason (for instance it holds another key
  for our id);
- `protocol`: the other side is not a Device Builder receiver.

`PeerLink` (the persistent link after pairing) lives in `link.py` and is re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from .identity import PeerIdentity, emoji_fingerprint, fingerprint_names, format_pin
from .link import PeerLink
from .status import LinkState, PeerStatus
from .transport import open_channel
from .wire import (
    HANDSHAKE_TIMEOUT,
    Intent,
    IntentResponse,
    PeerError,
    PeerPinMismatchError,
    PeerProtocolError,
    PeerUnreachableError,
    clip,
)

__all__ = [
    "LinkState",
    "PairingError",
    "PairingResult",
    "PeerLink",
    "PeerPreview",
    "PeerStatus",
    "await_approval",
    "dashboard_id_for",
    "pair",
    "preview",
]

APPROVAL_TIMEOUT: Final = 300.0


class PairingError(PeerError):
    """Pairing did not happen; `kind` says why (see the module docstring)."""

    def __init__(self, kind: str, message: str) -> None:
        """Keep the kind for the form error."""
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class PeerPreview:
    """What a receiver tells about itself before pairing."""

    host: str
    port: int
    pin: str
    esphome_version: str | None
    friendly_name: str | None
    requires_pairing_key: bool

    @property
    def emoji(self) -> str:
        """The seven-emoji fingerprint, as the receiver's banner prints it."""
        return emoji_fingerprint(self.pin)

    @property
    def emoji_names(self) -> str:
        """The names of those emoji."""
        return fingerprint_names(self.pin)

    @property
    def formatted_pin(self) -> str:
        """The pin in byte pairs, as the receiver prints it."""
        return format_pin(self.pin)


@dataclass(frozen=True, slots=True)
class PairingResult:
    """An approved pairing: what the subentry stores (the pin is the pinned key)."""

    host: str
    port: int
    pin: str
    approved: bool
    """False when the receiver's owner still has to accept the request (`await_approval`)."""
    esphome_version: str | None


def dashboard_id_for(identity: PeerIdentity) -> str:
    """Return the id receivers know us by: stable for our key, within their alphabet."""
    # 33 characters of [a-z0-9-]: inside the receiver's alphabet and its 64-character limit.
    return f"esphome-pipeline-{identity.pin[:16]}"


def _version(response: dict[str, Any]) -> str | None:
    value = response.get("esphome_version")
    return clip(value, 64) if isinstance(value, str) and value else None


async def _round_trip(
    host: str,
    port: int,
    identity: PeerIdentity,
    intent: Intent,
    hello: dict[str, Any],
    *,
    expected_pin: str | None,
    http: aiohttp.ClientSession | None,
    connect_timeout: float,
) -> tuple[str, dict[str, Any]]:
    """Run one handshake, close, and return (receiver pin, answer); errors as PairingError."""
    try:
        channel, response = await open_channel(
            host,
            port,
            identity,
            intent,
            hello,
            expected_pin=expected_pin,
            http=http,
            connect_timeout=connect_timeout,
        )
    except PeerPinMismatchError as err:
        raise PairingError(
            "pin_changed",
            f"The receiver at {host}:{port} now presents another identity (pin "
            f"{err.observed}) than the one previewed; nothing was sent.",
        ) from err
    except PeerUnreachableError as err:
        raise PairingError("unreachable", str(err)) from err
    except PeerProtocolError as err:
        raise PairingError(
            "protocol", f"{host}:{port} does not speak the Device Builder peer link: {err}"
        ) from err
    await channel.close()
    return channel.peer_pin, response


async def preview(
    host: str,
    port: int,
    identity: PeerIdentity,
    *,
    http: aiohttp.ClientSession | None = None,
    connect_timeout: float = HANDSHAKE_TIMEOUT,
) -> PeerPreview:
    """Show who answers at host:port, without asking for anything."""
    pin, response = await _round_trip(
        host,
        port,
        identity,
        Intent.PREVIEW,
        {},
        expected_pin=None,
        http=http,
        connect_timeout=connect_timeout,
    )
    if response["intent_response"] != IntentResponse.OK:
        raise PairingError(
            "rejected", f"The receiver refused the preview ({clip(response['intent_response'])})"
        )
    friendly = response.get("friendly_name")
    return PeerPreview(
        host=host,
        port=port,
        pin=pin,
        esphome_version=_version(response),
        friendly_name=clip(friendly, 128) if isinstance(friendly, str) and friendly else None,
        requires_pairing_key=response.get("requires_pairing_key") is True,
    )


def _hello(identity: PeerIdentity, label: str) -> dict[str, Any]:
    return {
        "dashboard_id": dashboard_id_for(identity),
        "label": label,
        "friendly_name": label,
        "ha_addon": False,
    }


def _result_or_error(
    host: str, port: int, pin: str, response: dict[str, Any], *, pending_ok: bool
) -> PairingResult:
    answer = response["intent_response"]
    reason = response.get("reason")
    if answer == IntentResponse.APPROVED or (pending_ok and answer == IntentResponse.PENDING):
        return PairingResult(
            host=host,
            port=port,
            pin=pin,
            approved=answer == IntentResponse.APPROVED,
            esphome_version=_version(response),
        )
    if answer == IntentResponse.NO_PAIRING_WINDOW:
        raise PairingError(
            "no_pairing_window",
            "The receiver refused the pairing: the pairing key is wrong or its pairing window "
            "is closed (restart the receiver to open a new window).",
        )
    detail = f" ({clip(reason, 100)})" if isinstance(reason, str) and reason else ""
    raise PairingError("rejected", f"The receiver refused the pairing: {clip(answer, 50)}{detail}")


async def pair(
    host: str,
    port: int,
    identity: PeerIdentity,
    *,
    pairing_key: str | None,
    expected_pin: str,
    label: str,
    http: aiohttp.ClientSession | None = None,
    connect_timeout: float = HANDSHAKE_TIMEOUT,
) -> PairingResult:
    """Ask the receiver previewed with `expected_pin` to pair with us.

    The key and our id travel only after the receiver proved it holds the previewed key.
    A receiver without a pairing key (its owner approves on screen) answers `pending`; then
    `approved` is False and `await_approval` waits for the owner's decision.
    """
    hello = _hello(identity, label)
    if pairing_key:
        hello["pairing_key"] = pairing_key.strip()
    pin, response = await _round_trip(
        host,
        port,
        identity,
        Intent.PAIR_REQUEST,
        hello,
        expected_pin=expected_pin,
        http=http,
        connect_timeout=connect_timeout,
    )
    return _result_or_error(host, port, pin, response, pending_ok=True)


async def await_approval(
    host: str,
    port: int,
    identity: PeerIdentity,
    *,
    expected_pin: str,
    label: str,
    http: aiohttp.ClientSession | None = None,
    approval_timeout: float = APPROVAL_TIMEOUT,
) -> PairingResult:
    """Wait until the receiver's owner accepts (or refuses) our pending pairing request."""
    pin, response = await _round_trip(
        host,
        port,
        identity,
        Intent.PAIR_STATUS,
        _hello(identity, label),
        expected_pin=expected_pin,
        http=http,
        connect_timeout=approval_timeout,
    )
    return _result_or_error(host, port, pin, response, pending_ok=False)
