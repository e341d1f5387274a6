"""Benchmark: an install where nothing changed and the device runs the image, end to end.

A real ESPHome `host:` device: its configuration is compiled once through the engine with the
real ESPHome CLI (cold, not measured; this leaves the engine's build record) and its program
runs on loopback, answering on its native API. Then, several times, a warm install goes
through the engine's public API exactly as the `install` action does: the folder is rescanned
(`scan_config_dir` with the entry's one `Fingerprinter`, in an executor; warm: stats only),
`FirmwareEngine.install` queues the chain labelled with the fingerprint, and the clock stops
when both jobs are terminal. The engine runs the skip checks the integration wires in
(`skip_wiring.skip_checks`): the compile ends `skipped: unchanged` (`BuildIsCurrent`), the
upload `skipped: device_current` (`DeviceRunsBuild`, a native API session with the device).

Printed: the phases of the median run (fingerprint, compile decision, device check,
bookkeeping = everything else the engine does: queueing, dispatch, events, job records) next to
each phase's own median, the total of the median run, the fastest and slowest run, its ratio
to fbuild's 4,000 ms warm-deploy budget, and, in the same run, the naive path: `esphome
compile` then `esphome upload` of the same configuration. Target: total <= 200 ms.
Exits 1 when missed (or when a job was not skipped as expected).

Run: `.venv/bin/python benchmarks/warm_install.py`
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Final

# Runnable as a plain script from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from custom_components.esphome_pipeline.discovery import scan_config_dir
from custom_components.esphome_pipeline.engine.device.native_api import device_truth
from custom_components.esphome_pipeline.engine.esphome_cli import EsphomeCli
from custom_components.esphome_pipeline.engine.events import EventKind, JobEvent
from custom_components.esphome_pipeline.engine.fingerprint import Fingerprinter, NodeInfo
from custom_components.esphome_pipeline.engine.firmware import FirmwareEngine
from custom_components.esphome_pipeline.engine.models import Job, JobStatus, SkipReason
from custom_components.esphome_pipeline.engine.persistence import FileJobStore
from custom_components.esphome_pipeline.engine.skip import BuildRecord, SkipCheck
from custom_components.esphome_pipeline.engine.skip_checks import fingerprint_reader
from custom_components.esphome_pipeline.skip_wiring import skip_checks
from script.devkit import ESPHOME_CLI
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
ADDRESS: Final = "127.0.0.1"


class Timed:
    """A skip check that adds the time it takes to `spent[name]`."""

    def __init__(self, name: str, check: SkipCheck, spent: dict[str, float]) -> None:
        """Wrap `check`."""
        self._name, self._check, self._spent = name, check, spent

    async def __call__(self, job: Job, build: BuildRecord | None) -> SkipReason | None:
        """Run the check, timing it."""
        start = time.perf_counter()
        try:
            return await self._check(job, build)
        finally:
            elapsed = (time.perf_counter() - start) * 1000
            self._spent[self._name] = self._spent.get(self._name, 0.0) + elapsed


async def until_terminal(engine: FirmwareEngine, job_ids: Iterable[str]) -> None:
    """Return once every job is terminal (synchronised on the engine's status events)."""
    waiting = set(job_ids)
    done = asyncio.get_running_loop().create_future()

    def on_event(event: JobEvent) -> None:
        if event.kind is EventKind.STATUS and event.job.is_terminal:
            waiting.discard(event.job.job_id)
            if not waiting and not done.done():
                done.set_result(None)

    unsubscribe = engine.subscribe(on_event)
    try:
        waiting -= {job_id for job_id in set(waiting) if _terminal(engine, job_id)}
        if waiting:
            await asyncio.wait_for(done, timeout=600)
    finally:
        unsubscribe()


def _terminal(engine: FirmwareEngine, job_id: str) -> bool:
    job = engine.get(job_id)
    return job is not None and job.is_terminal


async def rescan(folder: Path, fingerprinter: Fingerprinter) -> dict[str, NodeInfo]:
    """The `install` action's rescan of the folder (as `Configurations.async_rescan` does)."""
    result = await asyncio.to_thread(
        scan_config_dir, folder, esphome_version=ESPHOME_VERSION, fingerprinter=fingerprinter
    )
    return result.nodes


async def measure(root: Path) -> tuple[list[dict[str, float]], float]:
    """Build and start the device, run the warm installs; return their phases and the naive ms."""
    folder = root / "esphome"
    folder.mkdir()
    base = free_port_block(2)
    device = DemoDevice(
        name="warm-bench", friendly_name="Warm Bench", api_port=base, ota_port=base + 1
    )
    configuration = device.configuration
    write_configuration(folder, device)
    fingerprinter = Fingerprinter(folder, esphome_version=ESPHOME_VERSION)
    read = fingerprint_reader(fingerprinter)
    spent: dict[str, float] = {}
    is_current, runs_build = skip_checks(folder, fingerprinter, device_truth)
    engine = FirmwareEngine(
        config_dir=folder,
        cli=EsphomeCli((str(ESPHOME_CLI),)),
        store=FileJobStore(root / "jobs.json"),
        skip_checks=[
            Timed("compile decision", is_current, spent),
            Timed("device check", runs_build, spent),
        ],
    )
    await engine.load()
    runner = asyncio.get_running_loop().create_task(engine.run())
    process = DeviceProcess(device, folder=folder, run_dir=root / "device")
    runs: list[dict[str, float]] = []
    try:
        print("Compiling the host device through the engine (cold, not measured)...")
        node = await read(configuration)
        assert node is not None
        [cold] = await engine.compile(
            [configuration], fingerprints={configuration: node.fingerprint}
        )
        await until_terminal(engine, [cold.job_id])
        if engine.last_build(configuration) is None:
            raise RuntimeError(f"the cold compile did not complete: {engine.get(cold.job_id)}")
        await asyncio.to_thread(process.start)
        await rescan(folder, fingerprinter)  # settled: the state a warm check sees
        for _ in range(RUNS):
            spent.clear()
            start = time.perf_counter()
            node = (await rescan(folder, fingerprinter)).get(configuration)
            fingerprint_ms = (time.perf_counter() - start) * 1000
            assert node is not None
            [chain] = await engine.install(
                [configuration], port=ADDRESS, fingerprints={configuration: node.fingerprint}
            )
            await until_terminal(engine, [chain.compile.job_id, chain.upload.job_id])
            total = (time.perf_counter() - start) * 1000
            compiled, uploaded = engine.get(chain.compile.job_id), engine.get(chain.upload.job_id)
            assert compiled is not None
            assert uploaded is not None
            outcome = (compiled.status, compiled.skipped, uploaded.status, uploaded.skipped)
            expected = (
                JobStatus.COMPLETED,
                SkipReason.UNCHANGED,
                JobStatus.COMPLETED,
                SkipReason.DEVICE_CURRENT,
            )
            if outcome != expected:
                raise RuntimeError(
                    f"not skipped: {compiled.public_dict()} {uploaded.public_dict()}"
                )
            phases = {"fingerprint": fingerprint_ms, **spent}
            phases["bookkeeping"] = total - sum(phases.values())
            phases["total"] = total
            runs.append(phases)
        start = time.perf_counter()
        await asyncio.to_thread(compile_configuration, folder, device)
        await asyncio.to_thread(esphome, "upload", str(folder / configuration), "--device", ADDRESS)
        naive_ms = (time.perf_counter() - start) * 1000
    finally:
        await engine.stop()
        await runner
        await asyncio.to_thread(process.stop)
    return runs, naive_ms


def main() -> int:
    """Run the benchmark; return the process exit code."""
    with tempfile.TemporaryDirectory(prefix="warm-install-") as temporary:
        runs, naive_ms = asyncio.run(measure(Path(temporary)))
    names = ["fingerprint", "compile decision", "device check", "bookkeeping"]
    # The phases of the median run, so that they add up to its total.
    median_run = sorted(runs, key=lambda run: run["total"])[len(runs) // 2]
    total = median_run["total"]
    print(f"Warm install through FirmwareEngine.install, nothing changed ({RUNS} runs):")
    print(f"  {'phase':<17} {'median run':>10} {'median of phase':>16}")
    for name in names:
        median_ms = statistics.median(run[name] for run in runs)
        print(f"  {name:<17} {median_run[name]:7.1f} ms {median_ms:13.1f} ms")
    print(f"  {'total':<17} {total:7.1f} ms  (action call to both jobs terminal)")
    fastest, slowest = min(run["total"] for run in runs), max(run["total"] for run in runs)
    print(f"  fastest / slowest run: {fastest:.1f} / {slowest:.1f} ms")
    ratio = total / FBUILD_BUDGET_MS
    print(f"  ratio to fbuild's {FBUILD_BUDGET_MS:,.0f} ms budget: {ratio:.4f} ({ratio:.2%})")
    print(f"  naive path (esphome compile + esphome upload): {naive_ms:,.0f} ms")
    print(f"  speed-up over the naive path: {naive_ms / total:,.0f}x")
    passed = total <= TARGET_MS
    print(f"  target total <= {TARGET_MS:.0f} ms: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
