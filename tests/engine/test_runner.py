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

from custom_components.esphome_pipeline.engine import runner
from custom_components.esphome_pipeline.engine.models import ProcessRecord
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
    stat = runner._read_stat(pid)
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


async def test_runs_in_new_session_and_records_start_time(tmp_path: Path) -> None:
    """The leader leads its own session; the record holds its kernel start time."""
    process = await JobProcess.start(
        python("import os; print(os.getsid(0), os.getpgid(0), os.getpid()); input()"),
        cwd=tmp_path,
    )
    stat = await in_executor(runner._read_stat, process.record.pid)
    assert stat is not None
    assert process.record.start_time == stat.start_time
    collector = Collector()
    assert await process.stream(collector) == 1  # input() raises EOFError: stdin is closed
    assert collector.texts[0] == f"{process.record.pid} {process.record.pid} {process.record.pid}"


async def test_spawn_failure_raises_oserror(tmp_path: Path) -> None:
    """A missing program or working folder raises OSError and leaks nothing."""
    with pytest.raises(FileNotFoundError):
        await JobProcess.start([str(tmp_path / "missing-program")], cwd=tmp_path)
    with pytest.raises(FileNotFoundError):
        await JobProcess.start(python("pass"), cwd=tmp_path / "missing-folder")


@pytest.mark.parametrize("failing_step", ["pipe", "stat"])
async def test_failure_after_spawn_stops_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_step: str
) -> None:
    """If set-up fails after the spawn, the new session is stopped before the error surfaces."""
    spawned: list[int] = []
    real_read_stat = runner._read_stat
    # Session-scoped fixtures (the e2e Home Assistant, say) may own children already.
    children_before = set(await in_executor(own_children_alive))

    def stat_fails_once(pid: int) -> runner._ProcStat | None:
        if not spawned:
            spawned.append(pid)
            raise OSError("set-up failed")
        return real_read_stat(pid)

    def protocol_fails(*_args: object) -> asyncio.Protocol:
        raise OSError("set-up failed")

    if failing_step == "stat":
        monkeypatch.setattr(runner, "_read_stat", stat_fails_once)
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
    for entry in runner.PROC.iterdir():
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
    assert sorted(await session_alive(process.record.pid)) == sorted([process.record.pid, int(pid)])
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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When processes cannot be confirmed dead, terminate says so with False."""
    process = await JobProcess.start(
        python("import time; print('ready'); time.sleep(600)"), cwd=tmp_path
    )
    collector = Collector()
    streaming = asyncio.create_task(process.stream(collector))
    await collector.wait_for("ready")
    real_signal_session = runner._signal_session
    # Signals go nowhere: the process stays, as one stuck in uninterruptible sleep would.
    monkeypatch.setattr(
        runner,
        "_signal_session",
        lambda session, _signum, started_after=0: runner._session_members(session, started_after),
    )
    monkeypatch.setattr(runner, "KILL_CONFIRM_TIMEOUT", 0.1)
    assert await process.terminate(0) is False
    monkeypatch.setattr(runner, "_signal_session", real_signal_session)
    assert await process.terminate(SHORT_GRACE) is True
    assert await streaming == -signal.SIGTERM


def spawn_detached(code: str) -> subprocess.Popen[str]:
    """Start a session the way a killed Home Assistant would leave it (blocking)."""
    return subprocess.Popen(python(code), start_new_session=True, stdout=subprocess.PIPE, text=True)


async def test_reap_leftovers_of_live_leader(tmp_path: Path) -> None:
    """A recorded leader still running with its start time is stopped with its grandchild."""
    leader = await in_executor(spawn_detached, GRANDCHILD_IN_OWN_GROUP)
    assert leader.stdout is not None
    line = await in_executor(leader.stdout.readline)
    grandchild = int(line.split()[1])
    stat = await in_executor(runner._read_stat, leader.pid)
    assert stat is not None
    record = ProcessRecord(pid=leader.pid, start_time=stat.start_time)
    assert await reap_leftovers(record, SHORT_GRACE) is True
    assert await in_executor(leader.wait) == -signal.SIGTERM
    leader.stdout.close()
    assert not await in_executor(pid_alive, grandchild)
    assert await session_alive(leader.pid) == []


async def test_reap_leftovers_after_leader_exited(tmp_path: Path) -> None:
    """Orphans that still carry the session id are stopped although the leader is gone."""
    leader = await in_executor(
        spawn_detached,
        """
        import subprocess, sys
        child = subprocess.Popen(
            [sys.executable, "-S", "-c", "import time; time.sleep(600)"],
            stdout=subprocess.DEVNULL, process_group=0,
        )
        print(child.pid)
        """,
    )
    assert leader.stdout is not None
    orphan = int(await in_executor(leader.stdout.readline))
    assert await in_executor(leader.wait) == 0
    leader.stdout.close()
    assert await session_alive(leader.pid) == [orphan]
    record = ProcessRecord(pid=leader.pid, start_time=12345)
    assert await reap_leftovers(record, SHORT_GRACE) is True
    assert await session_alive(leader.pid) == []


async def test_reap_leftovers_ignores_processes_older_than_the_leader(tmp_path: Path) -> None:
    """With the leader gone, a process of that session id that started before the recorded
    leader cannot be ours (a session after a reboot, say) and is left alone."""
    leader = await in_executor(
        spawn_detached,
        """
        import subprocess, sys
        child = subprocess.Popen(
            [sys.executable, "-S", "-c", "import time; time.sleep(600)"],
            stdout=subprocess.DEVNULL,
        )
        print(child.pid)
        """,
    )
    assert leader.stdout is not None
    orphan = int(await in_executor(leader.stdout.readline))
    await in_executor(leader.wait)
    leader.stdout.close()
    stat = await in_executor(runner._read_stat, orphan)
    assert stat is not None
    later = ProcessRecord(pid=leader.pid, start_time=stat.start_time + 1)
    assert await reap_leftovers(later, SHORT_GRACE) is True
    assert await in_executor(pid_alive, orphan)
    ours = ProcessRecord(pid=leader.pid, start_time=stat.start_time)
    assert await reap_leftovers(ours, SHORT_GRACE) is True
    assert not await in_executor(pid_alive, orphan)


async def test_reap_leftovers_guards_pid_reuse(tmp_path: Path) -> None:
    """A live process with the recorded pid but another start time is left alone."""
    stranger = await in_executor(spawn_detached, "import time; print('up'); time.sleep(600)")
    assert stranger.stdout is not None
    await in_executor(stranger.stdout.readline)
    stat = await in_executor(runner._read_stat, stranger.pid)
    assert stat is not None
    record = ProcessRecord(pid=stranger.pid, start_time=stat.start_time - 1)
    try:
        assert await reap_leftovers(record, SHORT_GRACE) is True
        assert await in_executor(pid_alive, stranger.pid)
    finally:
        stranger.kill()
        await in_executor(stranger.wait)
        stranger.stdout.close()


async def test_reap_leftovers_when_nothing_remains(tmp_path: Path) -> None:
    """A session that is gone entirely needs nothing."""
    process = await JobProcess.start(python("pass"), cwd=tmp_path)
    await process.stream(Collector())
    assert await reap_leftovers(process.record) is True


def test_read_stat_handles_odd_names_and_garbage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command name may contain ') '; malformed or missing files give None."""
    monkeypatch.setattr(runner, "PROC", tmp_path)
    fields = ["S", "1", "42", "42", *["0"] * 15, "777", "0"]
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "stat").write_text(f"42 (odd) name) {' '.join(fields)}\n")
    (tmp_path / "43").mkdir()
    (tmp_path / "43" / "stat").write_text("43 (short) S 1\n")
    (tmp_path / "self").mkdir()
    stat = runner._read_stat(42)
    assert stat == runner._ProcStat(state="S", session=42, start_time=777)
    assert runner._read_stat(43) is None
    assert runner._read_stat(44) is None
    assert runner._session_members(42) == [42]


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
