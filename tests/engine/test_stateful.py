"""Random sequences of requests, failures and restarts against a real engine and real processes.

A Hypothesis state machine drives one engine (and its successors after restarts) on one fake
ESPHome folder and one store file. After every step it checks, from the engine's state, its
events and the fake CLI's call log (real processes):

- no lane runs more than its capacity;
- an upload never starts unless its compile completed;
- no upload runs while a reset, or a clean of its configuration, is active;
- two processes never work on one configuration, or flash one device port, at once;
- the persisted state equals the state in memory.

At the end the queue drains: every job ends terminal, and no process is left behind.
Each example runs its own event loop, closed in teardown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
import json
from pathlib import Path
import shutil
import tempfile
from typing import Any

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from custom_components.esphome_pipeline.engine.device.build_records import (
    ApiEndpoint,
    BuildIdentity,
)
from custom_components.esphome_pipeline.engine.device.native_api import DeviceTruth, Verdict
from custom_components.esphome_pipeline.engine.errors import UnknownJobError
from custom_components.esphome_pipeline.engine.events import EventKind, JobEvent
from custom_components.esphome_pipeline.engine.firmware import FirmwareEngine
from custom_components.esphome_pipeline.engine.models import JobStatus, JobType, Lane
from custom_components.esphome_pipeline.engine.persistence import (
    FileJobStore,
    split_stored,
    stored_form,
)
from custom_components.esphome_pipeline.engine.state import HELD_DEVICE_OFFLINE
from custom_components.esphome_pipeline.engine.upload_proof import NetworkUploads
from tests.fakes import FakeEsphome, fake_cli

from .conftest import (
    COMPILE_LANE_SUBCOMMANDS,
    Span,
    max_concurrency,
    process_gone,
    spans,
    wait_until_idle,
)

CONFIGURATIONS = ("a.yaml", "b.yaml", "c.yaml")
API_PORT = 16050
"""The first device's native API port (never connected to: presence is simulated here)."""
PORTS = ("OTA", "10.0.0.9")
COMPILE_WORKERS = 1
UPLOAD_SLOTS = 2
STEP_TIMEOUT = 60.0

configurations = st.sampled_from(CONFIGURATIONS)
configuration_lists = st.lists(configurations, min_size=1, max_size=3, unique=True)
waits = st.integers(min_value=0, max_value=3)
"""How many status changes a step waits for after its request (0: none)."""


class EngineMachine(RuleBasedStateMachine):
    """One fake folder, one store, a running engine, and the history of what happened."""

    def __init__(self) -> None:
        """Create the folder, the loop and the first engine."""
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="engine-machine-"))
        self.fake = FakeEsphome(self.directory / "config")
        storage = self.fake.config_dir / ".esphome" / "storage"
        storage.mkdir(parents=True)
        for port, name in enumerate(CONFIGURATIONS, start=API_PORT):
            self.fake.add_config(name)
            # Each device has a native API (its port tells the devices apart).
            validated = {"config": {"api": {"port": port}}}
            (storage / f"{name}.validated.json").write_text(json.dumps(validated))
        self.offline: set[int] = set()
        """The API ports of the devices that do not answer now."""
        for subcommand in ("compile", "upload", "clean", "clean-all"):
            self.fake.behave("default", subcommand, duration=0.05)
        self.store_path = self.directory / "jobs.json"
        self.loop = asyncio.new_event_loop()
        self.engine: FirmwareEngine | None = None
        self.task: asyncio.Task[None] | None = None
        self.status_events: list[tuple[str, JobStatus]] = []
        self.known_ids: list[str] = []

    # ------------------------------------------------------------------ plumbing

    def run[T](self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, STEP_TIMEOUT))

    def _record(self, event: JobEvent) -> None:
        if event.kind is EventKind.STATUS:
            self.status_events.append((event.job.job_id, event.job.status))

    async def _start(self) -> None:
        engine = FirmwareEngine(
            config_dir=self.fake.config_dir,
            cli=fake_cli(),
            store=FileJobStore(self.store_path),
            compile_workers=COMPILE_WORKERS,
            upload_slots=UPLOAD_SLOTS,
            history_limit=20,
            network_uploads=NetworkUploads(
                poll_interval=0.05, presence=self._answers, ask=self._runs_build
            ),
        )
        engine.subscribe(self._record)
        await engine.load()
        self.engine = engine
        self.task = asyncio.get_running_loop().create_task(engine.run())

    async def _stop(self) -> None:
        assert self.engine is not None
        assert self.task is not None
        await self.engine.stop()
        await self.task

    @property
    def live(self) -> FirmwareEngine:
        assert self.engine is not None
        return self.engine

    async def _answers(self, endpoint: ApiEndpoint) -> bool:
        return endpoint.port not in self.offline

    async def _runs_build(
        self, endpoint: ApiEndpoint, build: BuildIdentity, _within: float
    ) -> DeviceTruth:
        # A device that answers took the build (the proof itself has its own tests).
        if endpoint.port in self.offline:
            return DeviceTruth(verdict=Verdict.UNREACHABLE, summary="offline")
        return DeviceTruth(verdict=Verdict.RUNS_THIS_BUILD, summary="runs it")

    def _nothing_moves(self) -> bool:
        """Idle, or every active job is an upload waiting for an offline device."""
        return all(
            job.status is JobStatus.QUEUED
            and job.waiting_for_device
            and API_PORT + CONFIGURATIONS.index(job.configuration) in self.offline
            for job in self.live.jobs(statuses=[JobStatus.QUEUED, JobStatus.RUNNING])
        )

    def _remember(self, job_ids: list[str]) -> None:
        self.known_ids += job_ids

    # --------------------------------------------------------------------- rules

    @initialize()
    def start(self) -> None:
        self.run(self._start())

    @rule(names=configuration_lists, port=st.sampled_from(PORTS), then=waits)
    def install(self, names: list[str], port: str, then: int) -> None:
        chains = self.run(self.live.install(names, port=port))
        self._remember([job.job_id for chain in chains for job in (chain.compile, chain.upload)])
        for chain in chains:
            assert chain.upload.depends_on == chain.compile.job_id
        self._wait_for_changes(then)

    @rule(names=configuration_lists, then=waits)
    def compile(self, names: list[str], then: int) -> None:
        self._remember([job.job_id for job in self.run(self.live.compile(names))])
        self._wait_for_changes(then)

    @rule(name=configurations, port=st.sampled_from(PORTS), then=waits)
    def upload(self, name: str, port: str, then: int) -> None:
        self._remember([job.job_id for job in self.run(self.live.upload([name], port=port))])
        self._wait_for_changes(then)

    @rule(name=configurations)
    def clean(self, name: str) -> None:
        self._remember([job.job_id for job in self.run(self.live.clean([name]))])
        # Its configuration's earlier jobs are all finished now.
        for job in self.live.jobs(configurations=[name]):
            assert job.job_type is JobType.CLEAN or job.is_terminal

    @rule()
    def reset(self) -> None:
        job = self.run(self.live.reset_build_env())
        self._remember([job.job_id])
        assert all(
            other.job_id == job.job_id or other.is_terminal
            for other in self.live.jobs()
            if other.created_at <= job.created_at
        )

    @rule(pick=st.integers(min_value=0, max_value=1000), active_only=st.booleans())
    def cancel(self, pick: int, active_only: bool) -> None:
        candidates = (
            [job.job_id for job in self.live.jobs(statuses=[JobStatus.QUEUED, JobStatus.RUNNING])]
            if active_only
            else self.known_ids
        )
        if not candidates:
            return
        job_id = candidates[pick % len(candidates)]
        job = self.live.get(job_id)
        try:
            cancelled = self.run(self.live.cancel(job_id))
        except UnknownJobError:
            assert job is None  # pruned from history
            return
        assert job is not None
        if cancelled:
            assert job_id in cancelled
            assert job.status is JobStatus.CANCELLED
        else:
            assert job.is_terminal

    @rule(
        name=configurations, subcommand=st.sampled_from(["compile", "upload"]), fail=st.booleans()
    )
    def process_failure(self, name: str, subcommand: str, fail: bool) -> None:
        self.fake.behave(name, subcommand, exit_code=1 if fail else 0)

    @rule(changes=st.integers(min_value=1, max_value=6))
    def let_time_pass(self, changes: int) -> None:
        """Wait for a few status changes (or for the queue to be idle)."""
        self._wait_for_changes(changes)

    def _wait_for_changes(self, changes: int) -> None:
        if not changes:
            return
        engine = self.live

        async def next_changes() -> None:
            changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            seen = 0

            def on_event(event: JobEvent) -> None:
                nonlocal seen
                if event.kind is EventKind.STATUS:
                    seen += 1
                    if (seen >= changes or self._nothing_moves()) and not changed.done():
                        changed.set_result(None)

            unsubscribe = engine.subscribe(on_event)
            try:
                if not self._nothing_moves():
                    await changed
            finally:
                unsubscribe()

        self.run(next_changes())

    @rule()
    def restart(self) -> None:
        before = {job.job_id: job.status for job in self.live.jobs()}
        self.run(self._stop())
        after_stop = {job.job_id: job.status for job in self.live.jobs()}
        assert JobStatus.RUNNING not in after_stop.values()
        # Stopping left no process behind: every one wrote its end record.
        assert all(span.end != float("inf") for span in spans(self.fake))
        self.run(self._start())
        for job in self.live.jobs():
            assert job.job_id in before
            if before[job.job_id].is_terminal:
                assert job.status is before[job.job_id]

    @rule()
    def crash(self) -> None:
        """Home Assistant dies: the store keeps what it held at that moment, running jobs too.

        The processes are stopped here (a real crash leaves them to the next start's reaping,
        which test_restart covers); the store is then put back as the crash left it.
        """
        self.run(self.live.flush())
        at_crash = self.store_path.read_bytes() if self.store_path.exists() else None
        running = {job.job_id for job in self.live.jobs(statuses=[JobStatus.RUNNING])}
        self.run(self._stop())
        if at_crash is not None:
            self.store_path.write_bytes(at_crash)
        self.run(self._start())
        for job_id in running:
            job = self.live.get(job_id)
            assert job is not None
            assert job.status is JobStatus.QUEUED
            assert job.process is None

    @rule(name=configurations)
    def device_goes_offline(self, name: str) -> None:
        self.offline.add(API_PORT + CONFIGURATIONS.index(name))

    @rule(name=configurations, announced=st.booleans())
    def device_comes_back(self, name: str, announced: bool) -> None:
        self.offline.discard(API_PORT + CONFIGURATIONS.index(name))
        if announced and self.engine is not None:
            self.live.device_seen(name)

    @rule()
    def drain(self) -> None:
        self.offline.clear()  # held uploads wait for their devices: bring them all back
        self.run(wait_until_idle(self.live))
        assert all(job.is_terminal for job in self.live.jobs())

    # ---------------------------------------------------------------- invariants

    @invariant()
    def lanes_within_capacity(self) -> None:
        if self.engine is None:
            return
        status = self.live.queue_status()
        assert len(status.compile_running) <= COMPILE_WORKERS
        assert len(status.upload_running) <= UPLOAD_SLOTS
        found = spans(self.fake)
        compile_lane = [span for span in found if span.subcommand in COMPILE_LANE_SUBCOMMANDS]
        uploads = [span for span in found if span.subcommand == "upload"]
        assert max_concurrency(compile_lane) <= COMPILE_WORKERS
        assert max_concurrency(uploads) <= UPLOAD_SLOTS

    @invariant()
    def processes_never_collide(self) -> None:
        found = spans(self.fake)
        for index, first in enumerate(found):
            for second in found[index + 1 :]:
                if not first.overlaps(second):
                    continue
                assert first.configuration != second.configuration or not first.configuration
                assert not _same_device(first, second)
                assert "clean-all" not in (first.subcommand, second.subcommand)

    @invariant()
    def uploads_follow_completed_compiles(self) -> None:
        if self.engine is None:
            return
        completed_at: dict[str, int] = {}
        for position, (job_id, status) in enumerate(self.status_events):
            if status is JobStatus.COMPLETED:
                completed_at.setdefault(job_id, position)
        for job in self.live.jobs(statuses=[JobStatus.RUNNING]):
            if job.job_type is JobType.UPLOAD and job.depends_on is not None:
                prerequisite = self.live.get(job.depends_on)
                assert prerequisite is not None
                assert prerequisite.status is JobStatus.COMPLETED
        for position, (job_id, status) in enumerate(self.status_events):
            if status is not JobStatus.RUNNING:
                continue
            upload = self.live.get(job_id)
            if upload is None or upload.job_type is not JobType.UPLOAD or not upload.depends_on:
                continue
            assert completed_at.get(upload.depends_on, position) < position

    @invariant()
    def gate_keeps_uploads_out(self) -> None:
        if self.engine is None:
            return
        active = self.live.jobs(statuses=[JobStatus.QUEUED, JobStatus.RUNNING])
        for upload in self.live.jobs(statuses=[JobStatus.RUNNING]):
            if upload.lane is not Lane.UPLOAD:
                continue
            for other in active:
                assert other.job_type is not JobType.RESET_BUILD_ENV
                assert not (
                    other.job_type is JobType.CLEAN and other.configuration == upload.configuration
                )

    @invariant()
    def offline_uploads_are_held_with_the_reason(self) -> None:
        if self.engine is None:
            return
        for job in self.live.jobs(statuses=[JobStatus.QUEUED]):
            if job.waiting_for_device:
                assert job.held
                assert job.held_reason in (HELD_DEVICE_OFFLINE, "build environment busy")
            assert job.held is (job.held_reason is not None) or job.job_type is not JobType.UPLOAD

    @invariant()
    def store_matches_memory(self) -> None:
        if self.engine is None:
            return
        store = FileJobStore(self.store_path)
        for _ in range(20):
            self.run(self.live.flush())
            stored, _ = split_stored(self.run(store.load()))
            memory = [stored_form(job) for job in self.live.jobs()]
            if _comparable(stored, memory) == _comparable(memory, memory):
                return
        assert _comparable(stored, memory) == _comparable(memory, memory)

    # ------------------------------------------------------------------ teardown

    def teardown(self) -> None:
        try:
            self.offline.clear()
            if self.engine is not None:
                self.run(wait_until_idle(self.live))
                assert all(job.is_terminal for job in self.live.jobs())
                self.run(self._stop())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
        try:
            found = spans(self.fake)
            # Every process wrote its end record, and none of them is still alive.
            assert all(span.end != float("inf") for span in found)
            assert all(process_gone(span.pid) for span in found)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _same_device(first: Span, second: Span) -> bool:
    return (
        first.subcommand == second.subcommand == "upload"
        and first.port == second.port
        and first.port not in (None, "OTA")
    )


def _comparable(stored: list[dict[str, Any]], memory: list[dict[str, Any]]) -> list[Any]:
    """Drop what legitimately changes between saves: a running job's output and progress."""
    running = {entry["job_id"] for entry in memory if entry["status"] == "running"}
    return [
        {key: value for key, value in entry.items() if key not in ("output", "progress")}
        if entry["job_id"] in running
        else entry
        for entry in stored
    ]


def test_engine_state_machine() -> None:
    """Random request sequences keep every invariant (with real processes)."""
    run_state_machine_as_test(  # type: ignore[no-untyped-call]
        EngineMachine,
        settings=settings(
            max_examples=12,
            stateful_step_count=20,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
