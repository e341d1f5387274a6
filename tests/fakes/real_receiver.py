"""Start the real ESPHome Device Builder receiver (from `.venv-peer`) and read its banner.

`esphome-device-builder --remote-build-only` prints, through its logger, the bound port
("Remote-build peer-link site listening on HOST:PORT (peer-link pin ..)"), the fingerprint as
emoji and names, and the one-time pairing key. `RealReceiver.start` runs it on 127.0.0.1 with
its own folder and reads those facts from its output; `stop` ends it with SIGTERM (its clean
shutdown) and SIGKILL only if it does not exit.

Tests synchronise on its log (`wait_for_log`: "Starting job", "cancelled mid-run", ...) and
look at what it runs: `compile_sessions` (Device Builder starts each compile in a session of
its own, so a compile's whole process tree is the processes of that session) and
`established_links` (the TCP connections to its peer-link port).
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


def _session_of(pid: int) -> int:
    """The session id of a process (0 when it is gone)."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    # After the command name: state, ppid, pgrp, session.
    return int(fields[3])


def processes_in_sessions(sessions: set[int]) -> list[int]:
    """Pids of the live (not zombie) processes whose session is one of `sessions`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) in sessions:
            found.append(int(entry.name))
    return found


def established_connections(port: int) -> int:
    """Established TCP connections on 127.0.0.1 with `port` at either end (both ends count)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        ports = {int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)}
        if state == "01" and port in ports:
            count += 1
    return count


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
    _log_waiters: list[tuple[re.Pattern[str], asyncio.Future[re.Match[str]]]] = field(
        default_factory=list
    )

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
        for pattern, future in list(self._log_waiters):
            if not future.done() and (match := pattern.search(line)):
                future.set_result(match)
        return line

    async def wait_for_log(
        self, pattern: str, *, since: int = 0, timeout: float = READY_TIMEOUT
    ) -> re.Match[str]:
        """Return the first match of `pattern` in the log from line `since` on, waiting for it."""
        compiled = re.compile(pattern)
        for line in self.log[since:]:
            if match := compiled.search(line):
                return match
        future: asyncio.Future[re.Match[str]] = asyncio.get_running_loop().create_future()
        entry = (compiled, future)
        self._log_waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._log_waiters.remove(entry)

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

    def compile_sessions(self) -> set[int]:
        """Session ids of this receiver's running compiles (each compile has its own)."""
        return {_session_of(pid) for pid in self.compile_processes()} - {0}

    def established_links(self) -> int:
        """How many TCP connections to its peer-link port are established right now."""
        return established_connections(self.port)

    async def kill(self) -> None:
        """Kill the receiver, its session and its compiles at once (SIGKILL), as when its
        machine dies.

        The receiver goes first: a compile killed before it would be reported over the link
        as failed, which a dying machine never does. Its compiles run in sessions of their
        own, so they are killed by session afterwards.
        """
        sessions = self.compile_sessions()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        for pid in processes_in_sessions(sessions):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

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
