"""Tests for engine/runner.py with real subprocesses (Linux).

Children are small Python programs. Tests synchronise on output lines the child prints or on
files it writes (awaited through events), never on sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import os
from pathlib import Path
import signal
import subprocess
import sys
import textwrap

import pytest

from custom_components.esphome_pipeline.engine import process_tree, procfs, runner
from custom_components.esphome_pipeline.engine.models import ProcessRecord
from custom_components.esphome_pipeline.engine.process_tree import command_line
from custom_components.esphome_pipeline.engine.runner import JobProcess, reap_leftovers

SHORT_GRACE = 2.0
"""Grace for children that die on SIGTERM at once; generous so a loaded machine never
escalates to SIGKILL by accident (a prompt exit costs no waiting)."""


def python(code: str) -> list[str]:
    """Return argv that runs `code` with this interpreter, unbuffered, without site-packages
    (so pytest-cov's start-up hook stays out of the children)."""
    return [sys.executable, "-S", "-u", "-c", textwrap.dedent(code)]


async def in_executor[T](func: Callable[..., T], *args: object) -> T:
    """Run blocking work off the loop (runner helpers are integration code)."""
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


async def session_alive(session: int) -> list[int]:
    """Return live processes of a session."""
    return await in_executor(runner._session_members, session)


def pid_alive(pid: int) -> bool:
    """Return True while `pid` exists and is not a zombie (blocking)."""
    stat = procfs.read_stat(pid)
    return stat is not None and stat.alive


class Collector:
    """Collects lines and lets a test await a line containing some text."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, bool]] = []
        self._waiters: list[tuple[str, asyncio.Future[str]]] = []

    def __call__(self, text: str, replaces_previous: bool) -> None:
        self.lines.append((text, replaces_previous))
        for wanted, future in self._waiters:
            if wanted in text and not future.done():
                future.set_result(text)

    @property
    def texts(self) -> list[str]:
        return [text for text, _ in self.lines]

    async def wait_for(self, wanted: str) -> str:
        for text in self.texts:
            if wanted in text:
                return text
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.append((wanted, future))
        async with asyncio.timeout(30):
            return await future


async def run_to_end(argv: list[str], tmp_path: Path, **kwargs: object) -> tuple[int, Collector]:
    """Start argv, stream it to the end; return exit code and the lines."""
    process = await JobProcess.start(argv, cwd=tmp_path, **kwargs)  # type: ignore[arg-type]
    collector = Collector()
    exit_code = await process.stream(collector)
    assert process.returncode == exit_code
    assert await session_alive(process.record.pid) == []
    return exit_code, collector


@pytest.mark.parametrize("code", [0, 1, 3, 255])
async def test_exit_code(tmp_path: Path, code: int) -> None:
    """The leader's exit code is returned."""
    exit_code, _ = await run_to_end(python(f"import sys; sys.exit({code})"), tmp_path)
    assert exit_code == code


async def test_output_streamed_with_stderr_merged(tmp_path: Path) -> None:
    """stdout and stderr arrive as one stream of lines, in order, `\\r` redraws flagged."""
    exit_code, collector = await run_to_end(
        python(
            """
            import sys
            print("out one")
            print("err two", file=sys.stderr, flush=True)
            sys.stdout.write("10%\\r20%\\n")
            sys.stdout.write("tail without newline")
            """
        ),
        tmp_path,
    )
    assert exit_code == 0
    assert collector.lines == [
        ("out one", False),
        ("err two", False),
        ("10%", False),
        ("20%", True),
        ("tail without newline", False),
    ]


async def test_stdin_is_at_eof_and_cwd_env_applied(tmp_path: Path) -> None:
    """A child reading stdin gets EOF at once; cwd and env are the ones given."""
    exit_code, collector = await run_to_end(
        python(
            """
            import os, sys
            print(repr(sys.stdin.read()))
            print(os.getcwd())
            print(os.environ.get("PIPELINE_TEST_MARK"))
            """
        ),
        tmp_path,
        env={**os.environ, "PIPELINE_TEST_MARK": "marked"},
    )
    assert exit_code == 0
    assert collector.texts == ["''", str(tmp_path), "marked"]


async def test_runs_under_the_wrapper_in_a_new_session(tmp_path: Path) -> None:
    """The job wrapper leads a new session and the command's process group; the record
    holds the wrapper's pid and kernel start time."""
    process = await JobProcess.start(
        python("import os; print(os.getsid(0), os.getpgid(0), os.getppid()); input()"),
        cwd=tmp_path,
    )
    stat = await in_executor(procfs.read_stat, process.record.pid)
    assert stat is not None
    assert process.record.start_time == stat.start_time
    cmdline = await in_executor(procfs.read_proc_file, process.record.pid, "cmdline")
    assert cmdline is not None
    assert process_tree.is_wrapper_command(cmdline)
    collector = Collector()
    assert await process.stream(collector) == 1  # input() raises EOFError: stdin is closed
    assert collector.texts[0] == f"{process.record.pid} {process.record.pid} {process.record.pid}"


async def test_argv_already_wrapped_is_used_as_is(tmp_path: Path) -> None:
    """An argv made by command_line is not wrapped a second time."""
    process = await JobProcess.start(
        command_line(python("import os; print(os.getppid())")), cwd=tmp_path
    )
    collector = Collector()
    assert await process.stream(collector) == 0
    assert collector.texts == [str(process.record.pid)]


async def test_spawn_failure(tmp_path: Path) -> None:
    """A missing working folder raises OSError; a missing program ends with 127, saying so."""
    with pytest.raises(FileNotFoundError):
        await JobProcess.start(python("pass"), cwd=tmp_path / "missing-folder")
    exit_code, collector = await run_to_end([str(tmp_path / "missing-program")], tmp_path)
    assert exit_code == 127
    assert collector.texts == [f"{tmp_path / 'missing-program'}: not found"]


@pytest.mark.parametrize("failing_step", ["pipe", "stat"])
async def test_failure_after_spawn_stops_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_step: str
) -> None:
    """If set-up fails after the spawn, the new session is stopped before the error surfaces."""
    spawned: list[int] = []
    real_read_stat = procfs.read_stat
    # Session-scoped fixtures (the e2e Home Assistant, say) may own children already.
    children_before = set(await in_executor(own_children_alive))

    def stat_fails_once(pid: int) -> procfs.ProcStat | None:
        if not spawned:
            spawned.append(pid)
            raise OSError("set-up failed")
        return real_read_stat(pid)

    def protocol_fails(*_args: object) -> asyncio.Protocol:
        raise OSError("set-up failed")

    if failing_step == "stat":
        monkeypatch.setattr(runner, "read_stat", stat_fails_once)
    else:
        monkeypatch.setattr(asyncio, "StreamReaderProtocol", protocol_fails)
    with pytest.raises(OSError, match="set-up failed"):
        await JobProcess.start(
            python("import os, time; print(os.getpid()); time.sleep(600)"), cwd=tmp_path
        )
    monkeypatch.undo()
    # The leader's pid is only known to the test when the stat step captured it; either
    # way no child of this test may remain.
    for pid in spawned:
        assert await session_alive(pid) == []
    assert set(await in_executor(own_children_alive)) <= children_before


def own_children_alive() -> list[int]:
    """Return live processes whose parent is this test process (blocking)."""
    alive: list[int] = []
    for entry in Path(procfs.PROC).iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] not in {b"Z", b"X"}:
            alive.append(int(entry.name))
    return alive


async def test_terminate_with_sigterm(tmp_path: Path) -> None:
    """A cooperative child stops on SIGTERM; stream returns the negative signal number."""
    process = await JobProcess.start(
        python("import time; print('ready'); time.sleep(600)"), cwd=tmp_path
    )
    collector = Collector()
    streaming = asyncio.create_task(process.stream(collector))
    await collector.wait_for("ready")
    assert await process.terminate(SHORT_GRACE) is True
    assert await streaming == -signal.SIGTERM
    assert process.returncode == -signal.SIGTERM
    assert await session_alive(process.record.pid) == []


async def test_terminate_escalates_to_sigkill(tmp_path: Path) -> None:
    """A child that ignores SIGTERM is killed after the contract's 3 s grace."""
    process = await JobProcess.start(
        python(
            """
            import signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print('ready')
            time.sleep(600)
            """
        ),
        cwd=tmp_path,
    )
    collector = Collector()
    streaming = asyncio.create_task(process.stream(collector))
    await collector.wait_for("ready")
    assert await process.terminate() is True
    assert await streaming == -signal.SIGKILL
    assert await session_alive(process.record.pid) == []


GRANDCHILD_IN_OWN_GROUP = """
    import os, subprocess, sys, time
    child = subprocess.Popen(
        [sys.executable, "-S", "-c", "import time; time.sleep(600)"],
        process_group=0,
    )
    print("grandchild", child.pid, os.getpgid(child.pid), flush=True)
    time.sleep(600)
"""


async def test_terminate_reaches_grandchild_in_other_process_group(tmp_path: Path) -> None:
    """Like ninja's compilers, a grandchild in its own process group is stopped too."""
    process = await JobProcess.start(python(GRANDCHILD_IN_OWN_GROUP), cwd=tmp_path)
    collector = Collector()
    streaming = asyncio.create_task(process.stream(collector))
    _, pid, group = (await collector.wait_for("grandchild")).split()
    assert int(group) != process.record.pid  # not reachable through killpg of the job's group
    assert int(pid) in await session_alive(process.record.pid)
    assert await process.terminate(SHORT_GRACE) is True
    await streaming
    assert not await in_executor(pid_alive, int(pid))
    assert await session_alive(process.record.pid) == []


async def test_grandchild_holding_pipe_does_not_wedge_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leader exits while a grandchild keeps stdout open: output written before the exit
    still arrives, stream returns the leader's code, and the stray grandchild is stopped."""
    monkeypatch.setattr(runner, "DRAIN_AFTER_EXIT", 0.2)
    flag = tmp_path / "grandchild-wrote"
    process = await JobProcess.start(
        python(
            f"""
            import os, subprocess, sys, time
            code = (
                "import pathlib, sys, time\\n"
                "print('late line from grandchild', flush=True)\\n"
                "pathlib.Path({str(flag)!r}).touch()\\n"
                "time.sleep(600)\\n"
            )
            child = subprocess.Popen([sys.executable, "-S", "-c", code], process_group=0)
            while not os.path.exists({str(flag)!r}):
                time.sleep(0.01)
            print("grandchild", child.pid)
            sys.exit(7)
            """
        ),
        cwd=tmp_path,
    )
    collector = Collector()
    assert await process.stream(collector) == 7
    assert "late line from grandchild" in collector.texts
    grandchild = int(next(t for t in collector.texts if t.startswith("grandchild")).split()[1])
    assert not await in_executor(pid_alive, grandchild)
    assert await session_alive(process.record.pid) == []


async def test_output_written_after_leader_exit_is_drained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grandchild that writes after the leader died, then exits, is still heard."""
    # The grandchild's exit ends the drain at once; the long window only absorbs a slow machine.
    monkeypatch.setattr(runner, "DRAIN_AFTER_EXIT", 60.0)
    exit_code, collector = await run_to_end(
        python(
            """
            import os, subprocess, sys
            code = (
                "import os, time\\n"
                f"while os.getppid() == {os.getpid()}:\\n"
                "    time.sleep(0.01)\\n"
                "print('written after the leader exited', flush=True)\\n"
            )
            subprocess.Popen([sys.executable, "-S", "-c", code])
            """
        ),
        tmp_path,
    )
    assert exit_code == 0
    assert collector.texts == ["written after the leader exited"]


async def test_terminate_after_exit_is_a_noop(tmp_path: Path) -> None:
    """Terminating a finished job confirms at once and keeps its exit code."""
    process = await JobProcess.start(python("print('done')"), cwd=tmp_path)
    assert await process.stream(Collector()) == 0
    assert await process.terminate() is True
    assert await process.terminate() is True
    assert process.returncode == 0


async def test_concurrent_terminates(tmp_path: Path) -> None:
    """Two terminate calls at once both return True once the tree is dead."""
    process = await JobProcess.start(
        python("import time; print('ready'); time.sleep(600)"), cwd=tmp_path
    )
    collector = Collector()
    streaming = asyncio.create_task(process.stream(collector))
    await collector.wait_for("ready")
    results = await asyncio.gather(process.terminate(SHORT_GRACE), process.terminate(SHORT_GRACE))
    assert list(results) == [True, True]
    assert await streaming == -signal.SIGTERM


async def test_terminate_before_stream(tmp_path: Path) -> None:
    """A job stopped before anyone read its output is reaped; its code is the signal."""
    process = await JobProcess.start(python("import time; time.sleep(600)"), cwd=tmp_path)
    assert await process.terminate(SHORT_GRACE) is True
    assert process.returncode is not None
    assert await process.stream(Collector()) == process.returncode


async def test_cancelled_stream_leaves_process_to_terminate(tmp_path: Path) -> None:
    """Cancelling stream releases its reader; terminate then stops the tree."""
    process = await JobProcess.start(
        python("import time; print('ready'); time.sleep(600)"), cwd=tmp_path
    )
    collector = Collector()
    streaming = asyncio.create_task(process.stream(collector))
    await collector.wait_for("ready")
    streaming.cancel()
    with pytest.raises(asyncio.CancelledError):
        await streaming
    assert process.returncode is None
    assert await process.terminate(SHORT_GRACE) is True
    assert process.returncode == -signal.SIGTERM


async def test_terminate_reports_failure_when_tree_survives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When processes cannot be confirmed dead, terminate says so with False and a warning."""
    process = await JobProcess.start(
        python("import time; print('ready'); time.sleep(600)"), cwd=tmp_path
    )
    collector = Collector()
    streaming = asyncio.create_task(process.stream(collector))
    await collector.wait_for("ready")
    # Signals go nowhere: the process stays, as one stuck in uninterruptible sleep would.
    monkeypatch.setattr(process_tree, "signal_all", lambda pids, _signum: list(pids))
    monkeypatch.setattr(process_tree, "KILL_CONFIRM_TIMEOUT", 0.1)
    assert await process.terminate(0) is False
    assert "did not exit after SIGKILL" in caplog.text
    monkeypatch.undo()
    assert await process.terminate(SHORT_GRACE) is True
    assert await streaming == -signal.SIGTERM


async def test_no_warning_when_sigkill_does_its_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A process that ignores SIGTERM and dies of SIGKILL is no reason for a warning."""
    process = await JobProcess.start(
        python(
            """
            import signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print('ready')
            time.sleep(600)
            """
        ),
        cwd=tmp_path,
    )
    collector = Collector()
    streaming = asyncio.create_task(process.stream(collector))
    await collector.wait_for("ready")
    assert await process.terminate(0.2) is True
    assert await streaming == -signal.SIGKILL
    assert [record for record in caplog.records if record.levelname == "WARNING"] == []


def spawn_leftover(code: str) -> subprocess.Popen[str]:
    """Start a wrapped job the way a killed Home Assistant would leave it (blocking)."""
    return subprocess.Popen(
        command_line(python(code)), start_new_session=True, stdout=subprocess.PIPE, text=True
    )


async def record_of(pid: int) -> ProcessRecord:
    """Return the process record of a live process."""
    stat = await in_executor(procfs.read_stat, pid)
    assert stat is not None
    return ProcessRecord(pid=pid, start_time=stat.start_time)


async def test_reap_leftovers_of_live_wrapper(tmp_path: Path) -> None:
    """A recorded wrapper still running with its start time is stopped with its grandchild."""
    leader = await in_executor(spawn_leftover, GRANDCHILD_IN_OWN_GROUP)
    assert leader.stdout is not None
    line = await in_executor(leader.stdout.readline)
    grandchild = int(line.split()[1])
    assert await reap_leftovers(await record_of(leader.pid), SHORT_GRACE) is True
    assert await in_executor(leader.wait) == -signal.SIGTERM
    leader.stdout.close()
    assert not await in_executor(pid_alive, grandchild)
    assert await session_alive(leader.pid) == []


ORPHANS = """
    import os, subprocess, sys
    code = "import time; time.sleep(600)"
    marked = subprocess.Popen([sys.executable, "-S", "-c", code], process_group=0)
    unmarked = subprocess.Popen([sys.executable, "-S", "-c", code], env={})
    print(marked.pid, unmarked.pid, flush=True)
    marked.wait()
"""


async def test_reap_leftovers_after_the_wrapper_was_killed(tmp_path: Path) -> None:
    """With the wrapper gone (killed), only processes carrying its marker are proven ours:
    they are stopped; a process of the same session without the marker is left alone."""
    leader = await in_executor(spawn_leftover, ORPHANS)
    assert leader.stdout is not None
    marked, unmarked = map(int, (await in_executor(leader.stdout.readline)).split())
    record = await record_of(leader.pid)
    try:
        leader.kill()
        await in_executor(leader.wait)
        leader.stdout.close()
        assert await reap_leftovers(record, SHORT_GRACE) is True
        assert not await in_executor(pid_alive, marked)
        assert await in_executor(pid_alive, unmarked)
        assert unmarked in await session_alive(leader.pid)
    finally:
        os.kill(unmarked, signal.SIGKILL)


async def test_reap_leftovers_needs_the_exact_wrapper(tmp_path: Path) -> None:
    """Marked orphans of a killed wrapper answer only to the record with its start time."""
    leader = await in_executor(spawn_leftover, GRANDCHILD_IN_OWN_GROUP)
    assert leader.stdout is not None
    grandchild = int((await in_executor(leader.stdout.readline)).split()[1])
    record = await record_of(leader.pid)
    leader.kill()
    await in_executor(leader.wait)
    leader.stdout.close()
    later = ProcessRecord(pid=record.pid, start_time=record.start_time + 1)
    assert await reap_leftovers(later, SHORT_GRACE) is True
    assert await in_executor(pid_alive, grandchild)
    assert await reap_leftovers(record, SHORT_GRACE) is True
    assert not await in_executor(pid_alive, grandchild)
    assert await session_alive(leader.pid) == []


async def test_reap_leftovers_when_nothing_remains(tmp_path: Path) -> None:
    """A job that is gone entirely needs nothing."""
    process = await JobProcess.start(python("pass"), cwd=tmp_path)
    await process.stream(Collector())
    assert await reap_leftovers(process.record) is True


def test_pipe_end_closes_once() -> None:
    """The pipe wrapper closes its descriptor once and then refuses fileno()."""
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    pipe = runner._PipeEnd(read_fd)
    assert pipe.fileno() == read_fd
    pipe.close()
    pipe.close()
    with pytest.raises(ValueError, match="closed"):
        pipe.fileno()
