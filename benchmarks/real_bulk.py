"""Bulk install through Home Assistant versus one device at a time, on real ESPHome devices.

Both variants do the same work on the same demo `host:` devices, in the same run, after the
same clean (`esphome clean` of every configuration before each variant, so every compile is a
cold build):

- sequential: for each device, `esphome compile <yaml>` then `esphome upload <yaml> --device
  127.0.0.1`, one after the other, as `esphome run` does;
- pipeline: one `esphome_pipeline.install` action (`force: true`, so nothing is skipped) on a
  real Home Assistant, timed from the call until every job of it has finished (events).

The machine may be shared, so both variants run `--rounds` times (default 2) in alternating
order (sequential, pipeline, pipeline, sequential): a drift in load hits both alike. Prints each
run, both total wall times and the ratio; exits 1 when the pipeline is not faster, 2 when a job
of the pipeline did not complete. Run it with `.venv/bin/python benchmarks/real_bulk.py`.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
import sys
import tempfile
import time
from typing import Any

import aiohttp

if __package__ in (None, ""):
    # Run as a script: make the repository root importable for `script.devkit`.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from script.devkit.api import DOMAIN, JOB_EVENT, connect, set_options
from script.devkit.demo import esphome
from script.devkit.site import Site

TERMINAL = frozenset({"completed", "failed", "cancelled"})
JOB_GUARD = 1800.0
"""Failure guard (seconds) for the pipeline run; never reached by a working pipeline."""


def clean_all(site: Site) -> None:
    """`esphome clean` every configuration: the next compile of each is cold."""
    for configuration in site.configurations():
        esphome("clean", str(site.folder / configuration))


@dataclass(kw_only=True, slots=True)
class Timing:
    """A variant's wall time and how long each of its compiles and uploads took."""

    wall: float = 0.0
    compiles: list[float] = field(default_factory=list)
    uploads: list[float] = field(default_factory=list)

    def breakdown(self) -> str:
        """One line: the per-job seconds and their sums."""
        return (
            f"compiles {[round(s, 1) for s in self.compiles]} (sum {sum(self.compiles):.1f} s), "
            f"uploads {[round(s, 1) for s in self.uploads]} (sum {sum(self.uploads):.1f} s)"
        )


def run_sequential(site: Site) -> Timing:
    """Compile then upload each device in turn with the real CLI."""
    timing = Timing()
    started = time.perf_counter()
    for configuration in site.configurations():
        yaml = str(site.folder / configuration)
        step = time.perf_counter()
        esphome("compile", yaml)
        timing.compiles.append(time.perf_counter() - step)
        step = time.perf_counter()
        esphome("upload", yaml, "--device", "127.0.0.1")
        timing.uploads.append(time.perf_counter() - step)
    timing.wall = time.perf_counter() - started
    return timing


def _seconds(job: dict[str, Any]) -> float:
    started = datetime.fromisoformat(job["started_at"])
    return (datetime.fromisoformat(job["finished_at"]) - started).total_seconds()


async def run_pipeline(site: Site) -> tuple[Timing, list[str]]:
    """Install every device through Home Assistant; return the timing and failed jobs."""
    timing = Timing()
    async with connect(site.base_url, site.token) as ws:
        events = await ws.subscribe_events(JOB_EVENT)
        latest: dict[str, dict[str, Any]] = {}
        started = time.perf_counter()
        response = await ws.call_service(
            DOMAIN,
            "install",
            {"configuration": site.configurations(), "force": True},
            return_response=True,
        )
        ids = [
            job_id
            for chain in response["jobs"]
            for job_id in (chain["compile_job_id"], chain["upload_job_id"])
        ]
        async with asyncio.timeout(JOB_GUARD):
            while not all(
                job_id in latest and latest[job_id]["status"] in TERMINAL for job_id in ids
            ):
                data = (await events.get())["data"]
                latest[data["job_id"]] = data
        timing.wall = time.perf_counter() - started
    failed = [job_id for job_id in ids if latest[job_id]["status"] != "completed"]
    for job_id in ids:
        job = latest[job_id]
        if job["status"] == "completed":
            durations = timing.compiles if job["job_type"] == "compile" else timing.uploads
            durations.append(_seconds(job))
    return timing, failed


async def configure_lanes(site: Site, compile_workers: int) -> None:
    """Set the entry's compile workers through the options flow; wait for the reload."""
    async with connect(site.base_url, site.token) as ws:
        changes = await ws.entry_states()
        await changes.get()  # the current entries
        async with aiohttp.ClientSession() as session:
            await set_options(
                session,
                site.base_url,
                site.token,
                site.entry_id,
                {"compile_workers": compile_workers},
            )
        reloading = False
        async with asyncio.timeout(JOB_GUARD):
            while True:
                for change in await changes.get():
                    entry = change["entry"]
                    if entry["entry_id"] != site.entry_id:
                        continue
                    if entry["state"] != "loaded":
                        reloading = True
                    elif reloading:
                        return


def run_variant(site: Site, variant: str) -> tuple[Timing, list[str]]:
    """Clean every configuration, then run one variant; return its timing and failed jobs."""
    clean_all(site)
    if variant == "sequential":
        return run_sequential(site), []
    return asyncio.run(run_pipeline(site))


def main() -> int:
    """Set up a throw-away site, time both variants, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=4, help="demo devices (1-6)")
    parser.add_argument(
        "--compile-workers",
        type=int,
        default=1,
        help="the entry's compile_workers option (default 1, the integration's default)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="rounds of both variants, in alternating order (default 2: ABBA)",
    )
    args = parser.parse_args()
    totals = {"sequential": 0.0, "pipeline": 0.0}
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="real-bulk-") as scratch:
        print(f"Preparing {args.devices} demo devices (cold compiles) ...", flush=True)
        site = Site.prepare(Path(scratch), device_count=args.devices)
        try:
            site.start()
            if args.compile_workers != 1:
                asyncio.run(configure_lanes(site, args.compile_workers))
            for round_number in range(args.rounds):
                # Alternate the order (A B, B A, ...) so a drift in machine load hits both.
                order = ["sequential", "pipeline"]
                if round_number % 2:
                    order.reverse()
                for variant in order:
                    timing, variant_failed = run_variant(site, variant)
                    failed += variant_failed
                    totals[variant] += timing.wall
                    print(
                        f"round {round_number + 1} {variant:<10} {timing.wall:6.1f} s  "
                        f"{timing.breakdown()}",
                        flush=True,
                    )
        finally:
            site.stop()
    if failed:
        print(f"pipeline jobs did not complete: {failed}")
        return 2
    sequential, pipeline = totals["sequential"], totals["pipeline"]
    print(f"sequential (compile + upload, one device at a time): {sequential:.1f} s")
    print(
        "pipeline (one bulk install through Home Assistant, "
        f"compile_workers={args.compile_workers}): {pipeline:.1f} s"
    )
    print(
        f"ratio pipeline / sequential: {pipeline / sequential:.2f} ({sequential / pipeline:.2f}x)"
    )
    return 0 if pipeline < sequential else 1


if __name__ == "__main__":
    sys.exit(main())
