"""Reading Linux /proc: which processes exist, who is whose parent, what they started with.

Blocking helpers (the engine calls them in executors) shared by the engine and the job
wrapper. The wrapper runs as a script without site-packages and imports this module by its
file name, on every job start: so, standard library only, no package imports, and nothing
slow to import (no typing, dataclasses or pathlib at run time).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Final

PROC: Final = "/proc"


class ProcStat:
    """The fields of /proc/<pid>/stat the engine and the wrapper use."""

    __slots__ = ("pid", "ppid", "session", "start_time", "state")

    def __init__(self, *, pid: int, ppid: int, state: str, session: int, start_time: int) -> None:
        """Hold one reading; `start_time` is in kernel clock ticks after boot."""
        self.pid = pid
        self.ppid = ppid
        self.state = state
        self.session = session
        self.start_time = start_time

    def __repr__(self) -> str:
        """Show the fields (for test failures and logs)."""
        return (
            f"ProcStat(pid={self.pid}, ppid={self.ppid}, state={self.state!r}, "
            f"session={self.session}, start_time={self.start_time})"
        )

    @property
    def alive(self) -> bool:
        """A zombie has exited already; it only waits for its parent to reap it."""
        return self.state not in {"Z", "X"}


def parse_stat(pid: int, raw: bytes) -> ProcStat | None:
    """Parse a /proc/<pid>/stat line; None when it is malformed."""
    # The command name (field 2) is in parentheses and may contain spaces or ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return ProcStat(
            pid=pid,
            state=fields[0].decode("ascii"),
            ppid=int(fields[1]),
            session=int(fields[3]),
            start_time=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def read_proc_file(pid: int, name: str, limit: int = 1 << 20) -> bytes | None:
    """Read at most `limit` bytes of /proc/<pid>/<name> (blocking); None when it is gone."""
    try:
        fd = os.open(f"{PROC}/{pid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        while size < limit and (chunk := os.read(fd, 65_536)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_stat(pid: int) -> ProcStat | None:
    """Return the stat of `pid` (blocking); None when there is no such process."""
    raw = read_proc_file(pid, "stat")
    return None if raw is None else parse_stat(pid, raw)


def process_table() -> dict[int, ProcStat]:
    """Return every process by pid (blocking): one pass over /proc."""
    table: dict[int, ProcStat] = {}
    for name in os.listdir(PROC):  # noqa: PTH208 - pathlib is slow to import for the wrapper
        if name.isdigit() and (stat := read_stat(int(name))) is not None:
            table[stat.pid] = stat
    return table


def descendants(table: Mapping[int, ProcStat], root: int) -> list[int]:
    """Return every process below `root` in `table`, following parent links."""
    children: dict[int, list[int]] = {}
    for stat in table.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found: list[int] = []
    seen = {root}
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in seen:
                seen.add(child)
                found.append(child)
                pending.append(child)
    return found


def signal_all(pids: Sequence[int], signum: int) -> list[int]:
    """Send `signum` to each pid; return those that existed."""
    sent: list[int] = []
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            continue
        sent.append(pid)
    return sent
