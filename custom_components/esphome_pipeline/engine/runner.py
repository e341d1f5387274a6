"""One job's process session: spawn it, stream its output, and stop the whole tree.

Owns everything about a running ESPHome CLI process and its descendants. Each job runs in a
new session (`start_new_session=True`), so the session id equals the leader's pid and every
descendant (ninja, its compilers in their own process groups, esptool) stays in it unless it
calls setsid itself. Stopping a job therefore means: signal every process whose session id is
the job's, first SIGTERM, then SIGKILL after a grace period, and confirm none remains.

Linux only: session membership and start times come from `/proc/<pid>/stat`. Every `/proc`
read runs in the default executor, never on the event loop thread.

Pid reuse: a job's `ProcessRecord` keeps the leader's kernel start time. Linux never hands out
a pid that is still in use as a session id, so while any process of our session lives, the
leader's pid cannot belong to anyone else; a live process with that pid but another start
time proves the session is gone. A process is signalled only after its session id was read
in the same executor call, which leaves no practical window for its pid to be reused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
import contextlib
from dataclasses import dataclass
import logging
import os
from pathlib import Path
import signal
from typing import Any, Final, Self

from .models import ProcessRecord
from .output import LineSplitter

_LOGGER = logging.getLogger(__name__)

TERMINATE_GRACE: Final = 3.0
"""Seconds between SIGTERM and SIGKILL (the contract's 3 s)."""

DRAIN_AFTER_EXIT: Final = 1.5
"""Seconds output is still read after the leader exited; a grandchild that keeps the pipe
open longer is treated as a stray and stopped."""

KILL_CONFIRM_TIMEOUT: Final = 5.0
"""Seconds to wait after SIGKILL for the kernel to remove every process of the session."""

POLL_INTERVAL: Final = 0.05
READ_CHUNK: Final = 65_536
PROC: Final = Path("/proc")

type LineCallback = Callable[[str, bool], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class _ProcStat:
    """The fields of /proc/<pid>/stat the runner needs."""

    state: str
    session: int
    start_time: int

    @property
    def alive(self) -> bool:
        """A zombie has exited already; it only waits for its parent to reap it."""
        return self.state not in {"Z", "X"}


def _read_stat(pid: int) -> _ProcStat | None:
    """Read /proc/<pid>/stat (blocking); None when the process does not exist."""
    try:
        raw = (PROC / str(pid) / "stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces or ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return _ProcStat(
            state=fields[0].decode(), session=int(fields[3]), start_time=int(fields[19])
        )
    except (IndexError, ValueError):
        return None


def _session_members(session: int, started_after: int = 0) -> list[int]:
    """Return the pids of live (non-zombie) processes in `session` (blocking).

    Only processes started at or after `started_after` (kernel ticks) count: every process
    of a job's session was forked after its leader started, so anything older belongs to
    another session that happens to carry the same id (after a reboot, say).
    """
    members: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _read_stat(int(entry.name))
        if (
            stat is not None
            and stat.alive
            and stat.session == session
            and stat.start_time >= started_after
        ):
            members.append(int(entry.name))
    return members


def _signal_session(session: int, signum: int, started_after: int = 0) -> list[int]:
    """Send `signum` to every live process of `session`; return the pids signalled (blocking)."""
    signalled: list[int] = []
    for pid in _session_members(session, started_after):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
            signalled.append(pid)
    return signalled


async def _in_executor[T](func: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


async def _wait_session_gone(record: ProcessRecord, limit: float, *, resend: int | None) -> bool:
    """Poll until no process of `session` lives; True on success, False at the deadline.

    With `resend`, every poll signals the processes still present again (after SIGKILL a
    process that was mid-fork can leave a fresh child behind).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        if resend is None:
            remaining = await _in_executor(_session_members, record.pid, record.start_time)
        else:
            remaining = await _in_executor(_signal_session, record.pid, resend, record.start_time)
        if not remaining:
            return True
        if loop.time() >= deadline:
            _LOGGER.warning("Processes %s of session %s did not exit", remaining, record.pid)
            return False
        await asyncio.sleep(POLL_INTERVAL)


async def _stop_session(record: ProcessRecord, grace: float) -> bool:
    """SIGTERM every process of the record's session, SIGKILL what is left after `grace`.

    Returns True when no process of the session remains.
    """
    session, started_after = record.pid, record.start_time
    if not await _in_executor(_signal_session, session, signal.SIGTERM, started_after):
        return True
    if await _wait_session_gone(record, grace, resend=None):
        return True
    await _in_executor(_signal_session, session, signal.SIGKILL, started_after)
    return await _wait_session_gone(record, KILL_CONFIRM_TIMEOUT, resend=signal.SIGKILL)


class _PipeEnd:
    """The read end of the output pipe as the file object `connect_read_pipe` expects."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("pipe is closed")
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class JobProcess:
    """A running job: one process session whose merged output is read from our own pipe.

    The pipe is created here rather than by asyncio so that this class owns its transport
    and can close it even while a stray grandchild still holds the write end.
    """

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        record: ProcessRecord,
        reader: asyncio.StreamReader,
        transport: asyncio.ReadTransport,
    ) -> None:
        """Wrap a started process; use `start`."""
        self._process = process
        self.record = record
        self._reader = reader
        self._transport = transport
        self._terminate_lock = asyncio.Lock()

    @classmethod
    async def start(
        cls, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None
    ) -> Self:
        """Spawn `argv` in a new session with stdin at EOF and stderr merged into stdout.

        Raises OSError (FileNotFoundError, PermissionError, ...) when it cannot spawn.
        """
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        pipe = _PipeEnd(read_fd)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=None if env is None else dict(env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            pipe.close()
            raise
        finally:
            os.close(write_fd)
        transport: asyncio.ReadTransport | None = None
        try:
            reader = asyncio.StreamReader(limit=READ_CHUNK * 4)
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), pipe
            )
            stat = await _in_executor(_read_stat, process.pid)
        except BaseException:
            # The transport owns the pipe once it exists; closing it closes the pipe.
            if transport is None:
                pipe.close()
            else:
                transport.close()
            await _stop_session(ProcessRecord(pid=process.pid, start_time=0), 0)
            raise
        # A leader that exited and was reaped already has no stat; 0 marks the start time as
        # unknown, which the restore path treats as "the leader is gone".
        record = ProcessRecord(pid=process.pid, start_time=0 if stat is None else stat.start_time)
        return cls(process, record, reader, transport)

    @property
    def returncode(self) -> int | None:
        """Return the leader's exit code (negative: killed by that signal), None while running."""
        return self._process.returncode

    async def stream(self, on_line: LineCallback) -> int:
        """Deliver output lines to `on_line(text, replaces_previous)`; return the exit code.

        Reads until end of output. When the leader has exited but something else still holds
        the pipe, reading goes on for at most DRAIN_AFTER_EXIT seconds; then the pipe is closed
        and every process left in the session is stopped.
        """
        splitter = LineSplitter()

        def deliver(lines: list[tuple[str, bool]]) -> None:
            for text, replaces_previous in lines:
                on_line(text, replaces_previous)

        loop = asyncio.get_running_loop()
        exited = asyncio.ensure_future(self._process.wait())
        read: asyncio.Future[bytes] | None = None
        drain_until: float | None = None
        watched: set[asyncio.Future[Any]]
        try:
            while True:
                if read is None:
                    read = asyncio.ensure_future(self._reader.read(READ_CHUNK))
                if drain_until is None:
                    watched = {read, exited}
                    await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                    if exited.done():
                        # The leader is gone, but a grandchild may still hold the pipe open:
                        # keep reading what is buffered or arrives soon, not for ever.
                        drain_until = loop.time() + DRAIN_AFTER_EXIT
                else:
                    await asyncio.wait({read}, timeout=max(drain_until - loop.time(), 0.0))
                    if not read.done():
                        break
                if not read.done():
                    continue
                data = read.result()
                read = None
                if not data:
                    break
                deliver(splitter.feed(data))
            deliver(splitter.flush())
            exit_code = await exited
        finally:
            for future in (read, exited):
                if future is not None and not future.done():
                    future.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await future
            self._transport.close()
        # Whatever is still in the session outlived its leader: a stray, stop it.
        await self.terminate()
        return exit_code

    async def terminate(self, grace: float = TERMINATE_GRACE) -> bool:
        """Stop every process of the job's session: SIGTERM, then SIGKILL after `grace`.

        Returns True once no process of the session remains, False when that cannot be
        confirmed. Safe to call more than once, concurrently, and after the job exited.
        """
        async with self._terminate_lock:
            stopped = await _stop_session(self.record, grace)
            if stopped:
                # The leader is dead; make sure asyncio reaped it so `returncode` is set.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(KILL_CONFIRM_TIMEOUT):
                        await self._process.wait()
            return stopped


async def reap_leftovers(record: ProcessRecord, grace: float = TERMINATE_GRACE) -> bool:
    """Stop what is left of a session recorded before Home Assistant was killed.

    The session is ours when its leader still runs with the recorded start time, or when the
    leader is gone and processes still carry its session id (the kernel keeps that id from
    being reused while they live) and started no earlier than the leader did. A process with
    the leader's pid but another start time means the pid was reused after our session ended:
    nothing is touched. Returns True when no process of the session remains.
    """
    leader = await _in_executor(_read_stat, record.pid)
    if leader is not None and leader.start_time != record.start_time:
        return True
    return await _stop_session(record, grace)
