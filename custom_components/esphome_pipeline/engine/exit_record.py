"""Exit records: how a job's process tells a later run that it finished, and how.

If Home Assistant is killed, the ESPHome process it started lives on in its own session and
may well finish: an OTA upload completes, a compile links. Without a trace of that, the next
start would run the job again and flash the device twice. So every job's command runs under
a tiny POSIX shell wrapper that, once the command has ended by itself, writes its exit status
to `<exit dir>/<job_id>.exit` (to a temporary name, then renamed: a reader sees all or
nothing). A wrapper stopped by a signal writes nothing, so "no record" always means "did not
finish" and the job runs again.

The engine discards a record as soon as the job's outcome is known; a record is only read on
restore, for a job that was running when the previous run ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import contextlib
from pathlib import Path
from typing import Final

EXIT_RECORD_SUFFIX: Final = ".exit"
COMMAND_NOT_STARTED: Final = frozenset({126, 127})
"""The wrapper's exit statuses for a command it could not run (not executable, not found)."""

# "$0" is the record path, "$@" the command. The status is written only after the command
# returned; `mkdir -p` because a reset (`clean-all`) may have emptied the folder meanwhile.
_WRAPPER: Final = (
    '"$@"; status=$?; '
    'mkdir -p -- "${0%/*}" && printf "%s\\n" "$status" > "$0.part" && mv -f -- "$0.part" "$0"; '
    'exit "$status"'
)


def exit_record_path(exit_dir: Path, job_id: str) -> Path:
    """Return where the exit record of `job_id` is written."""
    return exit_dir / f"{job_id}{EXIT_RECORD_SUFFIX}"


def with_exit_record(argv: Sequence[str], record: Path) -> list[str]:
    """Return `argv` wrapped so that its exit status lands in `record` when it ends."""
    return ["/bin/sh", "-c", _WRAPPER, str(record), *argv]


def read_exit_record(record: Path) -> int | None:
    """Return the recorded exit status, or None when there is no (valid) record. Blocking."""
    try:
        return int(record.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def discard_exit_records(exit_dir: Path, keep: Iterable[str] = ()) -> None:
    """Delete every exit record (and half-written one) except those of `keep`. Blocking."""
    kept = {f"{job_id}{EXIT_RECORD_SUFFIX}" for job_id in keep}
    with contextlib.suppress(FileNotFoundError):
        for entry in exit_dir.iterdir():
            if entry.name not in kept and (
                entry.name.endswith(EXIT_RECORD_SUFFIX)
                or entry.name.endswith(f"{EXIT_RECORD_SUFFIX}.part")
            ):
                entry.unlink(missing_ok=True)
