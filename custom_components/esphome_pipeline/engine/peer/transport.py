"""The Noise channel to a build peer: handshake as initiator, then encrypted JSON frames.

Owns one WebSocket to `ws://HOST:PORT/remote-build/peer-link` and the
`Noise_XX_25519_ChaChaPoly_SHA256` state on it. The handshake is three binary frames: our
ephemeral key with the plaintext `{"intent": ...}`, the receiver's keys (its static key arrives
here), and our static key with an encrypted hello. Between the second and the third message
the receiver's static key is checked against the pin we stored: on a mismatch nothing more is
sent (no dashboard id, no pairing key, never a bundle) and `PeerPinMismatchError` is raised.

After the handshake every frame is one JSON object, encrypted as one Noise transport message
in one binary WebSocket message. A frame that is not binary, is larger than the cap, fails
authentication, is not JSON, is not an object or has no string `type` closes the channel with
`PeerProtocolError`: a peer that breaks the protocol gets no second chance on that session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Final, Self

import aiohttp
from aiohttp import WSMsgType
from noise.connection import Keypair, NoiseConnection
from yarl import URL

from .identity import PeerIdentity, pin_for_public_key
from .wire import (
    HANDSHAKE_TIMEOUT,
    MAX_FRAME_BYTES,
    NOISE_PATTERN,
    PEER_LINK_PATH,
    Intent,
    MessageType,
    PeerLostError,
    PeerPinMismatchError,
    PeerProtocolError,
    PeerUnreachableError,
)

_LOGGER = logging.getLogger(__name__)

NOISE_MAX_MESSAGE: Final = 65_535
_CLOSE_TIMEOUT: Final = 0.5
"""Seconds a close waits for the peer: removing a peer must end its session within 1 s."""


def peer_url(host: str, port: int) -> URL:
    """Return the peer-link URL; raise PeerUnreachableError for a host that is no host."""
    try:
        return URL.build(scheme="ws", host=host, port=port, path=PEER_LINK_PATH)
    except (TypeError, ValueError) as err:
        raise PeerUnreachableError(f"{host!r} port {port} is not a valid address: {err}") from err


def encode_frame(frame: dict[str, Any]) -> bytes:
    """Serialise one frame as compact UTF-8 JSON."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False).encode()


def decode_frame(plaintext: bytes) -> dict[str, Any]:
    """Parse a decrypted frame: a JSON object with a string `type`; else PeerProtocolError."""
    try:
        parsed = json.loads(plaintext)
    except (UnicodeDecodeError, ValueError) as err:
        raise PeerProtocolError(f"The peer sent a frame that is not JSON: {err}") from err
    if not isinstance(parsed, dict):
        raise PeerProtocolError("The peer sent a frame that is not a JSON object")
    if not isinstance(parsed.get("type"), str):
        raise PeerProtocolError("The peer sent a frame without a message type")
    return parsed


class NoiseChannel:
    """An established, encrypted link: send and receive JSON frames, close.

    Sends are serialised by a lock (the Noise nonce must advance in one order); receives must
    come from one task at a time, which the link's reader guarantees.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        noise: NoiseConnection,
        peer_pin: str,
        *,
        owns_http: bool,
    ) -> None:
        """Wrap a finished handshake."""
        self._http = http
        self._ws = ws
        self._noise = noise
        self._owns_http = owns_http
        self._send_lock = asyncio.Lock()
        self.peer_pin = peer_pin
        self.closed = False
        self._close_task: asyncio.Task[None] | None = None

    async def send(self, frame: dict[str, Any]) -> None:
        """Encrypt and send one frame; PeerLostError when the link is gone."""
        plaintext = encode_frame(frame)
        if len(plaintext) + 16 > NOISE_MAX_MESSAGE:
            raise ValueError(f"A {frame.get('type')!r} frame of {len(plaintext)} bytes is too big")
        async with self._send_lock:
            if self.closed or self._ws.closed:
                raise PeerLostError("The link to the build peer is closed")
            ciphertext = self._noise.encrypt(plaintext)
            try:
                await self._ws.send_bytes(ciphertext)
            except (aiohttp.ClientError, OSError, RuntimeError) as err:
                raise PeerLostError(f"The build peer went away while sending: {err}") from err

    async def receive(self) -> dict[str, Any]:
        """Return the next frame; PeerLostError when the peer closed, PeerProtocolError when bad.

        A protocol error closes the channel before it is raised.
        """
        try:
            return await self._receive()
        except PeerProtocolError:
            await self.close()
            raise

    async def _receive(self) -> dict[str, Any]:
        message = await self._ws.receive()
        if message.type in {WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED}:
            self.closed = True
            raise PeerLostError("The build peer closed the link")
        if message.type is WSMsgType.ERROR:
            error = message.data
            if (
                isinstance(error, aiohttp.WebSocketError)
                and error.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
            ):
                raise PeerProtocolError(
                    f"The build peer sent a frame larger than {MAX_FRAME_BYTES} bytes"
                )
            self.closed = True
            raise PeerLostError(f"The link to the build peer failed: {error}")
        if message.type is not WSMsgType.BINARY:
            raise PeerProtocolError(f"The build peer sent a {message.type.name} frame, not binary")
        data: bytes = message.data
        if len(data) > MAX_FRAME_BYTES:
            raise PeerProtocolError(f"The build peer sent a frame of {len(data)} bytes")
        try:
            plaintext = bytes(self._noise.decrypt(data))
        except Exception as err:
            raise PeerProtocolError(
                "The build peer sent a frame that failed Noise authentication"
            ) from err
        return decode_frame(plaintext)

    async def close(self, reason: str | None = None) -> None:
        """Close the link at once; with a reason, tell the peer first (best effort).

        The first call starts the close as a task of its own and every call waits for it, so
        a caller being cancelled never leaves a half-closed socket or session behind.
        """
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self._close(reason))
        await asyncio.shield(self._close_task)

    async def _close(self, reason: str | None) -> None:
        try:
            if reason is not None and not self.closed and not self._ws.closed:
                with contextlib.suppress(PeerLostError, TimeoutError):
                    async with asyncio.timeout(_CLOSE_TIMEOUT):
                        await self.send({"type": MessageType.TERMINATE, "reason": reason})
            self.closed = True
            with contextlib.suppress(aiohttp.ClientError, OSError, RuntimeError, TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await self._ws.close()
        finally:
            self.closed = True
            if self._owns_http:
                await self._http.close()

    async def __aenter__(self) -> Self:
        """Use as `async with`: the channel closes on exit."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the channel."""
        await self.close()


async def _read_handshake_frame(ws: aiohttp.ClientWebSocketResponse, step: str) -> bytes:
    message = await ws.receive()
    if message.type is WSMsgType.BINARY:
        data: bytes = message.data
        return data
    if message.type in {WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR}:
        raise PeerUnreachableError(f"The build peer closed the connection during the {step}")
    raise PeerProtocolError(f"The build peer sent a {message.type.name} frame during the {step}")


async def _handshake(
    ws: aiohttp.ClientWebSocketResponse,
    identity: PeerIdentity,
    intent: Intent,
    hello: dict[str, Any],
    expected_pin: str | None,
) -> tuple[NoiseConnection, str, dict[str, Any]]:
    """Run the three handshake messages and read the answer; return noise, pin, answer."""
    noise = NoiseConnection.from_name(NOISE_PATTERN)
    noise.set_as_initiator()
    noise.set_keypair_from_private_bytes(Keypair.STATIC, identity.private_key)
    noise.start_handshake()
    # The library drops its handshake state once the handshake ends; keep our own reference
    # so the receiver's static key can be read after message two.
    handshake = noise.noise_protocol.handshake_state
    await ws.send_bytes(bytes(noise.write_message(encode_frame({"intent": intent}))))
    second = await _read_handshake_frame(ws, "handshake")
    try:
        noise.read_message(second)
        peer_key = bytes(handshake.rs.public_bytes)
    except Exception as err:
        raise PeerProtocolError("The build peer's handshake message is not valid Noise XX") from err
    peer_pin = pin_for_public_key(peer_key)
    if expected_pin is not None and peer_pin != expected_pin:
        raise PeerPinMismatchError(expected_pin, peer_pin)
    await ws.send_bytes(bytes(noise.write_message(encode_frame(hello))))
    answer = await _read_handshake_frame(ws, "handshake answer")
    if len(answer) > MAX_FRAME_BYTES:
        raise PeerProtocolError("The build peer's handshake answer is too large")
    try:
        response = json.loads(bytes(noise.decrypt(answer)))
    except ValueError as err:
        raise PeerProtocolError(f"The build peer's handshake answer is not JSON: {err}") from err
    except Exception as err:
        raise PeerProtocolError(
            "The build peer's handshake answer failed Noise authentication"
        ) from err
    if not isinstance(response, dict) or not isinstance(response.get("intent_response"), str):
        raise PeerProtocolError("The build peer's handshake answer has no intent_response")
    return noise, peer_pin, response


async def open_channel(
    host: str,
    port: int,
    identity: PeerIdentity,
    intent: Intent,
    hello: dict[str, Any],
    *,
    expected_pin: str | None,
    http: aiohttp.ClientSession | None = None,
    connect_timeout: float = HANDSHAKE_TIMEOUT,
) -> tuple[NoiseChannel, dict[str, Any]]:
    """Connect, run the handshake for `intent`, and return the channel and the receiver's answer.

    `hello` is the encrypted payload of the third message; it is sent only after the
    receiver's key matched `expected_pin` (when given). Raises PeerUnreachableError,
    PeerPinMismatchError or PeerProtocolError; on any error nothing stays open.
    """
    url = peer_url(host, port)
    owns_http = http is None
    session = http if http is not None else aiohttp.ClientSession()
    ws: aiohttp.ClientWebSocketResponse | None = None
    try:
        async with asyncio.timeout(connect_timeout):
            try:
                ws = await session.ws_connect(url, max_msg_size=MAX_FRAME_BYTES, autoping=True)
            except (aiohttp.ClientError, OSError) as err:
                raise PeerUnreachableError(f"Cannot reach the build peer at {url}: {err}") from err
            noise, peer_pin, response = await _handshake(ws, identity, intent, hello, expected_pin)
    except TimeoutError as err:
        await _discard(session, ws, owns_http)
        raise PeerUnreachableError(
            f"The build peer at {host}:{port} did not complete the handshake "
            f"in {connect_timeout:.0f} s"
        ) from err
    except BaseException:
        await _discard(session, ws, owns_http)
        raise
    return NoiseChannel(session, ws, noise, peer_pin, owns_http=owns_http), response


async def _discard(
    session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse | None, owns_http: bool
) -> None:
    if ws is not None:
        with contextlib.suppress(aiohttp.ClientError, OSError, RuntimeError):
            await ws.close()
    if owns_http:
        await session.close()
