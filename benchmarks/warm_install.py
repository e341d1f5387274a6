"""Benchmark: the warm path of an install where nothing changed, on a real ESPHome host device.

A `host:` configuration is compiled with the real ESPHome CLI (cold, not measured) and its
program started: a real device answering on its native API. Then the decisions of a warm
install are measured, each the median of several runs, through the engine's public classes
(the checks the dispatcher runs between claiming a job and running it; once the engine's skip
seam has landed, the same run can go through `FirmwareEngine.install`):

- fingerprint: the configuration's fingerprint read again (`Fingerprinter`, warm: stats only);
- compile decision: `BuildIsCurrent` on the compile job -> `skipped: unchanged`;
- device check: `DeviceRunsBuild` on the upload job (a native API session with the device,
  compared with `build_info.json`) -> `skipped: device_current`;
- bookkeeping: the two jobs completed as skipped and serialised (`Job.public_dict`).

It prints each phase, the total, the ratio to fbuild's 4,000 ms warm-deploy budget and, in the
same run, the naive path: `esphome compile` then `esphome upload` of the same configuration.
Target: total <= 200 ms. Exits 1 when missed.

Run: `.venv/bin/python benchmarks/warm_install.py`
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Final

# Runnable as a plain script from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from custom_components.esphome_pipeline.engine.fingerprint import Fingerprinter
from custom_components.esphome_pipeline.engine.models import (
    Job,
    JobStatus,
    JobType,
    Lane,
    SkipReason,
    utc_now_iso,
)
from custom_components.esphome_pipeline.engine.skip import BuildRecord
from custom_components.esphome_pipeline.engine.skip_checks import (
    BuildIsCurrent,
    DeviceRunsBuild,
    fingerprint_reader,
)
from script.devkit.demo import (
    DemoDevice,
    DeviceProcess,
    compile_configuration,
    esphome,
    write_configuration,
)
from script.devkit.site import free_port_block

RUNS: Final = 15
TARGET_MS: Final = 200.0
FBUILD_BUDGET_MS: Final = 4000.0
ESPHOME_VERSION: Final = "2026.10.0"


async def timed(action: Callable[[], Awaitable[object]]) -> tuple[float, object]:
    """Run `action`; return (milliseconds, its result)."""
    start = time.perf_counter()
    result = await action()
    return (time.perf_counter() - start) * 1000, result


async def warm_install(
    fingerprinter: Fingerprinter, data_dir: Path, device: DemoDevice, build: BuildRecord
) -> dict[str, float]:
    """One warm install's decisions; return each phase in milliseconds."""
    read = fingerprint_reader(fingerprinter)
    phases: dict[str, float] = {}
    phases["fingerprint"], node = await timed(lambda: read(device.configuration))
    fingerprint = node.fingerprint  # type: ignore[attr-defined]
    compile_job = Job(
        configuration=device.configuration,
        job_type=JobType.COMPILE,
        lane=Lane.COMPILE,
        fingerprint=fingerprint,
    )
    upload_job = Job(
        configuration=device.configuration,
        job_type=JobType.UPLOAD,
        lane=Lane.UPLOAD,
        depends_on=compile_job.job_id,
        port="127.0.0.1",
        fingerprint=fingerprint,
    )
    phases["compile decision"], compiled = await timed(
        lambda: BuildIsCurrent(data_dir, read)(compile_job, build)
    )
    verdicts: list[str] = []
    check_device = DeviceRunsBuild(data_dir, on_verdict=lambda _job, text: verdicts.append(text))
    phases["device check"], uploaded = await timed(lambda: check_device(upload_job, build))
    if compiled is not SkipReason.UNCHANGED or uploaded is not SkipReason.DEVICE_CURRENT:
        raise RuntimeError(f"expected both skipped, got {compiled} and {uploaded}: {verdicts}")
    if not verdicts[0].startswith("the device runs this build"):
        raise RuntimeError(f"the device was not asked: {verdicts}")
    start = time.perf_counter()
    for job, reason in ((compile_job, compiled), (upload_job, uploaded)):
        job.status = JobStatus.COMPLETED
        job.skipped = reason
        job.started_at = job.finished_at = utc_now_iso()
        job.public_dict()
    phases["bookkeeping"] = (time.perf_counter() - start) * 1000
    return phases


def naive(folder: Path, device: DemoDevice) -> float:
    """`esphome compile` then `esphome upload` of the unchanged configuration (ms)."""
    start = time.perf_counter()
    compile_configuration(folder, device)
    esphome("upload", str(folder / device.configuration), "--device", "127.0.0.1")
    return (time.perf_counter() - start) * 1000


async def main() -> int:
    """Run the benchmark; return the process exit code."""
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "esphome"
        folder.mkdir()
        base = free_port_block(2)
        device = DemoDevice(
            name="warm-bench", friendly_name="Warm Bench", api_port=base, ota_port=base + 1
        )
        write_configuration(folder, device)
        print("Compiling the host device (cold, not measured)...")
        await asyncio.to_thread(compile_configuration, folder, device)
        process = DeviceProcess(device, folder=folder, run_dir=Path(temporary) / "device")
        await asyncio.to_thread(process.start)
        try:
            fingerprinter = Fingerprinter(folder, esphome_version=ESPHOME_VERSION)
            node = await asyncio.to_thread(fingerprinter.read_node, device.configuration)
            build = BuildRecord(
                configuration=device.configuration,
                fingerprint=None if node is None else node.fingerprint,
                job_id="cold-build",
                finished_at=datetime.now(UTC).isoformat(),
            )
            data_dir = folder / ".esphome"
            runs = [await warm_install(fingerprinter, data_dir, device, build) for _ in range(RUNS)]
            naive_ms = await asyncio.to_thread(naive, folder, device)
        finally:
            await asyncio.to_thread(process.stop)
    phases = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
    total = statistics.median(sum(run.values()) for run in runs)
    print(f"Warm install, nothing changed, device current ({RUNS} runs, median):")
    for name, value in phases.items():
        print(f"  {name:<17} {value:8.1f} ms")
    print(f"  {'total':<17} {total:8.1f} ms")
    ratio = total / FBUILD_BUDGET_MS
    print(f"  ratio to fbuild's {FBUILD_BUDGET_MS:,.0f} ms budget: {ratio:.5f} ({ratio:.2%})")
    print(f"  naive path (esphome compile + esphome upload): {naive_ms:,.0f} ms")
    print(f"  speed-up over the naive path: {naive_ms / total:,.0f}x")
    passed = total <= TARGET_MS
    print(f"  target total <= {TARGET_MS:.0f} ms: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
