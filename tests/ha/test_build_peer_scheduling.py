"""Where compiles run with a paired build peer: `build_on`, the version policy, retries, fallback.

A test receiver (real Noise link, fake ESPHome CLI behind it) is paired with the entry's own
identity before setup; the entry then carries it as a `build_peer` subentry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigSubentry, ConfigSubentryData
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.esphome_pipeline.const import DOMAIN
from custom_components.esphome_pipeline.engine.events import EventKind, JobEvent
from custom_components.esphome_pipeline.engine.peer.client import pair
from custom_components.esphome_pipeline.engine.routing import MAX_REMOTE_ATTEMPTS
from custom_components.esphome_pipeline.peers import SUBENTRY_BUILD_PEER, async_entry_identity
from tests.fakes import FAKE_COMMAND, FakeEsphome
from tests.fakes.test_receiver import PeerReceiver

from .conftest import coordinator_of, engine_of, setup_entry, wait_for_status

WAIT = 30.0
ENTRY_ID = "01TESTENTRY"
type Setup = Callable[..., Awaitable[tuple[MockConfigEntry, PeerReceiver]]]


@pytest.fixture
async def with_peer(
    hass: HomeAssistant,
    tmp_path: Path,
    config_dir: Path,
    esphome_command: str,
    fake: FakeEsphome,
    socket_enabled: None,
) -> AsyncIterator[Setup]:
    """Start a receiver, pair it with the entry's identity, set the entry up with it."""
    receivers: list[PeerReceiver] = []
    entries: list[MockConfigEntry] = []
    fake.add_config("dev1")

    async def setup(
        *,
        wait_connected: bool = True,
        receiver_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> tuple[MockConfigEntry, PeerReceiver]:
        receiver = PeerReceiver(tmp_path / "receiver", cli=FAKE_COMMAND, **(receiver_options or {}))
        await receiver.start()
        receivers.append(receiver)
        identity = await async_entry_identity(hass, ENTRY_ID)
        await pair(
            "127.0.0.1",
            receiver.port,
            identity,
            pairing_key=receiver.pairing_key,
            expected_pin=receiver.pin,
            label="Test HA",
        )
        entry = MockConfigEntry(
            domain=DOMAIN,
            title="ESPHome Pipeline (esphome)",
            unique_id=str(config_dir),
            data={"config_dir": str(config_dir)},
            options={"esphome_command": esphome_command, **options},
            entry_id=ENTRY_ID,
            subentries_data=[
                ConfigSubentryData(
                    data={"host": "127.0.0.1", "port": receiver.port, "pin": receiver.pin},
                    subentry_type=SUBENTRY_BUILD_PEER,
                    title="Desk PC",
                    unique_id=receiver.pin,
                )
            ],
        )
        await setup_entry(hass, entry)
        entries.append(entry)
        if wait_connected:
            (peer,) = entry.runtime_data.peers.peers.values()
            await peer.link.wait_for(lambda status: status.available, WAIT)
            await hass.async_block_till_done()
        return entry, receiver

    yield setup
    for entry in entries:
        await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
    for receiver in receivers:
        await receiver.stop()


async def compile_dev1(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    """Queue a compile of dev1 and return its job id."""
    (job,) = await coordinator_of(entry).async_compile(["dev1.yaml"], force=True)
    return job.job_id


async def test_a_compile_runs_on_the_idle_peer(hass: HomeAssistant, with_peer: Setup) -> None:
    """Local and peers (default): an idle peer takes the compile; the log names its ESPHome."""
    entry, receiver = await with_peer()
    job_id = await compile_dev1(hass, entry)
    job = await wait_for_status(hass, entry, job_id, "completed", "failed")
    assert job["status"] == "completed", engine_of(entry).get(job_id).output.lines  # type: ignore[union-attr]
    assert job["lane"] == "remote"
    assert job["source"] == "remote"
    assert job["peer"] == "Desk PC"
    lines = engine_of(entry).get(job_id).output.lines  # type: ignore[union-attr]
    assert any("ESPHome 2026.10.0" in line and "Desk PC" in line for line in lines)
    assert receiver.jobs


async def test_local_only_never_uses_the_peer(hass: HomeAssistant, with_peer: Setup) -> None:
    """build_on local only: the connected peer gets nothing."""
    entry, receiver = await with_peer(build_on="local_only")
    job = await wait_for_status(hass, entry, await compile_dev1(hass, entry), "completed")
    assert job["source"] == "local"
    assert not receiver.jobs


async def test_peers_only_without_a_compatible_peer_waits_with_the_reason(
    hass: HomeAssistant, with_peer: Setup
) -> None:
    """An incompatible peer does not qualify, and this machine may not build: the job waits."""
    entry, receiver = await with_peer(
        build_on="peers_only",
        esphome_version_policy="same_release",
        receiver_options={"esphome_version": "2025.2.1"},
    )
    job_id = await compile_dev1(hass, entry)
    await hass.async_block_till_done()
    job = engine_of(entry).get(job_id)
    assert job is not None
    assert str(job.status) == "queued"
    assert any("Waiting for a build peer" in line for line in job.output.lines)
    assert not receiver.jobs
    await coordinator_of(entry).async_cancel(job_id)


async def test_same_release_accepts_another_patch(hass: HomeAssistant, with_peer: Setup) -> None:
    """2026.10.3 is the same release as our 2026.10.0."""
    entry, _ = await with_peer(
        build_on="peers_only",
        esphome_version_policy="same_release",
        receiver_options={"esphome_version": "2026.10.3"},
    )
    job = await wait_for_status(hass, entry, await compile_dev1(hass, entry), "completed")
    assert job["source"] == "remote"


async def test_missing_artifacts_fall_back_to_a_local_compile(
    hass: HomeAssistant, with_peer: Setup
) -> None:
    """The peer cannot pack artifacts (Device Builder and `host:`): local and peers builds here."""
    entry, _ = await with_peer(receiver_options={"hostile": "pack_failed"})
    job_id = await compile_dev1(hass, entry)
    job = await wait_for_status(hass, entry, job_id, "completed", "failed")
    assert job["status"] == "completed"
    assert job["source"] == "local"
    lines = engine_of(entry).get(job_id).output.lines  # type: ignore[union-attr]
    assert any("compiling on this machine instead" in line for line in lines)


async def test_missing_artifacts_under_peers_only_fail_the_job(
    hass: HomeAssistant, with_peer: Setup
) -> None:
    """Peers only: no fallback, a clear job error."""
    entry, _ = await with_peer(build_on="peers_only", receiver_options={"hostile": "pack_failed"})
    job = await wait_for_status(hass, entry, await compile_dev1(hass, entry), "completed", "failed")
    assert job["status"] == "failed"
    assert "Desk PC" in str(job["error"])


async def test_a_peer_lost_mid_build_goes_back_to_the_queue(
    hass: HomeAssistant, with_peer: Setup
) -> None:
    """Local and peers: the lost compile is queued again; this machine takes it meanwhile."""
    entry, _ = await with_peer(receiver_options={"hostile": "terminate_mid_build"})
    job_id = await compile_dev1(hass, entry)
    job = await wait_for_status(hass, entry, job_id, "completed", "failed")
    assert job["status"] == "completed"
    lines = engine_of(entry).get(job_id).output.lines  # type: ignore[union-attr]
    assert any(f"sending the compile again (1 of {MAX_REMOTE_ATTEMPTS})" in line for line in lines)


async def test_a_new_peer_with_a_removed_peers_name_does_not_inherit_its_loss(
    hass: HomeAssistant, with_peer: Setup, tmp_path: Path
) -> None:
    """A peer that lost a compile and was removed leaves nothing behind: a peer paired later
    under the same name (receivers often share a host name) takes compiles at once."""
    entry, receiver = await with_peer(receiver_options={"hostile": "terminate_mid_build"})
    lost = asyncio.Event()

    def listener(event: JobEvent) -> None:
        if event.kind is EventKind.OUTPUT and "sending the compile again" in (event.line or ""):
            lost.set()

    unsubscribe = engine_of(entry).subscribe(listener)
    try:
        job_id = await compile_dev1(hass, entry)
        await asyncio.wait_for(lost.wait(), WAIT)
    finally:
        unsubscribe()
    # Gone for good before its link could come back (the first retry waits 1 s).
    await receiver.kill()
    await wait_for_status(hass, entry, job_id, "completed", "failed")
    (old,) = entry.subentries
    hass.config_entries.async_remove_subentry(entry, old)
    await hass.async_block_till_done()

    second = PeerReceiver(tmp_path / "second-receiver", cli=FAKE_COMMAND)
    await second.start()
    try:
        await pair(
            "127.0.0.1",
            second.port,
            await async_entry_identity(hass, ENTRY_ID),
            pairing_key=second.pairing_key,
            expected_pin=second.pin,
            label="Test HA",
        )
        hass.config_entries.async_add_subentry(
            entry,
            ConfigSubentry(
                data={"host": "127.0.0.1", "port": second.port, "pin": second.pin},
                subentry_type=SUBENTRY_BUILD_PEER,
                title="Desk PC",
                unique_id=second.pin,
            ),
        )
        await hass.async_block_till_done()
        (peer,) = entry.runtime_data.peers.peers.values()
        assert peer.label == "Desk PC"
        await peer.link.wait_for(lambda status: status.available, WAIT)
        await hass.async_block_till_done()
        job_id = await compile_dev1(hass, entry)
        job = await wait_for_status(hass, entry, job_id, "completed", "failed")
        assert job["status"] == "completed"
        assert job["source"] == "remote"
        assert job["peer"] == "Desk PC"
        assert list(second.jobs) == [job_id]
    finally:
        await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        await second.stop()


async def test_peers_only_sends_a_lost_compile_again_three_times_then_fails(
    hass: HomeAssistant, with_peer: Setup
) -> None:
    """Peers only: lost on every attempt, sent again three times, then a clear job error."""
    entry, receiver = await with_peer(
        build_on="peers_only", receiver_options={"hostile": "terminate_mid_build"}
    )
    requeued: list[str] = []

    def listener(event: JobEvent) -> None:
        if event.kind is EventKind.OUTPUT and "sending the compile again" in (event.line or ""):
            requeued.append(event.line or "")

    unsubscribe = engine_of(entry).subscribe(listener)
    try:
        job_id = await compile_dev1(hass, entry)
        job = await wait_for_status(hass, entry, job_id, "completed", "failed")
    finally:
        unsubscribe()
    assert job["status"] == "failed"
    assert f"sent again {MAX_REMOTE_ATTEMPTS} times" in str(job["error"])
    assert len(requeued) == MAX_REMOTE_ATTEMPTS


async def test_the_card_sees_each_build_peer(
    hass: HomeAssistant, with_peer: Setup, hass_ws_client: Any
) -> None:
    """The card's snapshot names every paired peer with its state and ESPHome version."""
    entry, _receiver = await with_peer()
    client = await hass_ws_client(hass)
    await client.send_json({"id": 1, "type": f"{DOMAIN}/subscribe_jobs"})
    assert (await client.receive_json())["success"]
    snapshot = (await client.receive_json())["event"]
    assert snapshot["peers"] == [
        {"label": "Desk PC", "state": "idle", "esphome_version": "2026.10.0"}
    ]
    assert entry.entry_id == snapshot["entry_id"]
