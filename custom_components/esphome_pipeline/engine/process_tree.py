"""A job's processes as the engine sees them: how they start, which they are, how they stop.

Owns: the command line that runs a job under the job wrapper (`job_wrapper.py`), which live
processes belong to a job (`job_tree`), whether a stored process record may be trusted
(`record_problem`), and stopping all of a job's processes (`stop_tree`).

A job is identified by its `ProcessRecord`: the wrapper's pid and kernel start time. Its
processes are:

- the wrapper, while a live process has that pid *and* that start time;
- every descendant of the wrapper: it is their child subreaper, so even processes that left
  its session or process group, or whose parent died, stay below it;
- every process of its session (the session id is the wrapper's pid, which Linux hands to no
  other process while the session has members) that started no earlier than the wrapper;
- every process whose environment carries the wrapper's marker (`job_wrapper.MARKER_ENV`):
  the proof that still holds when the wrapper itself is gone.

The first three count only while the wrapper is the recorded one (or, for the engine's own
jobs, when its pid is free); a record of a wrapper that is gone only reaches marked processes,
so a record can never make the engine signal a process that is not a job's.

Stopping: SIGTERM to the wrapper, which forwards it to its subtree, and directly to members
outside that subtree; up to `grace` for all to end (the wrapper ends only once its subtree is
gone); then SIGKILL to every member, repeated until none is left, and the wrapper last. Only
when SIGKILL fails too is a warning logged. Every /proc read runs in the default executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
import logging
import os
import signal
import sys
from typing import Final

from . import job_wrapper
from .job_wrapper import MARKER_ENV, marker
from .models import ProcessRecord
from .procfs import ProcStat, descendants, process_table, read_proc_file, read_stat, signal_all

_LOGGER = logging.getLogger(__name__)

KILL_CONFIRM_TIMEOUT: Final = 5.0
"""Seconds SIGKILL is repeated before the processes left are reported as survivors."""
WRAPPER_EXIT_TIMEOUT: Final = 2.0
"""Seconds the wrapper gets to end by itself once its subtree is gone, before SIGKILL."""
POLL_INTERVAL: Final = 0.05

type LeaderExit = Callable[[float], Awaitable[bool]]
"""Wait up to this many seconds for the wrapper to end; True when it did."""


def command_line(
    command: Sequence[str],
    *,
    exit_record: os.PathLike[str] | str | None = None,
    log: os.PathLike[str] | str | None = None,
    grace: float = job_wrapper.DEFAULT_GRACE,
    drain: float = job_wrapper.DEFAULT_DRAIN,
) -> list[str]:
    """Return the argv that runs `command` under the job wrapper, with this interpreter."""
    argv = [sys.executable, *job_wrapper.INTERPRETER_FLAGS, job_wrapper.SCRIPT]
    argv += ["--grace", repr(grace), "--drain", repr(drain)]
    if exit_record is not None:
        argv += ["--exit-record", os.fspath(exit_record)]
    if log is not None:
        argv += ["--log", os.fspath(log)]
    return [*argv, "--", *command]


def is_command_line(argv: Sequence[str]) -> bool:
    """Return True when `argv` already runs its command under the job wrapper."""
    head = argv[1 : 2 + len(job_wrapper.INTERPRETER_FLAGS)]
    return bool(argv) and argv[0] == sys.executable and job_wrapper.SCRIPT in head


def is_wrapper_command(cmdline: bytes) -> bool:
    """Return True when a /proc/<pid>/cmdline is a job wrapper's (of any install of ours)."""
    args = cmdline.split(b"\0")
    own = args[: args.index(b"--")] if b"--" in args else args
    suffix = job_wrapper.SCRIPT_SUFFIX.encode()
    return any(arg.endswith(suffix) for arg in own[1:])


def carries_marker(pid: int, value: str) -> bool:
    """Return True when `pid` started with MARKER_ENV=value in its environment (blocking)."""
    environ = read_proc_file(pid, "environ")
    return environ is not None and f"{MARKER_ENV}={value}".encode() in environ.split(b"\0")


@dataclass(frozen=True, slots=True)
class JobTree:
    """The live processes of one job at one moment."""

    leader_alive: bool
    """The recorded wrapper runs."""
    members: tuple[int, ...]
    """Every other live process of the job."""
    outside_leader: tuple[int, ...]
    """The members that are not below the wrapper (it cannot forward a signal to them)."""

    @property
    def empty(self) -> bool:
        """True when nothing of the job is left."""
        return not self.leader_alive and not self.members


def job_tree(record: ProcessRecord, *, trusted: bool) -> JobTree:
    """Return the live processes of the job `record` names (blocking).

    `trusted` says the record is the engine's own, from its spawn: then a session whose
    wrapper is gone (and whose pid nobody reused) still counts.
    """
    table = process_table()
    leader = table.get(record.pid)
    ours = leader is not None and leader.start_time == record.start_time
    below = set(descendants(table, record.pid)) if ours else set()
    members = set(below)
    if ours or (trusted and leader is None):
        members.update(
            stat.pid
            for stat in table.values()
            if stat.session == record.pid and stat.start_time >= record.start_time
        )
    tag = marker(record.pid, record.start_time)
    members.update(
        stat.pid
        for stat in table.values()
        if stat.pid not in members
        and stat.alive
        and stat.start_time >= record.start_time
        and carries_marker(stat.pid, tag)
    )
    alive = sorted(pid for pid in members if pid > 1 and pid != record.pid and table[pid].alive)
    return JobTree(
        leader_alive=ours and leader is not None and leader.alive,
        members=tuple(alive),
        outside_leader=tuple(pid for pid in alive if pid not in below),
    )


def record_problem(record: ProcessRecord) -> str | None:
    """Return why a stored record must not be acted on, or None when it is sane (blocking).

    Sane: a pid above 1 and, while a process has that pid, it is a job wrapper of ours with
    the recorded start time, leading its own session. When no live process has the pid, the
    record is sane too: it then reaches only processes carrying its marker.
    """
    if record.pid <= 1:
        return f"pid {record.pid} is not above 1"
    if record.start_time < 0:
        return f"start time {record.start_time} is negative"
    leader = read_stat(record.pid)
    if leader is None or not leader.alive:
        return None
    if leader.start_time != record.start_time:
        return f"pid {record.pid} now belongs to another process (its start time differs)"
    if leader.session != record.pid:
        return f"process {record.pid} does not lead its own session"
    cmdline = read_proc_file(record.pid, "cmdline")
    if cmdline is None or not is_wrapper_command(cmdline):
        return f"process {record.pid} is not an ESPHome Pipeline job wrapper"
    return None


async def _in_executor[T](func: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


async def _scan(record: ProcessRecord, trusted: bool) -> JobTree:
    return await _in_executor(lambda: job_tree(record, trusted=trusted))


def _kill_leader(record: ProcessRecord) -> None:
    """SIGKILL the wrapper, if the pid still is the recorded wrapper (blocking)."""
    stat: ProcStat | None = read_stat(record.pid)
    if stat is not None and stat.start_time == record.start_time:
        signal_all([record.pid], signal.SIGKILL)


async def poll_leader_exit(record: ProcessRecord, limit: float) -> bool:
    """Wait up to `limit` seconds for a wrapper that is not our child to end (polling)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        stat = await _in_executor(read_stat, record.pid)
        if stat is None or not stat.alive or stat.start_time != record.start_time:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(POLL_INTERVAL)


async def stop_tree(
    record: ProcessRecord, grace: float, *, trusted: bool, leader_exit: LeaderExit
) -> bool:
    """Stop every process of the job: SIGTERM, SIGKILL after `grace`, the wrapper last.

    Returns True once nothing of the job is left, False (after a warning) when SIGKILL could
    not end it either.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    tree = await _scan(record, trusted)
    if tree.empty:
        return True
    # The wrapper forwards SIGTERM to its subtree; what lies outside it is told directly.
    told = [*tree.outside_leader, *([record.pid] if tree.leader_alive else [])]
    await _in_executor(signal_all, told, signal.SIGTERM)
    if tree.leader_alive:
        # Event-driven for the engine's own jobs: the wrapper ends once its subtree is gone.
        await leader_exit(grace)
    while not (tree := await _scan(record, trusted)).empty:
        if loop.time() >= deadline:
            return await _kill(record, trusted, leader_exit)
        await asyncio.sleep(POLL_INTERVAL)
    return True


async def _kill(record: ProcessRecord, trusted: bool, leader_exit: LeaderExit) -> bool:
    """SIGKILL every member until none is left, then make sure the wrapper ends."""
    if not await _kill_members(record, trusted):
        return False
    tree = await _scan(record, trusted)
    if tree.leader_alive and not await leader_exit(WRAPPER_EXIT_TIMEOUT):
        await _in_executor(_kill_leader, record)
        if not await leader_exit(KILL_CONFIRM_TIMEOUT):
            _LOGGER.warning("Job wrapper %s did not exit after SIGKILL", record.pid)
            return False
    # A wrapper killed before it reaped its subtree left orphans to init: one more round.
    return await _kill_members(record, trusted)


async def _kill_members(record: ProcessRecord, trusted: bool) -> bool:
    """SIGKILL the members (not the wrapper) until none is left; False at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KILL_CONFIRM_TIMEOUT
    while (tree := await _scan(record, trusted)).members:
        await _in_executor(signal_all, tree.members, signal.SIGKILL)
        if loop.time() >= deadline:
            _LOGGER.warning(
                "Processes %s of job session %s did not exit after SIGKILL",
                list(tree.members),
                record.pid,
            )
            return False
        await asyncio.sleep(POLL_INTERVAL)
    return True
