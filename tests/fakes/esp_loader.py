"""An emulated ESP32 serial loader on a TCP port, for the real esptool (`socket://127.0.0.1:N`).

Speaks the loader protocol esptool uses: SLIP framing (`C0 ... C0`, `DB DC`/`DB DD` escapes),
requests `<BBHI` (0x00, opcode, length, checksum) + data, responses `<BBHI` (0x01, opcode,
length, value) + data ending in status bytes (two for the flasher stub, four for the ESP32 ROM).

Emulated: SYNC (eight replies; value 0 = "stub already running", so esptool uploads no stub),
READ_REG (the ESP32 magic at 0x40001000, eFuses 0), WRITE_REG with a small SPI register model
(RDID answers a 4 MB Winbond flash id), GET_SECURITY_INFO failing like the ESP32 ROM,
SPI_ATTACH, SPI_SET_PARAMS, CHANGE_BAUDRATE, FLASH_BEGIN/DATA/END, FLASH_DEFL_BEGIN/DATA/END
(zlib inflated into a `bytearray` flash), SPI_FLASH_MD5, ERASE_REGION, and, in ROM mode, the
stub upload (MEM_BEGIN/DATA/END, then `OHAI`). A FLASH_END or FLASH_DEFL_END asking for a
reboot restarts the "chip": its boot log waits in the emulated UART and is sent to the next
connection that opens the port (a reader reopening it after the flash).

`unplug_after_blocks` closes the connection (and refuses new ones) after that many flash data
blocks: a cable pulled mid-flash; `unplug_at_command` does the same at one opcode.
`pause_after_blocks` holds the reply to that data block: `paused` is set, and the reply goes
out once the test sets `resume` (a test acts at a known point of a flash). Every request opcode
is recorded in `commands`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
import hashlib
import struct
from typing import Final
import zlib

SLIP_END: Final = 0xC0
SLIP_ESC: Final = 0xDB

SYNC: Final = 0x08
FLASH_BEGIN: Final = 0x02
FLASH_DATA: Final = 0x03
FLASH_END: Final = 0x04
MEM_BEGIN: Final = 0x05
MEM_END: Final = 0x06
MEM_DATA: Final = 0x07
WRITE_REG: Final = 0x09
READ_REG: Final = 0x0A
SPI_SET_PARAMS: Final = 0x0B
SPI_ATTACH: Final = 0x0D
CHANGE_BAUDRATE: Final = 0x0F
FLASH_DEFL_BEGIN: Final = 0x10
FLASH_DEFL_DATA: Final = 0x11
FLASH_DEFL_END: Final = 0x12
SPI_FLASH_MD5: Final = 0x13
GET_SECURITY_INFO: Final = 0x14
ERASE_REGION: Final = 0xD1

FLASH_WRITES: Final = frozenset({FLASH_BEGIN, FLASH_DEFL_BEGIN})
DATA_BLOCKS: Final = frozenset({FLASH_DATA, FLASH_DEFL_DATA})

CHIP_DETECT_MAGIC_REG: Final = 0x40001000
ESP32_MAGIC: Final = 0x00F01D83
SPI_BASE: Final = 0x3FF42000
SPI_CMD_REG: Final = SPI_BASE
SPI_USR2_REG: Final = SPI_BASE + 0x24
SPI_W0_REG: Final = SPI_BASE + 0x80
SPI_CMD_USR: Final = 1 << 18
SPIFLASH_RDID: Final = 0x9F
WINBOND_4MB_ID: Final = 0x1640EF
FLASH_SIZE: Final = 4 * 1024 * 1024
ROM_SYNC_VALUE: Final = 0x20120707
INVALID_MESSAGE: Final = 0x05
CHECKSUM_MISMATCH: Final = 0x07
CHECKSUM_SEED: Final = 0xEF

BOOT_BANNER: Final = (
    b"ets Jun  8 2016 00:22:57\r\n\r\n"
    b"rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
    b"configsip: 0, SPIWP:0xee\r\n"
    b"mode:DIO, clock div:2\r\n"
    b"entry 0x400805e4\r\n"
    b"[I][app:029]: Running through setup()...\r\n"
)


def slip_encode(packet: bytes) -> bytes:
    """Frame one packet."""
    body = packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc")
    return b"\xc0" + body + b"\xc0"


class SlipDecoder:
    """Splits a byte stream into SLIP packets (bytes outside frames are ignored)."""

    def __init__(self) -> None:
        """Start outside any frame."""
        self._buffer = bytearray()
        self._in_frame = False
        self._escaped = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the packets completed by them."""
        packets: list[bytes] = []
        for byte in data:
            if not self._in_frame:
                if byte == SLIP_END:
                    self._in_frame = True
                    self._buffer.clear()
                continue
            if self._escaped:
                self._buffer.append({0xDC: SLIP_END, 0xDD: SLIP_ESC}.get(byte, byte))
                self._escaped = False
            elif byte == SLIP_ESC:
                self._escaped = True
            elif byte == SLIP_END:
                if self._buffer:
                    packets.append(bytes(self._buffer))
                    self._in_frame = False
                # An empty frame is a frame start after a previous end: stay in the frame.
            else:
                self._buffer.append(byte)
        return packets


@dataclass(slots=True)
class _Download:
    """One FLASH_(DEFL_)BEGIN session."""

    offset: int
    block_size: int
    compressed: bool
    position: int = 0
    inflater: zlib._Decompress | None = None


@dataclass(kw_only=True)
class EspLoaderEmulator:
    """The emulated chip: flash, registers, loader state, and the TCP server that serves it."""

    rom_mode: bool = False
    """True: answer as the ESP32 ROM (esptool uploads its stub first); False: stub running."""
    unplug_after_blocks: int | None = None
    unplug_at_command: int | None = None
    """Close the connection (and refuse new ones) when this opcode arrives."""
    pause_after_blocks: int | None = None
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    resume: asyncio.Event = field(default_factory=asyncio.Event)
    boot_banner: bytes = BOOT_BANNER
    flash: bytearray = field(default_factory=lambda: bytearray(b"\xff" * FLASH_SIZE))
    commands: list[int] = field(default_factory=list)
    written_at: list[int] = field(default_factory=list)
    """The offset of every FLASH_(DEFL_)BEGIN that writes data."""
    boots: int = 0
    port: int = 0
    connections: int = 0
    banner_sent: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        """Set the power-on state."""
        self._stub = not self.rom_mode
        self._registers: dict[int, int] = {CHIP_DETECT_MAGIC_REG: ESP32_MAGIC}
        self._download: _Download | None = None
        self._blocks = 0
        self._pending_banner = b""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.unplugged = False

    @property
    def url(self) -> str:
        """The pyserial URL esptool opens."""
        return f"socket://127.0.0.1:{self.port}"

    def saw_flash_write(self) -> bool:
        """True when any FLASH_BEGIN or FLASH_DEFL_BEGIN arrived."""
        return any(op in FLASH_WRITES for op in self.commands)

    def md5(self, offset: int, size: int) -> str:
        """MD5 of a flash region, as esptool computes it for an image."""
        return hashlib.md5(self.flash[offset : offset + size]).hexdigest()  # noqa: S324

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            if self._pending_banner:
                writer.write(self._pending_banner)
                self._pending_banner = b""
                await writer.drain()
                self.banner_sent.set()
            decoder = SlipDecoder()
            while not self.unplugged and (data := await reader.read(65536)):
                for packet in decoder.feed(data):
                    replies = self._handle(packet)
                    if self._blocks == self.pause_after_blocks and not self.paused.is_set():
                        self.paused.set()
                        await self.resume.wait()
                    writer.writelines(replies)
                    if self._is_unplugged():
                        break
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _respond(self, op: int, value: int = 0, data: bytes = b"", error: int = 0) -> bytes:
        status = bytes([1 if error else 0, error]) + (b"" if self._stub else b"\0\0")
        body = data + status
        return slip_encode(struct.pack("<BBHI", 1, op, len(body), value) + body)

    def _handle(self, packet: bytes) -> list[bytes]:
        if len(packet) < 8 or packet[0] != 0:
            return []
        _direction, op, length, checksum = struct.unpack("<BBHI", packet[:8])
        data = packet[8 : 8 + length]
        self.commands.append(op)
        if op == self.unplug_at_command:
            self._unplug()
            return []
        if op == SYNC:
            value = 0 if self._stub else ROM_SYNC_VALUE
            return [self._respond(op, value) for _ in range(8)]
        if op == READ_REG:
            (address,) = struct.unpack("<I", data[:4])
            return [self._respond(op, self._registers.get(address, 0))]
        if op == WRITE_REG:
            for start in range(0, len(data) - 15, 16):
                self._write_register(*struct.unpack("<IIII", data[start : start + 16])[:3])
            return [self._respond(op)]
        if op in {SPI_ATTACH, SPI_SET_PARAMS, CHANGE_BAUDRATE, MEM_BEGIN, MEM_DATA}:
            return [self._respond(op)]
        if op == MEM_END:
            self._stub = True
            return [self._respond(op, error=0), slip_encode(b"OHAI")]
        if op in (FLASH_BEGIN, FLASH_DEFL_BEGIN):
            _size, _blocks, block_size, offset = struct.unpack("<IIII", data[:16])
            compressed = op == FLASH_DEFL_BEGIN
            if _size:
                self.written_at.append(offset)
            self._download = _Download(
                offset,
                block_size,
                compressed,
                inflater=zlib.decompressobj() if compressed else None,
            )
            return [self._respond(op)]
        if op in DATA_BLOCKS:
            return self._data_block(op, data, checksum)
        if op in (FLASH_END, FLASH_DEFL_END):
            return self._end(op, data)
        if op == SPI_FLASH_MD5:
            address, size = struct.unpack("<II", data[:8])
            digest = hashlib.md5(self.flash[address : address + size])  # noqa: S324
            payload = digest.digest() if self._stub else digest.hexdigest().encode()
            return [self._respond(op, data=payload)]
        if op == ERASE_REGION:
            offset, size = struct.unpack("<II", data[:8])
            self.flash[offset : offset + size] = b"\xff" * size
            return [self._respond(op)]
        # GET_SECURITY_INFO and anything else: the ESP32 does not know it.
        return [self._respond(op, error=INVALID_MESSAGE)]

    def _is_unplugged(self) -> bool:
        # A method, not the attribute: `_handle` flips it, which a type checker cannot see.
        return self.unplugged

    def _unplug(self) -> None:
        self.unplugged = True
        if self._server is not None:
            self._server.close()

    def _write_register(self, address: int, value: int, mask: int) -> None:
        if address == SPI_CMD_REG and value & SPI_CMD_USR:
            # The SPI peripheral runs the user command at once and clears the bit.
            command = self._registers.get(SPI_USR2_REG, 0) & 0xFF
            self._registers[SPI_W0_REG] = WINBOND_4MB_ID if command == SPIFLASH_RDID else 0
            return
        old = self._registers.get(address, 0)
        self._registers[address] = (old & ~mask) | (value & mask)

    def _data_block(self, op: int, data: bytes, checksum: int) -> list[bytes]:
        download = self._download
        size, _sequence = struct.unpack("<II", data[:8])
        block = data[16 : 16 + size]
        expected = CHECKSUM_SEED
        for byte in block:
            expected ^= byte
        if download is None or expected != checksum:
            return [self._respond(op, error=CHECKSUM_MISMATCH)]
        if download.inflater is not None:
            block = download.inflater.decompress(block)
        start = download.offset + download.position
        self.flash[start : start + len(block)] = block
        del self.flash[FLASH_SIZE:]
        download.position += len(block)
        self._blocks += 1
        if self.unplug_after_blocks is not None and self._blocks >= self.unplug_after_blocks:
            self._unplug()
            return []
        return [self._respond(op)]

    def _end(self, op: int, data: bytes) -> list[bytes]:
        (not_reboot,) = struct.unpack("<I", data[:4]) if len(data) >= 4 else (1,)
        if self._download is not None and self._download.inflater is not None:
            rest = self._download.inflater.flush()
            start = self._download.offset + self._download.position
            self.flash[start : start + len(rest)] = rest
        self._download = None
        reply = self._respond(op)
        if not not_reboot:
            self.boots += 1
            self._stub = not self.rom_mode
            self._pending_banner = self.boot_banner
        return [reply]
