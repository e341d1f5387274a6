"""Which processes belong to a job, and which stored records may be acted on (Linux, real
processes). A record that is not sane makes restore signal nothing at all."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import logging
import os
from pathlib import Path
import signal
import subprocess
import sys

import pytest

from custom_components.esphome_pipeline.engine import job_wrapper, process_tree, procfs
from custom_components.esphome_pipeline.engine.models import ProcessRecord
from custom_components.esphome_pipeline.engine.process_tree import (
    command_line,
    is_command_line,
    is_wrapper_command,
    job_tree,
    record_problem,
)
from custom_components.esphome_pipeline.engine.runner import JobProcess, reap_leftovers

SLEEPER = [sys.executable, "-S", "-c", "import time; print('up', flush=True); time.sleep(600)"]


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[str]]:
    """A plain process in a session of its own, running (not a job wrapper); killed after."""
    process = subprocess.Popen(SLEEPER, start_new_session=True, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline() == "up\n"
    yield process
    process.kill()
    process.wait()
    process.stdout.close()


async def reap_without_signals(
    record: ProcessRecord, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[int, int]]:
    """Reap `record` with every signal recorded instead of delivered; return those signals."""
    sent: list[tuple[int, int]] = []

    def spy(pid: int, signum: int) -> None:
        sent.append((pid, signum))

    with monkeypatch.context() as patch:
        patch.setattr(os, "kill", spy)
        assert await reap_leftovers(record, 0.1) is True
    return sent


def record_of(pid: int) -> ProcessRecord:
    """The process record of a live process (blocking)."""
    stat = procfs.read_stat(pid)
    assert stat is not None
    return ProcessRecord(pid=pid, start_time=stat.start_time)


@pytest.mark.parametrize("pid", [0, 1])
async def test_records_of_pid_0_and_1_signal_nothing(
    pid: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """pid 0 would mean "my process group" (and session 0 holds init and kernel threads);
    pid 1 is init. A stored record naming them is ignored, even with init's start time."""
    start_time = record_of(1).start_time if pid == 1 else 0
    record = ProcessRecord(pid=pid, start_time=start_time)
    with caplog.at_level(logging.WARNING):
        assert await reap_without_signals(record, monkeypatch) == []
    assert f"pid {pid} is not above 1" in caplog.text
    assert "nothing is signalled" in caplog.text


async def test_record_with_another_start_time_signals_nothing(
    sleeper: subprocess.Popen[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The pid was reused (or the machine restarted): the process is not the recorded one."""
    record = record_of(sleeper.pid)
    stale = ProcessRecord(pid=record.pid, start_time=record.start_time - 1)
    with caplog.at_level(logging.WARNING):
        assert await reap_without_signals(stale, monkeypatch) == []
    assert "start time differs" in caplog.text


async def test_record_of_a_foreign_process_signals_nothing(
    sleeper: subprocess.Popen[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Right pid, right start time, own session, but not a job wrapper: left alone."""
    with caplog.at_level(logging.WARNING):
        assert await reap_without_signals(record_of(sleeper.pid), monkeypatch) == []
    assert "is not an ESPHome Pipeline job wrapper" in caplog.text


def test_record_problem_reasons(sleeper: subprocess.Popen[str]) -> None:
    """Each insane shape says why; a record whose process is gone is sane (it reaches only
    processes that carry its marker)."""
    assert record_problem(ProcessRecord(pid=4_194_400, start_time=-1)) == (
        "start time -1 is negative"
    )
    assert record_problem(ProcessRecord(pid=4_194_400, start_time=5)) is None
    # This test process runs in pytest's session, which it does not lead.
    own = record_of(os.getpid())
    assert record_problem(own) == f"process {own.pid} does not lead its own session"
    assert record_problem(record_of(sleeper.pid)) == (
        f"process {sleeper.pid} is not an ESPHome Pipeline job wrapper"
    )


async def test_record_of_a_running_job_is_sane(tmp_path: Path) -> None:
    process = await JobProcess.start(SLEEPER, cwd=tmp_path)
    up: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_line(line: str, _replaces_previous: bool) -> None:
        if line == "up" and not up.done():
            up.set_result(None)

    streaming = asyncio.create_task(process.stream(on_line))
    await up
    assert await asyncio.to_thread(record_problem, process.record) is None
    tree = await asyncio.to_thread(lambda: job_tree(process.record, trusted=False))
    assert tree.leader_alive
    assert len(tree.members) == 1
    assert tree.outside_leader == ()
    assert await process.terminate(0.5)
    assert await streaming == -signal.SIGTERM


def test_wrapper_command_lines() -> None:
    """Our wrapper is recognised by its script, from any install; the command part (after
    `--`) does not count, so a process cannot pass by merely mentioning the script."""
    argv = command_line(["esphome", "compile", "a.yaml"], exit_record="r.exit", log="r.log")
    assert is_command_line(argv)
    assert not is_command_line(["esphome", "compile", "a.yaml"])
    assert not is_command_line([])
    assert is_wrapper_command("\0".join(argv).encode())
    other_install = ["python3", "-S", "/opt/x/custom_components/" + job_wrapper.SCRIPT_SUFFIX]
    assert is_wrapper_command("\0".join([*other_install, "--", "true"]).encode())
    mention = ["sh", "--", "/x/" + job_wrapper.SCRIPT_SUFFIX]
    assert not is_wrapper_command("\0".join(mention).encode())
    assert not is_wrapper_command(b"")


def test_proc_readers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command name may contain ') '; malformed or missing files give None."""
    monkeypatch.setattr(procfs, "PROC", str(tmp_path))
    fields = ["S", "7", "42", "42", *["0"] * 15, "777", "0"]
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "stat").write_text(f"42 (odd) name) {' '.join(fields)}\n")
    (tmp_path / "43").mkdir()
    (tmp_path / "43" / "stat").write_text("43 (short) S 1\n")
    (tmp_path / "self").mkdir()
    stat = procfs.read_stat(42)
    assert stat is not None
    assert (stat.pid, stat.ppid, stat.state, stat.session, stat.start_time) == (42, 7, "S", 42, 777)
    assert repr(stat).startswith("ProcStat(pid=42, ppid=7")
    assert procfs.read_stat(43) is None
    assert procfs.read_stat(44) is None
    assert list(procfs.process_table()) == [42]
    assert procfs.read_proc_file(42, "stat", limit=4) == (tmp_path / "42" / "stat").read_bytes()
    assert not process_tree.carries_marker(44, "44:1")


def test_descendants_follow_parent_links() -> None:
    def stat(pid: int, ppid: int) -> procfs.ProcStat:
        return procfs.ProcStat(pid=pid, ppid=ppid, state="S", session=1, start_time=1)

    table = {pid: stat(pid, ppid) for pid, ppid in [(10, 1), (11, 10), (12, 11), (13, 10), (20, 1)]}
    assert sorted(procfs.descendants(table, 10)) == [11, 12, 13]
    assert procfs.descendants(table, 12) == []
    assert procfs.signal_all([], signal.SIGTERM) == []


async def start_stopped_wrapper(tmp_path: Path) -> tuple[JobProcess, asyncio.Task[int]]:
    """A running job whose wrapper is then frozen (SIGSTOP): it cannot end by itself."""
    process = await JobProcess.start(SLEEPER, cwd=tmp_path)
    up: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_line(line: str, _replaces_previous: bool) -> None:
        if line == "up" and not up.done():
            up.set_result(None)

    streaming = asyncio.create_task(process.stream(on_line))
    await up
    os.kill(process.record.pid, signal.SIGSTOP)
    return process, streaming


async def test_a_wrapper_that_does_not_end_is_killed_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process_tree, "WRAPPER_EXIT_TIMEOUT", 0.2)
    process, streaming = await start_stopped_wrapper(tmp_path)
    assert await process.terminate(0.2) is True
    assert await streaming == -signal.SIGKILL


async def test_a_leftover_wrapper_that_does_not_end_is_killed_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(process_tree, "WRAPPER_EXIT_TIMEOUT", 0.2)
    leftover = subprocess.Popen(
        command_line(SLEEPER), start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    assert leftover.stdout is not None
    assert await asyncio.to_thread(leftover.stdout.readline) == "up\n"
    os.kill(leftover.pid, signal.SIGSTOP)
    assert await reap_leftovers(record_of(leftover.pid), 0.2) is True
    assert await asyncio.to_thread(leftover.wait) == -signal.SIGKILL
    leftover.stdout.close()


async def test_a_wrapper_that_survives_sigkill_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    process, streaming = await start_stopped_wrapper(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(process_tree, "WRAPPER_EXIT_TIMEOUT", 0.1)
        patch.setattr(process_tree, "KILL_CONFIRM_TIMEOUT", 0.1)
        patch.setattr(process_tree, "_kill_leader", lambda _record: None)
        assert await process.terminate(0.1) is False
    assert f"Job wrapper {process.record.pid} did not exit after SIGKILL" in caplog.text
    assert await process.terminate(0.1) is True
    assert await streaming == -signal.SIGKILL
