"""The job wrapper: the process every job runs under, so a job never depends on Home Assistant.

`runner.JobProcess` starts it as `python -S -I job_wrapper.py [options] -- command...`, the
leader of a new session. The wrapper:

- becomes a child subreaper (Linux `prctl`): a descendant whose parent dies is re-parented to
  the wrapper instead of init, so every process the job started stays below it, whatever it
  does with sessions and process groups;
- runs the command with stdout and stderr on a pipe of its own, and copies every chunk to its
  own stdout (the engine's pipe) and to the job log. When its stdout breaks (Home Assistant
  died), it keeps writing the log only: the command never sees a broken pipe and finishes;
- writes the command's exit status to the exit record once the command exited by itself (not
  when a signal killed it): to a temporary name, then renamed, so a reader sees all or nothing;
- on SIGTERM (or SIGINT, SIGHUP) sends SIGTERM to every descendant, SIGKILL after the grace;
- once the command ended, reads for a moment what descendants still write, then stops the ones
  left the same way. It exits only when no descendant is left (a finished wrapper means a
  finished job), with the command's status: dying of the same signal if one killed it.

How the engine starts it and recognises its processes lives in `process_tree.py`. Every job
start pays for this script's start-up, so: standard library only, nothing slow to import (no
typing, dataclasses or pathlib at run time), and its two siblings (`procfs.py`, `job_files.py`)
imported by file name when it runs as a script.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Final

# os.path rather than pathlib throughout: pathlib alone would add a third to the start-up time.
SCRIPT: Final = os.path.abspath(__file__)  # noqa: PTH100
SCRIPT_SUFFIX: Final = "esphome_pipeline/engine/job_wrapper.py"
"""How a wrapper of any install of this integration ends in a command line."""
INTERPRETER_FLAGS: Final = ("-S", "-I")
"""No site-packages, no PYTHON* variables, no script folder on sys.path: a fast, clean start."""
MARKER_ENV: Final = "ESPHOME_PIPELINE_JOB"
"""Set in the command's environment to `<wrapper pid>:<wrapper start time>`: every process of
the job inherits it, so a leftover can be proven ours even after its wrapper is gone."""

DEFAULT_GRACE: Final = 3.0
DEFAULT_DRAIN: Final = 1.5
KILL_GIVE_UP: Final = 5.0
"""Seconds of SIGKILL after which the wrapper leaves processes it cannot kill (stuck in the
kernel) to the engine and exits."""
FINAL_FLUSH_LIMIT: Final = 2.0
KILL_REPEAT: Final = 0.05
NOT_FOUND: Final = 127
CANNOT_RUN: Final = 126
BACKLOG_LIMIT: Final = 1024 * 1024
READ_CHUNK: Final = 65_536
STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_CHILD_SUBREAPER: Final = 36

if __package__:
    from .job_files import JobLog, write_exit_record
    from .procfs import descendants, process_table, read_stat, signal_all
else:  # run as a script: -I keeps the script's folder off sys.path, so put it there
    sys.path.insert(0, os.path.dirname(SCRIPT))  # noqa: PTH120
    from job_files import JobLog, write_exit_record  # type: ignore[import-not-found,no-redef]
    from procfs import (  # type: ignore[import-not-found,no-redef]
        descendants,
        process_table,
        read_stat,
        signal_all,
    )


def marker(pid: int, start_time: int) -> str:
    """Return the value of MARKER_ENV for the wrapper with this pid and start time."""
    return f"{pid}:{start_time}"


class Options:
    """The wrapper's command line."""

    __slots__ = ("command", "drain", "exit_record", "grace", "log")

    def __init__(
        self,
        command: list[str],
        *,
        exit_record: str | None = None,
        log: str | None = None,
        grace: float = DEFAULT_GRACE,
        drain: float = DEFAULT_DRAIN,
    ) -> None:
        """Hold the parsed options."""
        self.command = command
        self.exit_record = exit_record
        self.log = log
        self.grace = grace
        self.drain = drain


def parse_options(argv: Sequence[str]) -> Options:
    """Parse `[--grace S] [--drain S] [--exit-record P] [--log P] -- command...`."""
    if "--" not in argv:
        raise ValueError("missing -- before the command")
    split = argv.index("--")
    words, command = list(argv[:split]), list(argv[split + 1 :])
    if not command:
        raise ValueError("no command given")
    values: dict[str, str] = {}
    while words:
        name = words.pop(0)
        if name not in {"--grace", "--drain", "--exit-record", "--log"} or not words:
            raise ValueError(f"bad option {name!r}")
        values[name] = words.pop(0)
    return Options(
        command,
        exit_record=values.get("--exit-record"),
        log=values.get("--log"),
        grace=float(values.get("--grace", DEFAULT_GRACE)),
        drain=float(values.get("--drain", DEFAULT_DRAIN)),
    )


def become_subreaper() -> bool:
    """Make orphaned descendants children of this process (Linux); False when unavailable."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        one, zero = ctypes.c_ulong(1), ctypes.c_ulong(0)
        return int(libc.prctl(ctypes.c_int(PR_SET_CHILD_SUBREAPER), one, zero, zero, zero)) == 0
    except (ImportError, OSError, AttributeError):
        return False


def own_start_time() -> int:
    """Return this process's kernel start time (0 when /proc cannot tell)."""
    stat = read_stat(os.getpid())
    return 0 if stat is None else stat.start_time


class Wrapper:
    """One run of the wrapper: spawn the command, copy its output, stop what must stop."""

    def __init__(self, options: Options) -> None:
        """Prepare; `run` does the work."""
        self.options = options
        self.log = JobLog(options.log) if options.log else None
        self.stop_requested = False
        self.command_pid: int | None = None
        self.status: int | None = None
        """The command's wait status once it was reaped."""
        self.has_children = False
        self.output_fd: int | None = None
        self.stdout_open = True
        self.backlog = bytearray()
        self.drain_until: float | None = None
        self.kill_at: float | None = None
        self.give_up_at: float | None = None

    def on_stop_signal(self, _signum: int, _frame: object) -> None:
        """A stop signal: the main loop forwards it (handlers stay tiny)."""
        self.stop_requested = True

    def emit(self, data: bytes) -> None:
        """Send output to the log and, while the engine reads, to stdout."""
        if self.log is not None:
            self.log.write(data)
        if self.stdout_open:
            self.backlog += data
            self.flush_stdout()

    def flush_stdout(self) -> None:
        """Write what stdout takes now; a broken stdout (the engine died) is dropped for good."""
        while self.backlog and self.stdout_open:
            try:
                written = os.write(1, self.backlog)
            except BlockingIOError:
                return
            except OSError:
                self.stdout_open = False
                self.backlog.clear()
                return
            del self.backlog[:written]

    def read_output(self) -> None:
        """Copy one chunk of the command's output; at end of output close the pipe."""
        if self.output_fd is None:
            return
        try:
            data = os.read(self.output_fd, READ_CHUNK)
        except BlockingIOError:
            return
        if data:
            self.emit(data)
            return
        os.close(self.output_fd)
        self.output_fd = None

    def reap(self) -> None:
        """Collect every child that ended; note the command's status and whether any is left."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.has_children = False
                return
            if pid == 0:
                self.has_children = True
                return
            if pid == self.command_pid:
                self.status = status
                if os.WIFEXITED(status):
                    self.record(os.WEXITSTATUS(status))

    def record(self, code: int) -> None:
        """Write the exit record; a failure is reported in the output, the job goes on."""
        if self.options.exit_record is None:
            return
        try:
            write_exit_record(self.options.exit_record, code)
        except OSError as err:
            self.emit(f"job wrapper: cannot write the exit record: {err}\n".encode())

    def signal_descendants(self, signum: int) -> None:
        """Signal every process below the wrapper (orphans included: it is their subreaper)."""
        signal_all(descendants(process_table(), os.getpid()), signum)

    def advance(self, now: float) -> None:
        """Move the stop sequence on: SIGTERM, SIGKILL after the grace, give up after that."""
        if self.kill_at is None:
            strays_due = self.status is not None and (
                self.output_fd is None or (self.drain_until is not None and now >= self.drain_until)
            )
            if self.stop_requested or (strays_due and self.has_children):
                self.signal_descendants(signal.SIGTERM)
                self.kill_at = now + self.options.grace
            elif self.status is not None and self.drain_until is None:
                # The command is done: what its strays still write gets a moment to arrive.
                self.drain_until = now + self.options.drain
        if self.kill_at is not None and now >= self.kill_at and self.has_children:
            self.signal_descendants(signal.SIGKILL)
            if self.give_up_at is None:
                self.give_up_at = now + KILL_GIVE_UP

    def finished(self, now: float) -> bool:
        """True when the wrapper may exit."""
        if self.give_up_at is not None and now >= self.give_up_at:
            return True
        if self.status is None or self.has_children:
            return False
        drained = self.drain_until is not None and now >= self.drain_until
        return self.output_fd is None or self.kill_at is not None or drained

    def timeout(self, now: float) -> float | None:
        """Seconds until the next deadline (None: wait for an event)."""
        deadlines = [d for d in (self.drain_until, self.kill_at, self.give_up_at) if d is not None]
        if self.kill_at is not None and now >= self.kill_at:
            deadlines.append(now + KILL_REPEAT)
        future = [deadline - now for deadline in deadlines if deadline > now]
        return min(future) if future else None

    def spawn(self) -> bool:
        """Start the command on a pipe of ours; False (reported) when it cannot run."""
        program = self.options.command[0]
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env[MARKER_ENV] = marker(os.getpid(), own_start_time())
        try:
            self.command_pid = os.posix_spawnp(
                program,
                self.options.command,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, write_fd, 1),
                    (os.POSIX_SPAWN_DUP2, write_fd, 2),
                ],
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, *STOP_SIGNALS),
                setsigmask=(),
            )
        except OSError as err:
            os.close(read_fd)
            code = NOT_FOUND if isinstance(err, FileNotFoundError) else CANNOT_RUN
            reason = "not found" if code == NOT_FOUND else err.strerror
            self.emit(f"{program}: {reason}\n".encode())
            self.status = code << 8  # as a wait status: exited with `code`
            self.record(code)
            return False
        finally:
            os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.output_fd = read_fd
        return True

    def run(self) -> int:
        """Do the whole job; return the command's wait status."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.on_stop_signal)
        # A Python-level handler makes SIGCHLD write to the wake-up pipe.
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        become_subreaper()
        os.set_blocking(1, False)
        if self.spawn():
            self.loop(wake_read)
        # The job is over: a late stop signal must not change the status the wrapper ends with.
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        self.final_flush()
        if self.log is not None:
            if self.engine_read_everything():
                # Nothing in it the engine does not have: only a job the engine lost needs it.
                self.log.discard()
            self.log.close()
        # Only a wrapper that gave up on an unkillable command has no status for it.
        return (128 + signal.SIGKILL) << 8 if self.status is None else self.status

    def loop(self, wake_read: int) -> None:
        """Wait for output, signals and deadlines until the job is over."""
        while True:
            self.reap()
            now = time.monotonic()
            self.advance(now)
            if self.finished(now):
                return
            poller = select.poll()
            poller.register(wake_read, select.POLLIN)
            # While the engine is behind, stop reading: the command waits, nothing is lost.
            if self.output_fd is not None and len(self.backlog) < BACKLOG_LIMIT:
                poller.register(self.output_fd, select.POLLIN)
            if self.backlog and self.stdout_open:
                poller.register(1, select.POLLOUT)
            timeout = self.timeout(now)
            for fd, _mask in poller.poll(None if timeout is None else max(timeout * 1000, 1)):
                if fd == wake_read:
                    drain_wakeups(wake_read)
                elif fd == self.output_fd:
                    self.read_output()
                elif fd == 1:
                    self.flush_stdout()

    def engine_read_everything(self) -> bool:
        """True when all output reached the engine's pipe and the engine still holds it."""
        if not self.stdout_open or self.backlog:
            return False
        poller = select.poll()
        poller.register(1, select.POLLOUT)
        # A pipe whose reader is gone reports POLLERR to its writer.
        return not any(mask & (select.POLLERR | select.POLLHUP) for _fd, mask in poller.poll(0))

    def final_flush(self) -> None:
        """Read what is left of the output, then give stdout a bounded moment to take it."""
        while self.output_fd is not None:
            try:
                self.read_output()
            except OSError:
                break
            if self.output_fd is not None and not select.select([self.output_fd], [], [], 0)[0]:
                os.close(self.output_fd)
                self.output_fd = None
        deadline = time.monotonic() + FINAL_FLUSH_LIMIT
        while self.backlog and self.stdout_open and time.monotonic() < deadline:
            select.select([], [1], [], max(deadline - time.monotonic(), 0))
            self.flush_stdout()


def drain_wakeups(fd: int) -> None:
    """Empty the signal wake-up pipe (the signals themselves were handled already)."""
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        return


def exit_like(status: int) -> int:
    """End as the command ended: die of its signal, or return its exit code."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        if signum not in {signal.SIGKILL, signal.SIGSTOP}:  # those two cannot be caught
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return 128 + signum  # a signal whose default action is not to terminate
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def main(argv: Sequence[str]) -> int:
    """Run the wrapper; return the exit code (or die of the command's signal)."""
    try:
        options = parse_options(argv)
    except ValueError as err:
        os.write(2, f"job wrapper: {err}\n".encode())
        return 2
    return exit_like(Wrapper(options).run())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
