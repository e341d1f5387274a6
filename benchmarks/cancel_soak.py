"""Soak: 1,000 cancels of running compiles whose grandchildren try to escape.

Every compile runs the fake ESPHome CLI (`tests/fakes/fake_esphome.py`, a real process) that
starts a grandchild ignoring SIGTERM and then waits for ever. The grandchildren vary by
configuration: in the job's process group or in one of their own, in their own session
(setsid), holding the output pipe or not. Compiles start in batches (`compile_workers` = the
batch size, so a whole batch runs at once); once every grandchild of a batch runs, all its
jobs are cancelled at the same moment. After each batch, every process the batch started is
checked: a survivor is counted (and then killed by its pid).

Prints the cancels, the survivors (target 0), the jobs that did not end `cancelled`, and the
median and maximum time from `cancel()` to its return (the job is `cancelled` then; the
contract's 3 s grace is inside it, since no grandchild leaves on SIGTERM). Exits 1 when a
process survived or a job did not end cancelled.

Run: `.venv/bin/python benchmarks/cancel_soak.py [--cancels 1000] [--batch 40]`
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
import signal
import statistics
import sys
import tempfile
import time
from typing import Any, Final

# Runnable as a plain script from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from custom_components.esphome_pipeline.engine.firmware import FirmwareEngine
from custom_components.esphome_pipeline.engine.models import JobStatus
from custom_components.esphome_pipeline.engine.persistence import FileJobStore
from custom_components.esphome_pipeline.engine.procfs import read_stat, signal_all
from tests.fakes import CALLS_FILE, FakeEsphome, fake_cli

SURVIVORS_TARGET: Final = 0
VARIANTS: Final[tuple[dict[str, Any], ...]] = (
    {},  # the job's own group and session, holding the pipe
    {"grandchild_own_group": True},
    {"grandchild_own_session": True},
    {"grandchild_own_session": True, "grandchild_closes_output": True},
    {"grandchild_own_group": True, "grandchild_closes_output": True},
)
"""How the grandchild of each configuration tries to escape (configurations cycle)."""


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie has exited)."""
    stat = read_stat(pid)
    return stat is not None and stat.alive


def prepare(fake: FakeEsphome, batch: int) -> list[str]:
    """Write `batch` configurations, each with its escaping grandchild."""
    names = []
    for number in range(batch):
        name = fake.add_config(f"device-{number:03d}")
        fake.behave(
            name,
            "compile",
            wait_for_file="never",
            grandchild_holds_pipe=True,
            grandchild_ignore_sigterm=True,
            **VARIANTS[number % len(VARIANTS)],
        )
        names.append(name)
    return names


async def cancel_timed(engine: FirmwareEngine, job_id: str) -> float:
    """Cancel a running job; return the seconds until cancel() returned."""
    started = time.perf_counter()
    await engine.cancel(job_id)
    return time.perf_counter() - started


async def soak(workdir: Path, cancels: int, batch: int) -> tuple[list[float], int, int]:
    """Run the batches; return the cancel durations, survivors and jobs not cancelled."""
    fake = FakeEsphome(workdir / "config")
    # At least one configuration per escape kind, so small batches still cycle through them.
    names = prepare(fake, max(batch, len(VARIANTS)))
    engine = FirmwareEngine(
        config_dir=fake.config_dir,
        cli=fake_cli(),
        store=FileJobStore(workdir / "jobs.json"),
        compile_workers=batch,
        history_limit=batch,
    )
    await engine.load()
    running = asyncio.get_running_loop().create_task(engine.run())
    durations: list[float] = []
    survivors = 0
    not_cancelled = 0
    try:
        while len(durations) < cancels:
            size = min(batch, cancels - len(durations))
            first = len(durations)
            jobs = await engine.compile(
                [names[(first + offset) % len(names)] for offset in range(size)]
            )
            # Every grandchild runs, has escaped as far as it will and ignores SIGTERM.
            await fake.wait_for_call("grandchild_ready", count=size, timeout=300)
            durations += await asyncio.gather(*(cancel_timed(engine, job.job_id) for job in jobs))
            not_cancelled += sum(1 for job in jobs if job.status is not JobStatus.CANCELLED)
            calls = fake.calls()
            pids = [call["pid"] for call in calls if call["event"] == "start"]
            pids += [call["grandchild_pid"] for call in calls if call["event"] == "grandchild"]
            left = [pid for pid in pids if alive(pid)]
            survivors += len(left)
            signal_all(left, signal.SIGKILL)
            (fake.config_dir / CALLS_FILE).unlink()
            print(f"  {len(durations):5d} cancels, {survivors} survivors so far", flush=True)
    finally:
        await engine.stop()
        await running
    return durations, survivors, not_cancelled


def main() -> int:
    """Run the soak and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cancels", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=40)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cancel-soak-") as workdir:
        durations, survivors, not_cancelled = asyncio.run(
            soak(Path(workdir), args.cancels, args.batch)
        )
    elapsed = time.perf_counter() - started
    print(f"cancels                      {len(durations)}  (batches of {args.batch} at once)")
    print(
        f"escape kinds                 {len(VARIANTS)} (group, session, pipe), all ignore SIGTERM"
    )
    print(f"survivors                    {survivors}  (target {SURVIVORS_TARGET})")
    print(f"jobs not ended cancelled     {not_cancelled}")
    print(f"cancel -> cancelled median   {statistics.median(durations):.3f} s")
    print(f"cancel -> cancelled max      {max(durations):.3f} s")
    print(f"wall time                    {elapsed:.1f} s")
    met = survivors == SURVIVORS_TARGET and not_cancelled == 0
    print("result                       " + ("PASS" if met else "FAIL"))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
