"""Benchmark: what a bulk install of a large fleet costs Home Assistant's event loop.

For 20, 100, 200 and 500 configurations, each in a fresh in-process Home Assistant started
the way the tests start it (`pytest_homeassistant_custom_component`'s
`async_test_home_assistant`, registries and the entry's store written to a temporary folder),
with the fake ESPHome CLI of the tests (a real process per job whose compile and upload take
no time) and the default `compile_workers` / `upload_slots`, the script measures:

- setup: from `async_setup` of the entry until Home Assistant is idle again, and the entity
  count it created;
- the bulk: one `esphome_pipeline.install` action for every configuration, until the last
  upload's terminal status event; its makespan and the cost per device (makespan / devices);
- the lateness of a 10 ms ticker on the loop (how much later than due each tick ran), worst
  and 99th percentile, during the setup and during the bulk, and for comparison during 2 s of
  an idle Home Assistant (on a shared machine, other processes delay the loop too).

Targets: worst lateness during the bulk at 500 at most 25 ms; cost per device at 500 at most
1.2 x the cost at 20; setup of 500 at most 2 s. Prints PASS or FAIL per target and exits 1
when one fails. `--sizes 20 100` runs other sizes; `--profile N` writes a cProfile of the
bulk of size N to `scale-N.prof` in the current folder.

Each period starts from a collected heap (`steady_heap`); `--as-started` skips that, so the
full collection start-up left due falls wherever it falls (usually into the bulk). Per size
it also prints the full garbage collections of the bulk, the objects the bulk promoted to the
old generation (what brings the next full collection nearer), its longest loop steps with
what they ran, and the lateness less the time the loop's thread waited for a core (other
processes' share of a loaded machine, read from the thread's `schedstat` on Linux).

Run: `.venv/bin/python benchmarks/scale.py`
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
import cProfile
from dataclasses import dataclass
import gc
import logging
from pathlib import Path
import sys
import tempfile
import time
from typing import Any, ClassVar, Final

# Runnable as a plain script from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from homeassistant import loader
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from custom_components.esphome_pipeline.const import (
    CONF_CONFIG_DIR,
    CONF_ESPHOME_COMMAND,
    DOMAIN,
    EVENT_JOB,
)
from tests.fakes import FakeEsphome, fake_command_line

SIZES: Final = (20, 100, 200, 500)
TICK: Final = 0.010
IDLE_SECONDS: Final = 2.0
WORST_LATENESS_TARGET_MS: Final = 25.0
COST_RATIO_TARGET: Final = 1.2
SETUP_TARGET_S: Final = 2.0
TERMINAL: Final = frozenset({"completed", "failed", "cancelled"})
KEPT_STEPS: Final = 3
COLLECT_BEFORE_PERIODS = True
"""False with `--as-started` (see `steady_heap`)."""
BULK_GUARD: Final = 1800.0
"""Failure guard (seconds) for one bulk; never reached by a working pipeline."""


@dataclass(kw_only=True, slots=True)
class Lateness:
    """Worst and 99th-percentile lateness of the ticker, in milliseconds."""

    longest_steps: list[tuple[float, str]]
    """The longest loop steps of the period apart from full collections: processor time
    (ms) and what ran."""
    worst: float
    p99: float
    worst_apart_from_gc: float
    """The worst lateness of the ticks no full garbage collection overlapped."""
    worst_apart_from_core_waits: float
    """The worst lateness less the time the loop's thread waited for a core meanwhile."""
    p99_apart_from_core_waits: float
    full_collections: list[float]
    """How long each full garbage collection of the period took."""
    promoted: int
    """Objects the period's young collections moved into the old generation."""

    @property
    def longest_step_cpu(self) -> float:
        """Processor time (ms) of the longest loop step apart from full collections."""
        return self.longest_steps[0][0] if self.longest_steps else 0.0


@dataclass(kw_only=True, slots=True)
class Figures:
    """What one fleet size measured."""

    size: int
    entities: int
    setup: float
    setup_lateness: Lateness
    idle_lateness: Lateness
    makespan: float
    bulk_lateness: Lateness
    failed: int

    @property
    def cost_per_device(self) -> float:
        """Seconds of makespan per device."""
        return self.makespan / self.size


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `values` (fraction in 0..1; 0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


class LoopSteps:
    """Measures the processor time of every loop step (callback) on the loop's thread.

    Wall-clock lateness also counts the time the operating system gave the loop's thread to
    other processes (the CLI processes of the bulk, anything else on a shared machine); the
    processor time of the longest step is what the code on the loop cost, and nothing else.
    The longest steps are kept with what they ran (a task's coroutine and line, or the
    callback), so a long step names its culprit.
    """

    longest: ClassVar[list[tuple[float, str]]] = []
    """The `KEPT_STEPS` longest steps of the period (processor seconds, what ran), longest
    first, not counting steps a full garbage collection hit."""
    full_collections = 0

    @classmethod
    def install(cls) -> None:
        """Wrap `asyncio.Handle._run` (every task step and callback runs through it)."""
        original = asyncio.Handle._run

        def counted(phase: str, info: dict[str, int]) -> None:
            if phase == "stop" and info["generation"] == 2:
                cls.full_collections += 1

        def timed(handle: asyncio.Handle) -> None:
            collections = cls.full_collections
            started = time.thread_time()
            original(handle)
            spent = time.thread_time() - started
            if cls.full_collections == collections and (
                len(cls.longest) < KEPT_STEPS or spent > cls.longest[-1][0]
            ):
                cls.longest.append((spent, _what_ran(handle)))
                cls.longest.sort(key=lambda step: -step[0])
                del cls.longest[KEPT_STEPS:]

        gc.callbacks.append(counted)

        asyncio.Handle._run = timed  # type: ignore[method-assign,assignment]


def _what_ran(handle: asyncio.Handle) -> str:
    """Name what a loop step ran: a task's coroutine where it stopped, or the callback."""
    run = handle._callback  # type: ignore[attr-defined]
    task = getattr(run, "__self__", None)
    if isinstance(task, asyncio.Task):
        coroutine = task.get_coro()
        frame = getattr(coroutine, "cr_frame", None)
        where = (
            "" if frame is None else f" ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})"
        )
        return f"task {getattr(coroutine, '__qualname__', coroutine)}{where}"
    return getattr(run, "__qualname__", type(run).__name__)


class Promotions:
    """Counts the objects young collections move into the old generation.

    Python starts a full collection once the objects promoted since the last one exceed a
    quarter of the old generation, so this count is what the bulk adds towards the next full
    collection: a young collection of generation 1 promotes every object of generations 0
    and 1 it does not free.
    """

    def __init__(self) -> None:
        """Not counting until `start()`."""
        self.count = 0
        self._young = 0

    def start(self) -> None:
        """Count from now on (from zero)."""
        self.count = 0
        gc.callbacks.append(self._on_collection)

    def stop(self) -> int:
        """Stop counting; return the objects promoted meanwhile."""
        gc.callbacks.remove(self._on_collection)
        return self.count

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 1:
            return
        if phase == "start":
            self._young = len(gc.get_objects(0)) + len(gc.get_objects(1))
        else:
            self.count += self._young - info["collected"] - info["uncollectable"]


class Ticker:
    """A task on the loop that wakes every 10 ms and records how late each wake-up was.

    It also notes every full (generation 2) garbage collection of the process: such a pause
    stops the loop for the time it takes to walk every object of Home Assistant, whoever
    allocated them, so the ticks it delayed are counted apart as well.
    """

    def __init__(self) -> None:
        """Not started; `start()` it on the loop to measure."""
        self._ticks: list[tuple[float, float, float]] = []
        self._collections: list[tuple[float, float]] = []
        self._collection_start = 0.0
        self._task: asyncio.Task[None] | None = None
        self._promotions = Promotions()

    def start(self) -> None:
        """Start ticking (and forget what earlier periods recorded)."""
        self._ticks = []
        self._collections = []
        LoopSteps.longest = []
        self._promotions.start()
        gc.callbacks.append(self._on_collection)
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> Lateness:
        """Stop ticking; return the lateness of this period."""
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        gc.callbacks.remove(self._on_collection)
        promoted = self._promotions.stop()
        late = [(ran - due) * 1000 for due, ran, _ in self._ticks]
        apart = [
            (ran - due) * 1000
            for due, ran, _ in self._ticks
            if not any(start < ran and end > due for start, end in self._collections)
        ]
        own = [max(0.0, ran - due - waited) * 1000 for due, ran, waited in self._ticks]
        return Lateness(
            longest_steps=[(spent * 1000, what) for spent, what in LoopSteps.longest],
            worst=max(late, default=0.0),
            p99=percentile(late, 0.99),
            worst_apart_from_gc=max(apart, default=0.0),
            worst_apart_from_core_waits=max(own, default=0.0),
            p99_apart_from_core_waits=percentile(own, 0.99),
            full_collections=[(end - start) * 1000 for start, end in self._collections],
            promoted=promoted,
        )

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._collection_start = time.monotonic()
        else:
            self._collections.append((self._collection_start, time.monotonic()))

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + TICK
            waited = _core_wait()
            await asyncio.sleep(TICK)
            self._ticks.append((due, max(due, loop.time()), _core_wait() - waited))


def _core_wait() -> float:
    """Seconds the loop's thread has waited for a core so far (Linux; 0.0 elsewhere).

    The second field of the thread's `schedstat` is the time it spent runnable but not
    running: on a shared machine, what other processes cost the loop, not the code on it.
    """
    try:
        with Path("/proc/thread-self/schedstat").open(encoding="ascii") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def steady_heap() -> None:
    """Collect the whole heap before a measured period, as in a Home Assistant that has run.

    Python starts a full collection once the objects promoted since the last one exceed a
    quarter of the old generation. Right after start-up, what Home Assistant's start-up
    promoted is still pending, so a full collection is due whatever runs next; in a Home
    Assistant that has run for a while full collections come at random moments, each after a
    quarter of the heap was promoted. Starting each period from a collected heap measures what
    the period itself does (its promotions are printed; a full collection it triggers still
    counts), not when start-up's collection happens to fall.
    """
    if COLLECT_BEFORE_PERIODS:
        gc.collect()


@contextmanager
def profiled(path: Path | None) -> Iterator[None]:
    """Profile the block into `path` (nothing when None)."""
    if path is None:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        profile.dump_stats(path)


async def measure(size: int, workdir: Path, profile: Path | None) -> Figures:
    """Set up an entry over `size` configurations and install all of them at once."""
    fake = FakeEsphome(workdir / "esphome")
    names = [fake.add_config(f"device-{number:03d}") for number in range(size)]
    ha_dir = workdir / "ha"
    ha_dir.mkdir()
    ticker = Ticker()
    async with async_test_home_assistant(config_dir=str(ha_dir)) as hass:
        hass.data.pop(loader.DATA_CUSTOM_COMPONENTS)
        entry = MockConfigEntry(
            domain=DOMAIN,
            title="ESPHome Pipeline (scale)",
            data={CONF_CONFIG_DIR: str(fake.config_dir)},
            options={CONF_ESPHOME_COMMAND: fake_command_line()},
        )
        entry.add_to_hass(hass)
        steady_heap()
        ticker.start()
        started = time.perf_counter()
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        setup = time.perf_counter() - started
        setup_lateness = await ticker.stop()
        entities = len(er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id))
        # The same ticker on an idle Home Assistant: what the machine alone costs the loop
        # (other processes on a shared machine delay it too).
        ticker.start()
        await asyncio.sleep(IDLE_SECONDS)
        idle_lateness = await ticker.stop()

        steady_heap()
        makespan, failed, bulk_lateness = await _bulk(hass, names, ticker, profile)
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_stop(force=True)
    return Figures(
        size=size,
        entities=entities,
        setup=setup,
        setup_lateness=setup_lateness,
        idle_lateness=idle_lateness,
        makespan=makespan,
        bulk_lateness=bulk_lateness,
        failed=failed,
    )


async def _bulk(
    hass: HomeAssistant, names: list[str], ticker: Ticker, profile: Path | None
) -> tuple[float, int, Lateness]:
    """Install every configuration with one action; return makespan, failures, lateness."""
    uploads: dict[str, str] = {}
    done: asyncio.Future[None] = hass.loop.create_future()

    # A callback: a plain function listener would run in the executor, a thread hand-off per
    # event (1,000 of them in the step that queues a bulk of 500), which is the listener's
    # cost, not the pipeline's.
    @callback
    def on_job(event: Event[dict[str, Any]]) -> None:
        job = event.data
        if job["job_type"] == "upload" and job["status"] in TERMINAL:
            uploads[job["configuration"]] = job["status"]
            if len(uploads) == len(names) and not done.done():
                done.set_result(None)

    unsubscribe = hass.bus.async_listen(EVENT_JOB, on_job)
    ticker.start()
    with profiled(profile):
        started = time.perf_counter()
        await hass.services.async_call(
            DOMAIN, "install", {"configuration": names}, blocking=True, return_response=True
        )
        async with asyncio.timeout(BULK_GUARD):
            await done
        makespan = time.perf_counter() - started
        await hass.async_block_till_done()
    lateness = await ticker.stop()
    unsubscribe()
    failed = sum(1 for status in uploads.values() if status != "completed")
    return makespan, failed, lateness


def _shown(lateness: Lateness) -> str:
    return f"{lateness.worst:.1f} / {lateness.p99:.1f} ms"


def verdict(passed: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if passed else "FAIL"


def report(results: dict[int, Figures]) -> bool:
    """Print the table and the targets; return True when every measured target passes."""
    print(
        "| configurations | entities | setup | lateness in setup (worst / p99) | "
        "bulk makespan | cost per device | lateness in bulk (worst / p99) | "
        "lateness idle (worst / p99) | failed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for figures in results.values():
        print(
            f"| {figures.size} | {figures.entities} | {figures.setup:.2f} s | "
            f"{_shown(figures.setup_lateness)} | {figures.makespan:.2f} s | "
            f"{figures.cost_per_device * 1000:.1f} ms | {_shown(figures.bulk_lateness)} | "
            f"{_shown(figures.idle_lateness)} | {figures.failed} |"
        )
    all_passed = all(figures.failed == 0 for figures in results.values())
    largest = results[max(results)]
    smallest = results[min(results)]
    worst_ok = largest.bulk_lateness.worst <= WORST_LATENESS_TARGET_MS
    print(
        f"{verdict(worst_ok)}: worst lateness during the bulk at {largest.size}: "
        f"{largest.bulk_lateness.worst:.1f} ms (target <= {WORST_LATENESS_TARGET_MS:.0f} ms)"
    )
    for figures in results.values():
        bulk = figures.bulk_lateness
        pauses = ", ".join(f"{pause:.0f}" for pause in bulk.full_collections) or "none"
        print(
            f"  {figures.size}: full garbage collections during the bulk (ms): {pauses}; "
            f"worst lateness of the other ticks: {bulk.worst_apart_from_gc:.1f} ms; "
            f"apart from waits for a core: {bulk.worst_apart_from_core_waits:.1f} ms worst, "
            f"{bulk.p99_apart_from_core_waits:.1f} ms p99; "
            f"longest loop step apart from collections: {bulk.longest_step_cpu:.1f} ms "
            "of processor time"
        )
        print(
            f"    objects promoted to the old generation: {bulk.promoted} "
            f"({bulk.promoted / figures.size:.0f} per device); longest steps: "
            + "; ".join(f"{spent:.1f} ms {what}" for spent, what in bulk.longest_steps)
        )
    ratio = largest.cost_per_device / smallest.cost_per_device
    ratio_ok = ratio <= COST_RATIO_TARGET
    print(
        f"{verdict(ratio_ok)}: cost per device at {largest.size} / at {smallest.size}: "
        f"{ratio:.2f} (target <= {COST_RATIO_TARGET})"
    )
    setup_ok = largest.setup <= SETUP_TARGET_S
    print(
        f"{verdict(setup_ok)}: setup of {largest.size}: {largest.setup:.2f} s "
        f"(target <= {SETUP_TARGET_S:.0f} s)"
    )
    return all_passed and worst_ok and ratio_ok and setup_ok


async def main(sizes: list[int], profile_size: int | None) -> int:
    """Measure every size in its own Home Assistant and temporary folder."""
    results: dict[int, Figures] = {}
    LoopSteps.install()
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="esphome-pipeline-scale-") as temporary:
            profile = Path(f"scale-{size}.prof") if size == profile_size else None
            results[size] = await measure(size, Path(temporary), profile)
    return 0 if report(results) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--profile", type=int, default=None, metavar="N")
    parser.add_argument("--as-started", action="store_true", help="no collection before periods")
    arguments = parser.parse_args()
    COLLECT_BEFORE_PERIODS = not arguments.as_started
    logging.basicConfig(level=logging.WARNING)
    sys.exit(asyncio.run(main(sorted(arguments.sizes), arguments.profile)))
