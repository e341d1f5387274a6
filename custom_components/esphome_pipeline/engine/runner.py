"""One job's process: spawn it under the job wrapper, stream its output, stop all of it.

Owns a running job's process as the engine holds it. Every command runs under the job wrapper
(`job_wrapper.py`) as the leader of a new session: the wrapper keeps the command alive and its
output flowing when Home Assistant dies, and it is the child subreaper of everything the
command starts. Which processes belong to a job and how they are stopped is
`process_tree.py`; this module applies it to the engine's own jobs (`JobProcess.terminate`)
and to what a killed run left behind (`reap_leftovers`), once a stored record proved sane.

Linux only. Every `/proc` read runs in the default executor, never on the event loop thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
import contextlib
from functools import partial
import logging
import os
from pathlib import Path
from typing import Final, Self

from .models import ProcessRecord
from .output import LineSplitter
from .process_tree import (
    KILL_CONFIRM_TIMEOUT,
    command_line,
    is_command_line,
    poll_leader_exit,
    record_problem,
    stop_tree,
)
from .procfs import process_table, read_stat

_LOGGER = logging.getLogger(__name__)

TERMINATE_GRACE: Final = 3.0
"""Seconds between SIGTERM and SIGKILL (the contract's 3 s)."""

DRAIN_AFTER_EXIT: Final = 1.5
"""Seconds the wrapper still reads output after the command exited; a grandchild that keeps
the pipe open longer is treated as a stray and stopped."""

READ_CHUNK: Final = 65_536

type LineCallback = Callable[[str, bool], None]


def _session_members(session: int, started_after: int = 0) -> list[int]:
    """Return the pids of live processes in `session` started at or after `started_after`
    (kernel ticks). Blocking."""
    return [
        stat.pid
        for stat in process_table().values()
        if stat.alive and stat.session == session and stat.start_time >= started_after
    ]


async def _in_executor[T](func: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


async def _wait_for_exit(process: asyncio.subprocess.Process, limit: float) -> bool:
    """Wait up to `limit` seconds for our child `process` to end; True when it did."""
    if process.returncode is None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await process.wait()
    return process.returncode is not None


async def _abandon(process: asyncio.subprocess.Process) -> None:
    """Stop at once a wrapper whose set-up failed after the spawn, with all it started."""
    try:
        stat = await _in_executor(read_stat, process.pid)
    except OSError:
        stat = None
    record = ProcessRecord(pid=process.pid, start_time=0 if stat is None else stat.start_time)
    await stop_tree(record, 0, trusted=True, leader_exit=partial(_wait_for_exit, process))


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
    """A running job: its wrapper's session, whose merged output is read from our own pipe.

    The pipe is created here rather than by asyncio so that this class owns its transport
    and can close it whatever happens to the processes.
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
        """Spawn `argv` under the job wrapper in a new session, stdin at EOF, output merged.

        `argv` already made by `process_tree.command_line` (or `with_exit_record`) is used as
        it is. Raises OSError when the wrapper cannot start or `cwd` does not exist; a command
        that cannot run ends with exit code 126 or 127 and says why in its output.
        """
        if not is_command_line(argv):
            argv = command_line(argv, grace=TERMINATE_GRACE, drain=DRAIN_AFTER_EXIT)
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
            stat = await _in_executor(read_stat, process.pid)
        except BaseException:
            # The transport owns the pipe once it exists; closing it closes the pipe.
            if transport is None:
                pipe.close()
            else:
                transport.close()
            await asyncio.shield(_abandon(process))
            raise
        # 0 marks the start time as unknown (no /proc entry): for the engine's own job that
        # means "the wrapper's pid as it is"; the restore path treats it as "the wrapper is gone".
        record = ProcessRecord(pid=process.pid, start_time=0 if stat is None else stat.start_time)
        return cls(process, record, reader, transport)

    @property
    def returncode(self) -> int | None:
        """Return the leader's exit code (negative: killed by that signal), None while running."""
        return self._process.returncode

    async def stream(self, on_line: LineCallback) -> int:
        """Deliver output lines to `on_line(text, replaces_previous)`; return the exit code.

        Reads until end of output: the wrapper alone holds the engine's end of the pipe, so
        that is when it exits (it has already stopped whatever the command left behind).
        """
        splitter = LineSplitter()

        def deliver(lines: list[tuple[str, bool]]) -> None:
            for text, replaces_previous in lines:
                on_line(text, replaces_previous)

        try:
            while data := await self._reader.read(READ_CHUNK):
                deliver(splitter.feed(data))
            deliver(splitter.flush())
            exit_code = await self._process.wait()
        finally:
            self._transport.close()
        # A wrapper that died without cleaning up (SIGKILLed) may leave processes: stop them.
        await self.terminate()
        return exit_code

    async def terminate(self, grace: float = TERMINATE_GRACE) -> bool:
        """Stop every process of the job: SIGTERM, then SIGKILL after `grace`.

        Returns True once no process of the job remains, False when that cannot be
        confirmed. Safe to call more than once, concurrently, and after the job exited.
        """
        async with self._terminate_lock:
            stopped = await stop_tree(
                self.record,
                grace,
                trusted=True,
                leader_exit=partial(_wait_for_exit, self._process),
            )
            if stopped:
                # The wrapper is gone; make sure asyncio reaped it so `returncode` is set.
                await _wait_for_exit(self._process, KILL_CONFIRM_TIMEOUT)
            return stopped


async def reap_leftovers(record: ProcessRecord, grace: float = TERMINATE_GRACE) -> bool:
    """Stop what is left of a job whose process record a killed run stored.

    The record is acted on only when it is sane (`process_tree.record_problem`); otherwise it
    is ignored with a warning and nothing is signalled. Returns True when no process of the
    job remains (or none could be ours), False when some survived SIGKILL.
    """
    problem = await _in_executor(record_problem, record)
    if problem is not None:
        _LOGGER.warning(
            "Ignoring the stored process record (pid %s, start time %s): %s; nothing is signalled",
            record.pid,
            record.start_time,
            problem,
        )
        return True
    return await stop_tree(
        record, grace, trusted=False, leader_exit=partial(poll_leader_exit, record)
    )
