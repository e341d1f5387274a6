"""Start the real ESPHome Device Builder receiver (from `.venv-peer`) and read its banner.

`esphome-device-builder --remote-build-only` prints, through its logger, the bound port
("Remote-build peer-link site listening on HOST:PORT (peer-link pin ..)"), the fingerprint as
emoji and names, and the one-time pairing key. `RealReceiver.start` runs it on 127.0.0.1 with
its own folder and reads those facts from its output; `stop` ends it with SIGTERM (its clean
shutdown) and SIGKILL only if it does not exit.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
import os
from pathlib import Path
import re
import signal
import socket

from script.devkit import REPO_ROOT

PEER_PYTHON = REPO_ROOT / ".venv-peer" / "bin" / "python"
LOOPBACK_MDNS = Path(__file__).with_name("loopback_mdns")
READY_TIMEOUT = 120.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+) \(peer-link pin ([0-9a-f ]+)\)")
_KEY = re.compile(r"^\s+([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})\s*$")
_NAMES = re.compile(r"^\s+\(([A-Za-z ]+(?:, [A-Za-z ]+){6})\)\s*$")


def free_port() -> int:
    """A port nothing listens on right now (the receiver moves on if it gets taken)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RealReceiver:
    """A running Device Builder receiver and what its banner said."""

    folder: Path
    process: asyncio.subprocess.Process
    port: int = 0
    pin: str = ""
    pairing_key: str = ""
    emoji: str = ""
    emoji_names: str = ""
    log: list[str] = field(default_factory=list)

    @classmethod
    async def start(cls, folder: Path, port: int | None = None) -> RealReceiver:
        """Start a receiver on `port` (default: a free one) and wait until it serves.

        A fresh receiver prints its pairing banner; one started again on a folder that is
        already paired says so and serves at once (no key then).
        """
        if not PEER_PYTHON.exists():
            raise RuntimeError(f"The real receiver is missing ({PEER_PYTHON}): run script/setup")
        folder.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            str(PEER_PYTHON),
            "-m",
            "esphome_device_builder",
            "--remote-build-only",
            "--remote-build-host",
            "127.0.0.1",
            "--remote-build-port",
            str(port or free_port()),
            "--allow-pairing-source",
            "127.0.0.1",
            str(folder),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            # Its mDNS stays on the loopback interface (see loopback_mdns/sitecustomize.py).
            env={**os.environ, "PYTHONPATH": str(LOOPBACK_MDNS)},
        )
        receiver = cls(folder, process)
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await receiver._read_banner()
        except BaseException:
            await receiver.stop()
            raise
        asyncio.get_running_loop().create_task(receiver._drain())
        return receiver

    async def _readline(self) -> str:
        assert self.process.stdout is not None
        raw = await self.process.stdout.readline()
        if not raw:
            raise RuntimeError("The receiver exited:\n" + "\n".join(self.log[-30:]))
        line = _ANSI.sub("", raw.decode(errors="replace")).rstrip("\n")
        self.log.append(line)
        return line

    async def _read_banner(self) -> None:
        previous = ""
        while not self.pairing_key:
            line = await self._readline()
            if "serving build requests" in line:
                return
            if match := _LISTENING.search(line):
                self.port = int(match[1])
                self.pin = match[2].replace(" ", "")
            elif match := _NAMES.match(line):
                self.emoji = previous.strip()
                self.emoji_names = match[1]
            elif match := _KEY.match(line):
                self.pairing_key = match[1]
            previous = line

    async def _drain(self) -> None:
        with contextlib.suppress(RuntimeError, ValueError):
            while True:
                await self._readline()

    def compile_processes(self) -> list[int]:
        """Pids of `esphome compile` processes working in this receiver's folder."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                words = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"compile" in words and any(str(self.folder).encode() in w for w in words):
                found.append(int(entry.name))
        return found

    async def kill(self) -> None:
        """Kill the receiver, its session and its compiles at once (SIGKILL)."""
        for pid in self.compile_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        """Stop the receiver cleanly (SIGTERM), or kill it when it hangs."""
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                await self.process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
