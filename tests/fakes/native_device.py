"""A fake ESPHome device on loopback that speaks enough of the native API for the real client.

It listens on 127.0.0.1 (a TCP connect is the presence probe) and answers aioesphomeapi's
plaintext frames: `HelloRequest`, `DeviceInfoRequest` (name, ESPHome version and the
`compilation_time` of the build it runs), `PingRequest` and `DisconnectRequest`. So the
engine's proof runs the real `wait_for_build` against it.

What it runs: `compilation_time`, set by the test; with `follow_flashes` it takes the build of
its configuration whenever the fake CLI "flashed" it (a new record in
`.fake_esphome_flashed.jsonl`): it comes back with `build_info.json`'s `build_time_str`, as a
device that took the image. Without it the device restarts into the build it ran (the proof
must fail). `stop()` closes the listener and every connection (the device is offline);
`start()` brings it back on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from aioesphomeapi.api_pb2 import (  # type: ignore[attr-defined]
    DeviceInfoResponse,
    DisconnectResponse,
    HelloResponse,
    PingResponse,
)

from .fake_esphome import FLASHED_FILE

ESPHOME_VERSION = "2026.10.0"
_HELLO, _DISCONNECT, _PING, _DEVICE_INFO = 1, 5, 7, 9


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


async def _read_varint(reader: asyncio.StreamReader) -> int:
    value = shift = 0
    while True:
        byte = (await reader.readexactly(1))[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7


class FakeNativeDevice:
    """One device: its name, the build it runs, a listener on 127.0.0.1 while online."""

    def __init__(
        self,
        config_dir: Path,
        configuration: str,
        *,
        name: str,
        compilation_time: str = "2026-01-01 00:00:00 +0000",
        follow_flashes: bool = True,
    ) -> None:
        """Describe the device; it is offline until `start()`."""
        self.config_dir = config_dir
        self.configuration = configuration
        self.name = name
        self.compilation_time = compilation_time
        self.follow_flashes = follow_flashes
        self.port = 0
        self.questions = 0
        """DeviceInfo questions answered so far."""
        self._flashes_seen = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def online(self) -> bool:
        """True while the device listens."""
        return self._server is not None

    async def start(self) -> None:
        """Listen (again) on 127.0.0.1, on the same port as before when there was one."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Go offline: close the listener and every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.close()
        await server.wait_closed()

    def write_api_config(self) -> None:
        """Write the validated configuration ESPHome keeps: an `api:` on this device's port,
        reached at 127.0.0.1 (`use_address`). Blocking: call from test code."""
        storage = self.config_dir / ".esphome" / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "config": {
                "api": {"port": self.port},
                "wifi": {"use_address": "127.0.0.1"},
            }
        }
        (storage / f"{self.configuration}.validated.json").write_text(json.dumps(config))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                if (await reader.readexactly(1)) != b"\0":
                    return
                length = await _read_varint(reader)
                kind = await _read_varint(reader)
                await reader.readexactly(length)
                if kind == _HELLO:
                    reply: object = HelloResponse(
                        api_version_major=1, api_version_minor=10, name=self.name
                    )
                elif kind == _DEVICE_INFO:
                    await self._follow()
                    self.questions += 1
                    reply = DeviceInfoResponse(
                        name=self.name,
                        esphome_version=ESPHOME_VERSION,
                        compilation_time=self.compilation_time,
                    )
                elif kind == _PING:
                    reply = PingResponse()
                elif kind == _DISCONNECT:
                    self._send(writer, 6, DisconnectResponse())
                    return
                else:
                    continue
                self._send(writer, kind + 1, reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @staticmethod
    def _send(writer: asyncio.StreamWriter, kind: int, message: object) -> None:
        data: bytes = message.SerializeToString()  # type: ignore[attr-defined]
        writer.write(b"\0" + _varint(len(data)) + _varint(kind) + data)

    async def _follow(self) -> None:
        """Take the build the fake CLI flashed since the last question (follow_flashes)."""
        if not self.follow_flashes:
            return
        flashed, build_time = await asyncio.to_thread(self._flash_records)
        if flashed > self._flashes_seen and build_time is not None:
            self._flashes_seen = flashed
            self.compilation_time = build_time

    def _flash_records(self) -> tuple[int, str | None]:
        try:
            lines = (self.config_dir / FLASHED_FILE).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return 0, None
        mine = [line for line in lines if json.loads(line)["configuration"] == self.configuration]
        info_path = self.config_dir / ".esphome" / "build" / self.name / "build_info.json"
        try:
            build_time = json.loads(info_path.read_text(encoding="utf-8"))["build_time_str"]
        except (FileNotFoundError, ValueError, KeyError):
            build_time = None
        return len(mine), build_time
