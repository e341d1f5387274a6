"""The files a job leaves behind, as the job wrapper writes them: exit record and job log.

The wrapper's side of `exit_record.py` (which names the files and reads them for the engine).
Imported by file name by the wrapper, on every job start: standard library only, no package
imports, nothing slow to import.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

LOG_ROTATE_BYTES: Final = 4 * 1024 * 1024
"""Beyond this size the job log starts afresh and its previous part is kept as `<log>.1`:
at most twice this much per job, and always the newest output."""


def make_parent(path: str) -> None:
    """Create the folder `path` goes in (a reset's `clean-all` may have removed it)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)  # noqa: PTH103, PTH120


def write_exit_record(path: str, code: int) -> None:
    """Write `code` to `path` atomically (a temporary name, then a rename)."""
    make_parent(path)
    part = f"{path}.part"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, f"{code}\n".encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(part, path)  # noqa: PTH105


class JobLog:
    """The job's output on disk, appended as it comes; restarted beyond LOG_ROTATE_BYTES.

    Only a job whose output did not all reach the engine keeps its log (the wrapper discards
    it otherwise): the logs left are those of jobs a dead Home Assistant lost.
    """

    def __init__(self, path: str) -> None:
        """Start the log afresh; a log that cannot be written is silently skipped."""
        self.path = path
        self._fd: int | None = None
        self._size = 0
        try:
            make_parent(path)
            self._open()
        except OSError:
            self._fd = None

    def _open(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(self.path, flags, 0o600)
        self._size = 0

    def write(self, data: bytes) -> None:
        """Append `data`; on a write error (disk full) logging stops, the job goes on."""
        if self._fd is None:
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            self._size += len(data)
            if self._size >= LOG_ROTATE_BYTES:
                os.close(self._fd)
                self._fd = None
                os.replace(self.path, f"{self.path}.1")  # noqa: PTH105
                self._open()
        except OSError:
            self.close()

    def discard(self) -> None:
        """Close and delete the log with its previous part."""
        self.close()
        for path in (self.path, f"{self.path}.1"):
            try:
                os.unlink(path)  # noqa: PTH108
            except FileNotFoundError:
                continue

    def close(self) -> None:
        """Close the log."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
