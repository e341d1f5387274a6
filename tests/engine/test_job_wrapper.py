"""The job wrapper process (engine/job_wrapper.py), driven through JobProcess like a job.

These tests start the wrapper with site-packages enabled (`-I` without `-S`), so that
pytest-cov's start-up hook measures the wrapper process too; the wrapper itself only uses
the standard library, so its behaviour is the same. They run their commands with the
repository as working folder for the same reason (coverage finds its source folder from
there); the commands only touch the test's own temporary folder.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import os
from pathlib import Path
import signal
import subprocess
import sys
import textwrap

import pytest

from custom_components.esphome_pipeline.engine import job_wrapper, procfs
from custom_components.esphome_pipeline.engine.exit_record import read_exit_record
from custom_components.esphome_pipeline.engine.job_wrapper import (
    MARKER_ENV,
    exit_like,
    marker,
    parse_options,
)
from custom_components.esphome_pipeline.engine.process_tree import command_line
from custom_components.esphome_pipeline.engine.runner import JobProcess, _session_members

REPOSITORY = Path(__file__).parents[2]
WAIT_LIMIT = 30.0


@pytest.fixture(autouse=True)
def measured_wrapper(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start the wrapper with site-packages, so pytest-cov measures it."""
    monkeypatch.setattr(job_wrapper, "INTERPRETER_FLAGS", ("-I",))


def python(code: str) -> list[str]:
    """argv running `code` unbuffered without site-packages."""
    return [sys.executable, "-S", "-u", "-c", textwrap.dedent(code)]


class Lines:
    """Collects output lines; a test can await a line that contains some text."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._wanted: list[tuple[str, asyncio.Future[str]]] = []

    def __call__(self, text: str, _replaces_previous: bool) -> None:
        self.texts.append(text)
        for wanted, future in self._wanted:
            if wanted in text and not future.done():
                future.set_result(text)

    async def wait_for(self, wanted: str) -> str:
        for text in self.texts:
            if wanted in text:
                return text
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._wanted.append((wanted, future))
        async with asyncio.timeout(WAIT_LIMIT):
            return await future


_started: list[JobProcess] = []


@pytest.fixture(autouse=True)
async def stop_every_job() -> AsyncIterator[None]:
    """Whatever a test leaves running (a failed one, say) is stopped with its whole tree."""
    yield
    while _started:
        await _started.pop().terminate(0.1)


async def start(
    command: list[str], **options: object
) -> tuple[JobProcess, Lines, asyncio.Task[int]]:
    """Start `command` under the wrapper and stream it in the background."""
    argv = command_line(command, **options)  # type: ignore[arg-type]
    process = await JobProcess.start(argv, cwd=REPOSITORY)
    _started.append(process)
    lines = Lines()
    return process, lines, asyncio.create_task(process.stream(lines))


async def until[T](probe: Callable[[], T | None]) -> T:
    """Poll a file another process writes (no event to await), bounded."""
    async with asyncio.timeout(WAIT_LIMIT):
        while (value := await asyncio.to_thread(probe)) is None:
            await asyncio.sleep(0.02)
    return value


def alive(pid: int) -> bool:
    stat = procfs.read_stat(pid)
    return stat is not None and stat.alive


async def test_output_status_record_log_and_marker(tmp_path: Path) -> None:
    """Output passes through (stderr merged), the exit code comes back, the record is
    written, the command carries the marker of its wrapper, and the log is dropped at the
    end (the engine read all of it)."""
    record, log = tmp_path / "r" / "j.exit", tmp_path / "r" / "j.log"
    process, lines, streaming = await start(
        python(
            f"""
            import os, sys
            print(os.environ[{MARKER_ENV!r}], os.getppid())
            print("to stderr", file=sys.stderr)
            sys.exit(5)
            """
        ),
        exit_record=record,
        log=log,
    )
    assert await streaming == 5
    own = marker(process.record.pid, process.record.start_time)
    assert lines.texts == [f"{own} {process.record.pid}", "to stderr"]
    assert await asyncio.to_thread(read_exit_record, record) == 5
    assert not await asyncio.to_thread(log.exists)


async def test_a_command_killed_by_a_signal_leaves_no_record(tmp_path: Path) -> None:
    """The wrapper dies of the command's signal; no record says it finished."""
    record = tmp_path / "j.exit"
    _, _, streaming = await start(
        python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), exit_record=record
    )
    assert await streaming == -signal.SIGKILL
    assert not await asyncio.to_thread(record.exists)


async def test_the_command_finishes_after_its_reader_died(tmp_path: Path) -> None:
    """The engine stops reading (as when Home Assistant dies): the command still writes
    everything, exits 0, and it all lands in the log; the record says 0."""
    go, record, log = tmp_path / "go", tmp_path / "j.exit", tmp_path / "j.log"
    count = 20_000  # ~1 MB: far more than any pipe holds
    process, lines, streaming = await start(
        python(
            f"""
            import os, time
            print("ready")
            while not os.path.exists({str(go)!r}):
                time.sleep(0.01)
            for number in range({count}):
                print(f"line {{number:05d}} " + "x" * 40)
            """
        ),
        exit_record=record,
        log=log,
    )
    await lines.wait_for("ready")
    streaming.cancel()  # closes the engine's end of the pipe
    with pytest.raises(asyncio.CancelledError):
        await streaming
    await asyncio.to_thread(go.touch)
    assert await until(lambda: read_exit_record(record)) == 0
    assert await process.terminate() is True
    assert process.returncode == 0
    text = await asyncio.to_thread(log.read_text)
    assert text.splitlines()[-1].startswith(f"line {count - 1:05d}")
    assert len(text.splitlines()) == count + 1


async def test_a_slow_reader_loses_nothing(tmp_path: Path) -> None:
    """While the engine does not read, the wrapper holds a bounded backlog and then lets
    the command wait; once the engine reads again, every line arrives in order."""
    log = tmp_path / "j.log"
    count = 60_000  # ~3 MB: more than the backlog limit
    process = await JobProcess.start(
        command_line(
            python(f"for n in range({count}): print(f'line {{n:05d}} ' + 'y' * 40)"), log=log
        ),
        cwd=REPOSITORY,
    )
    _started.append(process)
    # Nobody reads until the backlog is full: the log then runs a backlog ahead of the pipe.
    full = job_wrapper.BACKLOG_LIMIT + 65_536
    await until(lambda: True if log.exists() and log.stat().st_size >= full else None)
    lines = Lines()
    assert await process.stream(lines) == 0
    assert len(lines.texts) == count
    assert lines.texts[-1].startswith(f"line {count - 1:05d}")


async def test_missing_or_unrunnable_command(tmp_path: Path) -> None:
    """127 when the program does not exist, 126 when it cannot run; both are recorded."""
    record = tmp_path / "j.exit"
    _, lines, streaming = await start([str(tmp_path / "nope")], exit_record=record)
    assert await streaming == 127
    assert lines.texts == [f"{tmp_path / 'nope'}: not found"]
    assert await asyncio.to_thread(read_exit_record, record) == 127
    script = tmp_path / "script.sh"
    await asyncio.to_thread(script.write_text, "echo hi\n")
    _, lines, streaming = await start([str(script)], exit_record=record)
    assert await streaming == 126
    assert lines.texts == [f"{script}: Permission denied"]
    assert await asyncio.to_thread(read_exit_record, record) == 126


async def test_an_exit_record_that_cannot_be_written_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    await asyncio.to_thread(blocker.write_text, "")
    _, lines, streaming = await start(["true"], exit_record=blocker / "j.exit")
    assert await streaming == 0
    assert lines.texts[0].startswith("job wrapper: cannot write the exit record:")


ESCAPES = """
    import os, signal, subprocess, sys, time
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    group = subprocess.Popen([sys.executable, "-S", "-c", stubborn], process_group=0)
    session = subprocess.Popen([sys.executable, "-S", "-c", stubborn], start_new_session=True)
    # A double fork: the middle process exits at once, its child is orphaned.
    middle = (
        "import subprocess, sys\\n"
        f"child = subprocess.Popen([sys.executable, '-S', '-c', {stubborn!r}], "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\\n"
        "print(child.pid, flush=True)\\n"
    )
    orphan = int(subprocess.run(
        [sys.executable, "-S", "-c", middle], capture_output=True, text=True, check=True
    ).stdout)
    parent = open(f"/proc/{orphan}/stat").read().rsplit(")", 1)[1].split()[1]
    print("pids", group.pid, session.pid, orphan, parent, flush=True)
    # The command itself ends cleanly on SIGTERM (so the wrapper exits instead of dying).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    time.sleep(600)
"""


async def test_a_stop_signal_reaches_every_descendant(tmp_path: Path) -> None:
    """SIGTERM to the wrapper alone (no engine involved) stops the command and every
    descendant: one in its own process group, one in its own session, and an orphan of a
    double fork, which the wrapper adopted as their subreaper; SIGKILL after the grace."""
    process, lines, streaming = await start(python(ESCAPES), grace=0.3)
    _, *numbers = (await lines.wait_for("pids")).split()
    group, session, orphan, adopter = map(int, numbers)
    assert adopter == process.record.pid
    os.kill(process.record.pid, signal.SIGTERM)
    assert await streaming == 3
    for pid in (group, session, orphan):
        assert not await asyncio.to_thread(alive, pid)


async def test_strays_are_stopped_once_the_command_is_done(tmp_path: Path) -> None:
    """A descendant left when the command exits is stopped after the drain (SIGKILL when it
    ignores SIGTERM); the wrapper ends only once it is gone, with the command's status."""
    process, lines, streaming = await start(
        python(
            """
            import subprocess, sys
            stubborn = (
                "import signal, time\\n"
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
                "time.sleep(600)\\n"
            )
            stray = subprocess.Popen(
                [sys.executable, "-S", "-c", stubborn], stdout=subprocess.DEVNULL
            )
            print("stray", stray.pid)
            sys.exit(4)
            """
        ),
        grace=0.2,
        drain=0.1,
    )
    assert await streaming == 4
    stray = int(lines.texts[0].split()[1])
    assert not await asyncio.to_thread(alive, stray)
    assert await asyncio.to_thread(_session_members, process.record.pid) == []


def test_wrapper_refuses_a_bad_command_line(tmp_path: Path) -> None:
    """A malformed wrapper command line exits 2 with a message (an engine bug, never user
    input)."""
    result = subprocess.run(
        [sys.executable, "-I", job_wrapper.SCRIPT, "--grace"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("job wrapper: missing --")


def test_parse_options() -> None:
    options = parse_options(["--grace", "0.5", "--log", "l", "--", "a", "--", "b"])
    assert options.command == ["a", "--", "b"]
    assert (options.grace, options.drain, options.log, options.exit_record) == (0.5, 1.5, "l", None)
    with pytest.raises(ValueError, match="no command"):
        parse_options(["--"])
    with pytest.raises(ValueError, match="bad option"):
        parse_options(["--colour", "red", "--", "a"])
    with pytest.raises(ValueError, match="bad option"):
        parse_options(["--log", "--", "a"])


def test_exit_like() -> None:
    """An exit status is returned; a signal that does not end a process becomes 128 + n."""
    assert exit_like(3 << 8) == 3
    assert exit_like(0x137F) == 1  # stopped, not exited: never a status the wrapper gets
    previous = signal.getsignal(signal.SIGWINCH)
    try:
        assert exit_like(signal.SIGWINCH) == 128 + signal.SIGWINCH
    finally:
        signal.signal(signal.SIGWINCH, previous)
