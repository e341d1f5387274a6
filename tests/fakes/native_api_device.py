"""A fake ESPHome device's native API for tests: a real TCP server on 127.0.0.1.

It speaks the plaintext native API framing (a zero byte, the message length and type as
varints, then the protobuf message) with the messages of aioesphomeapi itself, so the real
client Home Assistant uses talks to it unchanged. It answers what a question about the
running build needs: Hello, Connect, DeviceInfo (name, ESPHome version, compilation time),
Ping and Disconnect. `answered` counts the DeviceInfo questions; `asked` is set at each one;
clearing `gate` holds the answers back until it is set again.

Start it on a chosen port to play a device that comes online later (`start(port)` after a
`stop()`; `start()` again reuses the last port), and change what it runs with `runs(...)` (as
after a flash). A subclass may change the build just before each answer (`before_answer`):
`native_device.FakeNativeDevice` takes the build the fake CLI flashed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aioesphomeapi.api_pb2 import (  # type: ignore[attr-defined]
    ConnectResponse,
    DeviceInfoRequest,
    DeviceInfoResponse,
    DisconnectRequest,
    DisconnectResponse,
    HelloResponse,
    PingResponse,
)
from aioesphomeapi.core import MESSAGE_TYPE_TO_PROTO

_TYPE_OF = {proto: number for number, proto in MESSAGE_TYPE_TO_PROTO.items()}
_REPLIES: dict[str, Any] = {
    "ConnectRequest": ConnectResponse,
    "PingRequest": PingResponse,
    "DisconnectRequest": DisconnectResponse,
}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


async def _read_varint(reader: asyncio.StreamReader) -> int:
    value = shift = 0
    while True:
        byte = (await reader.readexactly(1))[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7


class FakeNativeApiDevice:
    """One device on 127.0.0.1 that says which build it runs."""

    def __init__(self, *, name: str, esphome_version: str, compilation_time: str) -> None:
        """Play the device `name`, running the build of `esphome_version` and that time."""
        self.name = name
        self.esphome_version = esphome_version
        self.compilation_time = compilation_time
        self.port = 0
        """The port it listens on (0 until the first start)."""
        self.answered = 0
        self.asked = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    def runs(self, *, esphome_version: str, compilation_time: str) -> None:
        """Run another build from now on (as after a flash)."""
        self.esphome_version = esphome_version
        self.compilation_time = compilation_time

    async def start(self, port: int | None = None) -> int:
        """Listen on 127.0.0.1: on `port`, else the last one (any free one the first time);
        return the port."""
        chosen = self.port if port is None else port
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", chosen)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def before_answer(self) -> None:
        """Called before each DeviceInfo answer: nothing here."""

    async def stop(self) -> None:
        """Go offline: close the listener and every open connection."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:
                if (await reader.readexactly(1)) != b"\x00":
                    return  # not plaintext (an encrypted client): hang up as a device does
                length = await _read_varint(reader)
                message_type = await _read_varint(reader)
                await reader.readexactly(length)
                request = MESSAGE_TYPE_TO_PROTO.get(message_type)
                if request is DeviceInfoRequest:
                    self.asked.set()
                    await self.gate.wait()
                    await self.before_answer()
                reply = self._reply(request)
                if reply is not None:
                    data = reply.SerializeToString()
                    writer.write(
                        b"\x00" + _varint(len(data)) + _varint(_TYPE_OF[type(reply)]) + data
                    )
                    await writer.drain()
                if request is DisconnectRequest:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self._connections.discard(writer)
            writer.close()

    def _reply(self, request: Any) -> Any:
        kind = getattr(request, "__name__", "")
        if kind == "HelloRequest":
            return HelloResponse(
                api_version_major=1, api_version_minor=10, server_info="fake", name=self.name
            )
        if kind == "DeviceInfoRequest":
            self.answered += 1
            return DeviceInfoResponse(
                name=self.name,
                esphome_version=self.esphome_version,
                compilation_time=self.compilation_time,
            )
        reply = _REPLIES.get(kind)
        return None if reply is None else reply()
