"""Exit records: written when the command ends by itself, never when it is stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

from custom_components.esphome_pipeline.engine.exit_record import (
    discard_exit_records,
    exit_record_path,
    read_exit_record,
    with_exit_record,
)
from custom_components.esphome_pipeline.engine.runner import JobProcess


async def _run(argv: list[str], cwd: Path) -> tuple[int, list[str]]:
    lines: list[str] = []
    process = await JobProcess.start(argv, cwd=cwd)
    return await process.stream(lambda line, _: lines.append(line)), lines


async def test_a_command_that_ends_leaves_its_status(tmp_path: Path) -> None:
    record = exit_record_path(tmp_path / "records", "job1")
    exit_code, lines = await _run(
        with_exit_record(["sh", "-c", "echo building; exit 3"], record), tmp_path
    )
    assert exit_code == 3
    assert lines == ["building"]
    assert await asyncio.to_thread(read_exit_record, record) == 3
    assert not record.with_name(record.name + ".part").exists()


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


def test_unreadable_records_count_as_none(tmp_path: Path) -> None:
    record = exit_record_path(tmp_path, "job4")
    assert read_exit_record(record) is None
    record.write_text("garbage", encoding="ascii")
    assert read_exit_record(record) is None


def test_discard_keeps_only_what_is_asked_and_ignores_other_files(tmp_path: Path) -> None:
    for name in ("a.exit", "b.exit", "c.exit.part", "notes.txt"):
        (tmp_path / name).write_text("0", encoding="ascii")
    discard_exit_records(tmp_path, keep=["b"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["b.exit", "notes.txt"]
    discard_exit_records(tmp_path / "missing")
