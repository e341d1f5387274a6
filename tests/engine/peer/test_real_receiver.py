"""Against the real ESPHome Device Builder 1.26.0 receiver (`.venv-peer`, from script/setup).

Preview shows the pin and fingerprint the receiver printed, a wrong key is refused, the right
key is approved, and the link then reports the receiver's compile lane and ESPHome version. A
remote compile of a `host:` configuration compiles there and then meets the known limit of
1.26.0 (it cannot pack artifacts for `host:`): the job ends with that as a clear error.
It answers our heartbeat; the link comes back after the receiver restarts; a cancel reaches
it and its compile process ends; a receiver killed mid-build is a clear, retryable error. Our
own test receiver, running the real ESPHome CLI, proves the rest of the chain: the host build
comes back in Device Builder's layout and lands in the local build folder.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from custom_components.esphome_pipeline.engine.esphome_cli import EsphomeCli
from custom_components.esphome_pipeline.engine.lanes import RunningJob, StopReason
from custom_components.esphome_pipeline.engine.models import Job, JobStatus, JobType, Lane
from custom_components.esphome_pipeline.engine.peer.client import (
    PairingError,
    PeerLink,
    dashboard_id_for,
    pair,
    preview,
)
from custom_components.esphome_pipeline.engine.peer.executor import RemoteExecutor
from custom_components.esphome_pipeline.engine.peer.identity import PeerIdentity
from script.devkit import ESPHOME_CLI
from tests.fakes.peer_pairing import paired_link
from tests.fakes.real_receiver import RealReceiver
from tests.fakes.test_receiver import PeerReceiver

from .test_remote_compile import RecordingSink

pytestmark = pytest.mark.e2e

HOST_CONFIG = """\
esphome:
  name: remote-host
host:
logger:
"""


@pytest.fixture
async def receiver(tmp_path: Path, socket_enabled: None) -> AsyncIterator[RealReceiver]:
    started = await RealReceiver.start(tmp_path / "receiver")
    try:
        yield started
    finally:
        await started.stop()


async def test_pairing_and_link_with_the_real_receiver(
    receiver: RealReceiver, tmp_path: Path
) -> None:
    identity = PeerIdentity.generate()
    seen = await preview("127.0.0.1", receiver.port, identity)
    assert seen.pin == receiver.pin
    assert seen.emoji == receiver.emoji
    assert seen.emoji_names == receiver.emoji_names
    assert seen.requires_pairing_key
    assert seen.esphome_version == "2026.10.0"

    with pytest.raises(PairingError) as wrong:
        await pair(
            "127.0.0.1",
            receiver.port,
            identity,
            pairing_key="AAAA-BBBB-CCCC-DDDD",
            expected_pin=seen.pin,
            label="ESPHome Pipeline test",
        )
    assert wrong.value.kind == "no_pairing_window"

    result = await pair(
        "127.0.0.1",
        receiver.port,
        identity,
        pairing_key=receiver.pairing_key,
        expected_pin=seen.pin,
        label="ESPHome Pipeline test",
    )
    assert result.approved

    link = PeerLink(
        host="127.0.0.1",
        port=receiver.port,
        identity=identity,
        pin=seen.pin,
        dashboard_id=dashboard_id_for(identity),
        label="ESPHome Pipeline test",
    )
    link.start()
    try:
        status = await link.wait_for(lambda s: s.connected and s.idle, 60)
        assert status.esphome_version == "2026.10.0"
        assert status.queue_depth == 0
        assert not status.running

        config_dir = tmp_path / "config"
        config_dir.mkdir()
        (config_dir / "remote-host.yaml").write_text(HOST_CONFIG)
        executor = RemoteExecutor(link, EsphomeCli((str(ESPHOME_CLI),)), config_dir)
        sink = RecordingSink()
        job = Job(configuration="remote-host.yaml", job_type=JobType.COMPILE, lane=Lane.REMOTE)
        outcome = await executor.run_remote(RunningJob(job), sink)
    finally:
        await link.close()
    assert outcome.outcome.status is JobStatus.FAILED, sink.text
    assert outcome.kind == "artifacts_unavailable", outcome.outcome.error
    assert "no artifact_platforms module" in (outcome.outcome.error or "")
    assert outcome.local_fallback
    assert "Building on peer ESPHome Pipeline test" in sink.text
    assert "ESPHome 2026.10.0" in sink.text


async def test_test_receiver_with_the_real_cli_hands_back_a_host_build(
    tmp_path: Path, socket_enabled: None
) -> None:
    """Our own receiver runs the real ESPHome CLI and packs the host build tree; it lands here."""
    receiver = PeerReceiver(tmp_path / "receiver", cli=(str(ESPHOME_CLI),))
    await receiver.start()
    try:
        link = await paired_link(receiver, "Test receiver")
    except BaseException:
        await receiver.stop()
        raise
    try:
        config_dir = tmp_path / "config"
        config_dir.mkdir()
        (config_dir / "remote-host.yaml").write_text(HOST_CONFIG)
        executor = RemoteExecutor(link, EsphomeCli((str(ESPHOME_CLI),)), config_dir)
        sink = RecordingSink()
        job = Job(configuration="remote-host.yaml", job_type=JobType.COMPILE, lane=Lane.REMOTE)
        result = await executor.run_remote(RunningJob(job), sink)
    finally:
        await link.close()
        await receiver.stop()
    assert result.kind == "completed", f"{result.outcome.error}\n{sink.text}"
    assert sink.progress_values
    storage = (config_dir / ".esphome" / "storage" / "remote-host.yaml.json").read_text()
    assert str(config_dir / ".esphome" / "build" / "remote-host") in storage


async def _link(receiver: RealReceiver, heartbeat_interval: float = 30.0) -> PeerLink:
    """A link that reconnects quickly (the tests restart and kill receivers)."""
    return await paired_link(
        receiver,
        "ESPHome Pipeline test",
        wait=False,
        reconnect_initial=0.2,
        reconnect_max=1.0,
        heartbeat_interval=heartbeat_interval,
    )


async def test_heartbeat_and_reconnect_with_the_real_receiver(
    receiver: RealReceiver,
) -> None:
    """Our pings (every 0.2 s here) are answered and keep one session; after a restart of the
    receiver (same folder, same identity) the link comes back by itself."""
    link = await _link(receiver, heartbeat_interval=0.2)
    try:
        await link.wait_for(lambda s: s.connected and s.idle, 60)
        answered = await link.wait_for(lambda s: s.heartbeats >= 3, 60)
        assert answered.sessions == 1
        await receiver.stop()
        await link.wait_for(lambda s: not s.connected, 60)
        again = await RealReceiver.start(receiver.folder, port=receiver.port)
        try:
            assert again.pin == receiver.pin
            status = await link.wait_for(lambda s: s.connected and s.idle, 60)
            assert status.sessions == 2
        finally:
            await again.stop()
    finally:
        await link.close()


async def test_cancel_and_kill_mid_build_on_the_real_receiver(
    receiver: RealReceiver, tmp_path: Path
) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "remote-host.yaml").write_text(HOST_CONFIG)
    link = await _link(receiver)
    try:
        await link.wait_for(lambda s: s.available, 60)
        executor = RemoteExecutor(link, EsphomeCli((str(ESPHOME_CLI),)), config_dir, stop_poll=0.05)

        job = Job(configuration="remote-host.yaml", job_type=JobType.COMPILE, lane=Lane.REMOTE)
        running = RunningJob(job)
        run = asyncio.ensure_future(executor.run_remote(running, RecordingSink()))
        await link.wait_for(lambda s: s.running, 120)
        running.request_stop(StopReason.CANCEL, "Cancelled by the test")
        cancelled = await asyncio.wait_for(run, 120)
        assert cancelled.outcome.status is JobStatus.CANCELLED
        async with asyncio.timeout(60):
            while receiver.compile_processes():
                await asyncio.sleep(0.1)
        await link.wait_for(lambda s: s.available, 60)

        second = RunningJob(
            Job(configuration="remote-host.yaml", job_type=JobType.COMPILE, lane=Lane.REMOTE)
        )
        run = asyncio.ensure_future(executor.run_remote(second, RecordingSink()))
        await link.wait_for(lambda s: s.running, 120)
        await receiver.kill()
        lost = await asyncio.wait_for(run, 120)
        assert lost.kind == "peer_lost", lost.outcome.error
        assert lost.retryable
    finally:
        await link.close()
