"""Exit records and job logs: written by the job wrapper, read and discarded by the engine."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from custom_components.esphome_pipeline.engine import exit_record, job_files
from custom_components.esphome_pipeline.engine.exit_record import (
    discard_exit_records,
    discard_job_files,
    exit_record_path,
    job_log_path,
    read_exit_record,
    read_job_log,
    with_exit_record,
)
from custom_components.esphome_pipeline.engine.job_files import JobLog, write_exit_record
from custom_components.esphome_pipeline.engine.runner import JobProcess


async def _run(argv: list[str], cwd: Path) -> tuple[int, list[str]]:
    lines: list[str] = []
    process = await JobProcess.start(argv, cwd=cwd)
    return await process.stream(lambda line, _: lines.append(line)), lines


async def test_a_command_that_ends_leaves_its_status(tmp_path: Path) -> None:
    """The status is recorded; the log is dropped, as the engine read all of it."""
    record = exit_record_path(tmp_path / "records", "job1")
    exit_code, lines = await _run(
        with_exit_record(["sh", "-c", "echo building; printf '10%%\\r20%%\\n'; exit 3"], record),
        tmp_path,
    )
    assert exit_code == 3
    assert lines == ["building", "10%", "20%"]
    assert await asyncio.to_thread(read_exit_record, record) == 3
    assert not record.with_name(record.name + ".part").exists()
    assert not job_log_path(tmp_path / "records", "job1").exists()


async def test_a_job_the_engine_lost_keeps_its_log(tmp_path: Path) -> None:
    """The engine stops reading mid-job: the log keeps everything, and reads back as the job
    output shows it (redraws applied)."""
    record = exit_record_path(tmp_path, "job5")
    go = tmp_path / "go"
    command = [
        "sh",
        "-c",
        f"echo building; while [ ! -e {go} ]; do sleep 0.01; done; printf '1\\r2\\n'",
    ]
    process = await JobProcess.start(with_exit_record(command, record), cwd=tmp_path)
    building: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_line(_line: str, _replaces_previous: bool) -> None:
        if not building.done():
            building.set_result(None)

    streaming = asyncio.create_task(process.stream(on_line))
    await building
    streaming.cancel()
    with pytest.raises(asyncio.CancelledError):
        await streaming
    await asyncio.to_thread(go.touch)
    async with asyncio.timeout(30):  # the job runs on without its reader: poll its record
        while await asyncio.to_thread(read_exit_record, record) is None:
            await asyncio.sleep(0.02)
    assert await asyncio.to_thread(read_exit_record, record) == 0
    assert await process.terminate()
    assert process.returncode == 0
    log = job_log_path(tmp_path, "job5")
    assert await asyncio.to_thread(log.read_bytes) == b"building\n1\r2\n"
    assert log.stat().st_mode & 0o777 == 0o600
    assert await asyncio.to_thread(read_job_log, tmp_path, "job5", 10) == ["building", "2"]
    assert await asyncio.to_thread(read_job_log, tmp_path, "job5", 1) == ["2"]


async def test_a_stopped_command_leaves_no_record(tmp_path: Path) -> None:
    record = exit_record_path(tmp_path, "job2")
    process = await JobProcess.start(with_exit_record(["sleep", "60"], record), cwd=tmp_path)
    assert await process.terminate(grace=5.0)
    assert await asyncio.to_thread(read_exit_record, record) is None


async def test_a_missing_command_is_reported_by_the_wrapper(tmp_path: Path) -> None:
    record = exit_record_path(tmp_path, "job3")
    exit_code, lines = await _run(with_exit_record([str(tmp_path / "nope")], record), tmp_path)
    assert exit_code == 127
    assert "not found" in lines[-1]
    assert await asyncio.to_thread(read_exit_record, record) == 127
    assert exit_code in exit_record.COMMAND_NOT_STARTED


def test_unreadable_records_count_as_none(tmp_path: Path) -> None:
    record = exit_record_path(tmp_path, "job4")
    assert read_exit_record(record) is None
    record.write_text("garbage", encoding="ascii")
    assert read_exit_record(record) is None


def test_discard_keeps_only_what_is_asked_and_ignores_other_files(tmp_path: Path) -> None:
    names = ("a.exit", "a.log", "b.exit", "b.log", "b.log.1", "c.exit.part", "d.log.1")
    for name in (*names, "notes.txt"):
        (tmp_path / name).write_text("0", encoding="ascii")
    discard_exit_records(tmp_path, keep=["b"])
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "b.exit",
        "b.log",
        "b.log.1",
        "notes.txt",
    ]
    discard_job_files(tmp_path, "b")
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
    discard_exit_records(tmp_path / "missing")


def test_read_job_log_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The older part comes first; a cut through a line drops that partial line."""
    assert read_job_log(tmp_path, "job", 5) == []
    log = job_log_path(tmp_path, "job")
    log.with_name("job.log.1").write_bytes(b"one\ntwo\n")
    log.write_bytes(b"three\n\x1b[32mfour\x1b[0m")
    assert read_job_log(tmp_path, "job", 10) == ["one", "two", "three", "four"]
    assert read_job_log(tmp_path, "job", 0) == []
    monkeypatch.setattr(exit_record, "LOG_TAIL_BYTES", 22)
    assert read_job_log(tmp_path, "job", 10) == ["three", "four"]


def test_write_exit_record_makes_its_folder(tmp_path: Path) -> None:
    record = tmp_path / "gone" / "again" / "job.exit"
    write_exit_record(str(record), 0)
    assert read_exit_record(record) == 0


def test_job_log_restarts_beyond_its_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the limit the log starts afresh, its previous part kept: the tail survives."""
    monkeypatch.setattr(job_files, "LOG_ROTATE_BYTES", 10)
    path = tmp_path / "logs" / "job.log"
    log = JobLog(str(path))
    log.write(b"12345\n")
    log.write(b"67890\n")
    log.write(b"abc\n")
    log.close()
    log.close()
    assert path.with_name("job.log.1").read_bytes() == b"12345\n67890\n"
    assert path.read_bytes() == b"abc\n"
    assert read_job_log(tmp_path / "logs", "job", 10) == ["12345", "67890", "abc"]


def test_job_log_that_cannot_be_written_is_skipped(tmp_path: Path) -> None:
    """No log (a file where its folder should be) or a failing write never stops the job."""
    (tmp_path / "blocked").write_text("")
    unwritable = JobLog(str(tmp_path / "blocked" / "job.log"))
    unwritable.write(b"lost\n")
    log = JobLog(str(tmp_path / "job.log"))
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, log._fd or -1)  # the log's descriptor now refuses writes
    os.close(fd)
    log.write(b"lost too\n")
    log.write(b"and this\n")
    assert (tmp_path / "job.log").read_bytes() == b""
