"""The routing rule (build_on, qualifying peers, fallback) and the retry book, as pure functions."""

from __future__ import annotations

import asyncio

import pytest

from custom_components.esphome_pipeline.engine.lanes import Outcome
from custom_components.esphome_pipeline.engine.models import (
    Job,
    JobStatus,
    JobType,
    Lane,
    ProcessRecord,
)
from custom_components.esphome_pipeline.engine.peer.executor import RemoteRunResult
from custom_components.esphome_pipeline.engine.peer.retries import RemoteAttempts
from custom_components.esphome_pipeline.engine.routing import (
    MAX_REMOTE_ATTEMPTS,
    BuildOn,
    Routing,
    VersionPolicy,
    slot_may_take,
    version_compatible,
    wait_reason,
)
from custom_components.esphome_pipeline.engine.state import (
    LOCAL_COMPILE_SLOT,
    JobTable,
    Slot,
    next_job,
)
from tests.fakes import FakeEsphome

from .conftest import EngineFactory


def compile_job(name: str = "a.yaml") -> Job:
    return Job(configuration=name, job_type=JobType.COMPILE, lane=Lane.COMPILE)


@pytest.mark.parametrize(
    ("local", "peer", "policy", "expected"),
    [
        ("2026.10.0", "2025.1.0", VersionPolicy.ANY, True),
        ("2026.10.0", None, VersionPolicy.ANY, True),
        ("2026.10.0", "2026.10.4", VersionPolicy.SAME_RELEASE, True),
        ("2026.10.0", "2026.11.0", VersionPolicy.SAME_RELEASE, False),
        ("2026.10.0", "2026.10.0", VersionPolicy.EXACT, True),
        ("2026.10.0", "2026.10.1", VersionPolicy.EXACT, False),
        ("2026.10.0", None, VersionPolicy.SAME_RELEASE, False),
        ("dev", "dev", VersionPolicy.SAME_RELEASE, False),
    ],
)
def test_version_policy(
    local: str, peer: str | None, policy: VersionPolicy, expected: bool
) -> None:
    assert version_compatible(local, peer, policy) is expected


@pytest.mark.parametrize(
    ("build_on", "local", "peer"),
    [
        (BuildOn.LOCAL_AND_PEERS, True, True),
        (BuildOn.PEERS_ONLY, False, True),
        (BuildOn.LOCAL_ONLY, True, False),
    ],
)
def test_build_on_decides_which_slots_take_a_compile(
    build_on: BuildOn, local: bool, peer: bool
) -> None:
    job = compile_job()
    routing = Routing(build_on=build_on, peers=frozenset({"desk"}))
    assert slot_may_take(job, None, routing) is local
    assert slot_may_take(job, "desk", routing) is peer
    # A peer that does not qualify now takes nothing.
    assert slot_may_take(job, "laptop", routing) is False


def test_cleans_never_go_to_peers_and_fallbacks_stay_here() -> None:
    clean = Job(configuration="a.yaml", job_type=JobType.CLEAN, lane=Lane.COMPILE)
    routing = Routing(build_on=BuildOn.PEERS_ONLY)
    assert slot_may_take(clean, None, routing)
    assert not slot_may_take(clean, "desk", routing)
    job = compile_job()
    fallen = Routing(local_only=frozenset({job.job_id}))
    assert slot_may_take(job, None, fallen)
    assert not slot_may_take(job, "desk", fallen)


def test_wait_reason_only_when_nothing_qualifies() -> None:
    job = compile_job()
    assert wait_reason(job, Routing()) is None
    assert wait_reason(job, Routing(build_on=BuildOn.PEERS_ONLY)) is None  # every peer counts
    reason = wait_reason(job, Routing(build_on=BuildOn.PEERS_ONLY, peers=frozenset()))
    assert reason is not None
    assert "build peer" in reason
    assert wait_reason(job, Routing(build_on=BuildOn.PEERS_ONLY, peers=frozenset({"d"}))) is None


def test_next_job_applies_the_routing() -> None:
    job = compile_job()
    table = JobTable([job])
    peers_only = Routing(build_on=BuildOn.PEERS_ONLY, peers=frozenset({"desk"}))
    assert next_job(table, LOCAL_COMPILE_SLOT, 1, peers_only) is None
    assert next_job(table, Slot(Lane.COMPILE, peer="desk"), 1, peers_only) is job
    local_only = Routing(build_on=BuildOn.LOCAL_ONLY)
    assert next_job(table, Slot(Lane.COMPILE, peer="desk"), 1, local_only) is None
    assert next_job(table, LOCAL_COMPILE_SLOT, 1, local_only) is job


class Sink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def output(self, job: Job, line: str, replaces_previous: bool) -> None:
        self.lines.append(line)

    def progress(self, job: Job, value: int) -> None:
        """Progress is not looked at here."""

    def process_started(self, job: Job, record: ProcessRecord) -> None:
        """Processes are not looked at here."""


def failed(kind: str) -> RemoteRunResult:
    return RemoteRunResult(Outcome(status=JobStatus.FAILED, error=f"peer said {kind}"), kind)


def test_a_lost_peer_sends_again_then_falls_back() -> None:
    changes: list[None] = []
    book = RemoteAttempts(on_change=lambda: changes.append(None))
    job, sink = compile_job(), Sink()
    for _ in range(MAX_REMOTE_ATTEMPTS):
        assert book.after("desk", job, failed("peer_lost"), sink).status is JobStatus.QUEUED
        assert job.job_id not in book.local_only
    assert book.lost_peers == {"desk"}
    assert book.after("desk", job, failed("peer_lost"), sink).status is JobStatus.QUEUED
    assert job.job_id in book.local_only
    assert "compiling on this machine instead" in sink.lines[-1]
    assert len(changes) == MAX_REMOTE_ATTEMPTS + 1
    book.forget(set())
    assert not book.local_only


def test_peers_only_fails_where_local_would_have_taken_over() -> None:
    book = RemoteAttempts(build_on=BuildOn.PEERS_ONLY, on_change=lambda: None)
    outcome = book.after("desk", compile_job(), failed("artifacts_unavailable"), Sink())
    assert outcome.status is JobStatus.FAILED
    assert outcome.error == "peer said artifacts_unavailable"


def test_ends_that_are_the_jobs_own_pass_through() -> None:
    book = RemoteAttempts(on_change=lambda: None)
    for kind in ("failed", "bundle_failed"):
        assert book.after("desk", compile_job(), failed(kind), Sink()).status is JobStatus.FAILED
    done = RemoteRunResult(Outcome(status=JobStatus.COMPLETED), "completed")
    assert book.after("desk", compile_job(), done, Sink()).status is JobStatus.COMPLETED


async def test_the_engine_notes_the_wait_once_and_releases_the_job(
    make_engine: EngineFactory, fake: FakeEsphome
) -> None:
    """A compile nothing qualifies for waits with the reason once; a new routing frees it."""
    engine = await make_engine()
    nobody = Routing(build_on=BuildOn.PEERS_ONLY, peers=frozenset())
    engine.set_routing(nobody)
    engine.set_routing(Routing(build_on=BuildOn.PEERS_ONLY, peers=frozenset()))
    assert engine.routing == nobody
    fake.add_config("a")
    (job,) = await engine.compile(["a.yaml"])
    # Another routing with the same reason does not repeat the line.
    engine.set_routing(
        Routing(build_on=BuildOn.PEERS_ONLY, peers=frozenset(), local_only=frozenset({"x"}))
    )
    waiting = [line for line in job.output.lines if "Waiting for a build peer" in line]
    assert waiting == [wait_reason(job, nobody)]
    assert job.status is JobStatus.QUEUED
    done = asyncio.get_running_loop().create_future()
    engine.subscribe(
        lambda event: done.set_result(None)
        if event.job is job and event.job.is_terminal and not done.done()
        else None
    )
    engine.set_routing(Routing())
    await done
    assert job.status is JobStatus.COMPLETED
    assert job.source == "local"
