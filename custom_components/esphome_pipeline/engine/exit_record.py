"""Exit records and job logs: what a job's process leaves behind for a later run.

If Home Assistant is killed, the job it started lives on under its job wrapper
(`job_wrapper.py`) and finishes: an OTA upload completes, a compile links. Without a trace of
that, the next start would run the job again and flash the device twice. So every job's
command runs under the wrapper, which

- once the command exited by itself, writes its exit status to `<exit dir>/<job_id>.exit`
  (to a temporary name, then renamed: a reader sees all or nothing). A command stopped by a
  signal leaves no record, so "no record" always means "did not finish" and the job runs again;
- copies the command's output to `<exit dir>/<job_id>.log` as it comes (the newest part kept
  when it grows large), so a restart can show what a leftover printed after the engine died.

The engine discards both as soon as the job's outcome is stored; they are only read on
restore, for a job that was running when the previous run ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import contextlib
from pathlib import Path
from typing import Final

from .job_wrapper import CANNOT_RUN, NOT_FOUND
from .output import LineSplitter
from .process_tree import command_line

EXIT_RECORD_SUFFIX: Final = ".exit"
JOB_LOG_SUFFIX: Final = ".log"
COMMAND_NOT_STARTED: Final = frozenset({CANNOT_RUN, NOT_FOUND})
"""The wrapper's exit statuses for a command it could not run (not executable, not found)."""
LOG_TAIL_BYTES: Final = 256 * 1024
"""How much of the end of a job log `read_job_log` reads at most."""

# What a job leaves, by suffix: the record, a half-written record, the log, its older part.
_JOB_FILE_SUFFIXES: Final = (
    EXIT_RECORD_SUFFIX,
    f"{EXIT_RECORD_SUFFIX}.part",
    JOB_LOG_SUFFIX,
    f"{JOB_LOG_SUFFIX}.1",
)


def exit_record_path(exit_dir: Path, job_id: str) -> Path:
    """Return where the exit record of `job_id` is written."""
    return exit_dir / f"{job_id}{EXIT_RECORD_SUFFIX}"


def job_log_path(exit_dir: Path, job_id: str) -> Path:
    """Return where the output of `job_id` is logged."""
    return exit_dir / f"{job_id}{JOB_LOG_SUFFIX}"


def _log_beside(record: Path) -> Path:
    stem = record.name.removesuffix(EXIT_RECORD_SUFFIX)
    return record.with_name(f"{stem}{JOB_LOG_SUFFIX}")


def with_exit_record(argv: Sequence[str], record: Path) -> list[str]:
    """Return `argv` wrapped so that its exit status lands in `record` when it ends by
    itself, and its output in the job log beside it (`<job_id>.log`)."""
    return command_line(argv, exit_record=record, log=_log_beside(record))


def read_exit_record(record: Path) -> int | None:
    """Return the recorded exit status, or None when there is no (valid) record. Blocking."""
    try:
        return int(record.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def read_job_log(exit_dir: Path, job_id: str, max_lines: int) -> list[str]:
    """Return the last `max_lines` lines a job's process logged (as the job output shows
    them: `\\r` redraws applied, escapes removed); [] when there is no log. Blocking."""
    log = job_log_path(exit_dir, job_id)
    data = b""
    for part in (log.with_name(f"{log.name}.1"), log):
        with contextlib.suppress(OSError):
            data += part.read_bytes()[-LOG_TAIL_BYTES:]
    cut = len(data) > LOG_TAIL_BYTES
    data = data[-LOG_TAIL_BYTES:]
    if cut:
        # The first line read is most likely a part of a line: leave it out.
        data = data[data.find(b"\n") + 1 :]
    splitter = LineSplitter()
    lines: list[str] = []
    for text, replaces_previous in [*splitter.feed(data), *splitter.flush()]:
        if replaces_previous and lines:
            lines[-1] = text
        else:
            lines.append(text)
    return lines[-max_lines:] if max_lines > 0 else []


def discard_job_files(exit_dir: Path, job_id: str) -> None:
    """Delete what the job `job_id` left: its exit record and its log. Blocking."""
    for suffix in _JOB_FILE_SUFFIXES:
        (exit_dir / f"{job_id}{suffix}").unlink(missing_ok=True)


def discard_exit_records(exit_dir: Path, keep: Iterable[str] = ()) -> None:
    """Delete every exit record and job log (and half-written record) except those of
    `keep`. Blocking."""
    kept = {f"{job_id}{suffix}" for job_id in keep for suffix in _JOB_FILE_SUFFIXES}
    with contextlib.suppress(FileNotFoundError):
        for entry in exit_dir.iterdir():
            if entry.name not in kept and entry.name.endswith(_JOB_FILE_SUFFIXES):
                entry.unlink(missing_ok=True)
