"""Benchmark: a bulk install of 20 devices through the two-lane engine.

Each device's compile takes 1.0 s and its upload 0.6 s (idle waits in real `sh` processes,
so the figures measure the engine, not a CPU). With one compile worker the best possible
makespan is N x compile + upload: device B compiles while device A uploads. The script prints
the measured makespan, that ideal, the one-at-a-time baseline N x (compile + upload), their
ratio, and the latency from a compile's terminal status event to its upload's running status
event (median and p99). It exits 1 when the ratio exceeds 1.05 or the p99 latency exceeds 5 ms.

Run: `.venv/bin/python benchmarks/pipeline.py`
"""

from __future__ import annotations

import asyncio
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Final

# Runnable as a plain script from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from custom_components.esphome_pipeline.engine.esphome_cli import EsphomeCli
from custom_components.esphome_pipeline.engine.events import EventKind, JobEvent
from custom_components.esphome_pipeline.engine.firmware import FirmwareEngine
from custom_components.esphome_pipeline.engine.models import JobStatus, JobType
from custom_components.esphome_pipeline.engine.persistence import FileJobStore

DEVICES: Final = 20
COMPILE_SECONDS: Final = 1.0
UPLOAD_SECONDS: Final = 0.6
RATIO_TARGET: Final = 1.05
P99_TARGET_MS: Final = 5.0

# The engine runs `<command> <subcommand> <yaml> ...`: with `sh -c SCRIPT esphome`, the
# subcommand arrives as $1 ($0 is the word "esphome").
STAND_IN_CLI: Final = EsphomeCli(
    (
        "sh",
        "-c",
        f'case "$1" in compile) sleep {COMPILE_SECONDS};; upload) sleep {UPLOAD_SECONDS};; esac',
        "esphome",
    )
)


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `values` (fraction in 0..1)."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


async def measure(workdir: Path) -> tuple[float, list[float], list[JobStatus]]:
    """Run the bulk install; return the makespan, handoff latencies and final statuses."""
    config_dir = workdir / "config"
    config_dir.mkdir()
    names = [f"device-{number:02d}.yaml" for number in range(DEVICES)]
    for name in names:
        (config_dir / name).write_text(f"esphome:\n  name: {name[:-5]}\n", encoding="utf-8")
    engine = FirmwareEngine(
        config_dir=config_dir,
        cli=STAND_IN_CLI,
        store=FileJobStore(workdir / "jobs.json"),
        compile_workers=1,
        upload_slots=4,
    )
    await engine.load()
    loop = asyncio.get_running_loop()
    compile_ended: dict[str, float] = {}
    latencies: list[float] = []
    uploads_left = DEVICES
    all_done: asyncio.Future[float] = loop.create_future()

    def on_event(event: JobEvent) -> None:
        nonlocal uploads_left
        now = time.perf_counter()
        job = event.job
        if event.kind is not EventKind.STATUS:
            return
        if job.job_type is JobType.COMPILE and job.is_terminal:
            compile_ended[job.job_id] = now
        elif job.job_type is JobType.UPLOAD and job.status is JobStatus.RUNNING:
            if job.depends_on in compile_ended:
                latencies.append(now - compile_ended[job.depends_on])
        elif job.job_type is JobType.UPLOAD and job.is_terminal:
            uploads_left -= 1
            if uploads_left == 0 and not all_done.done():
                all_done.set_result(now)

    engine.subscribe(on_event)
    runner = loop.create_task(engine.run())
    try:
        started = time.perf_counter()
        await engine.install(names)
        finished = await all_done
    finally:
        await engine.stop()
        await runner
    return finished - started, latencies, [job.status for job in engine.jobs()]


def main() -> int:
    """Run the benchmark, print the figures, and return 0 when both targets are met."""
    with tempfile.TemporaryDirectory(prefix="pipeline-benchmark-") as workdir:
        makespan, latencies, statuses = asyncio.run(measure(Path(workdir)))
    ideal = DEVICES * COMPILE_SECONDS + UPLOAD_SECONDS
    baseline = DEVICES * (COMPILE_SECONDS + UPLOAD_SECONDS)
    ratio = makespan / ideal
    median_ms = statistics.median(latencies) * 1000
    p99_ms = percentile(latencies, 0.99) * 1000
    failures = sum(1 for status in statuses if status is not JobStatus.COMPLETED)
    print(f"devices                      {DEVICES}")
    print(f"compile / upload             {COMPILE_SECONDS:.1f} s / {UPLOAD_SECONDS:.1f} s")
    print(f"measured makespan            {makespan:.3f} s")
    print(f"ideal (N x compile + upload) {ideal:.3f} s")
    print(f"one-at-a-time baseline       {baseline:.3f} s")
    print(f"measured / ideal             {ratio:.4f}  (target <= {RATIO_TARGET})")
    print(f"speed-up over baseline       {baseline / makespan:.2f}x")
    print(f"handoff latency median       {median_ms:.3f} ms  ({len(latencies)} handoffs)")
    print(f"handoff latency p99          {p99_ms:.3f} ms  (target <= {P99_TARGET_MS} ms)")
    print(f"jobs not completed           {failures}")
    met = (
        ratio <= RATIO_TARGET
        and p99_ms <= P99_TARGET_MS
        and failures == 0
        and len(latencies) == DEVICES
    )
    print("result                       " + ("PASS" if met else "FAIL"))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
