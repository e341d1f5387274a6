"""Against the real ESPHome Device Builder 1.26.0 receiver (`.venv-peer`, from script/setup).

Preview shows the pin and fingerprint the receiver printed, a wrong key is refused, the right
key is approved, and the link then reports the receiver's compile lane and ESPHome version. A
remote compile of a `host:` configuration compiles there and then meets the known limit of
1.26.0 (it cannot pack artifacts for `host:`): the job ends with that as a clear error.
Our own test receiver, running the real ESPHome CLI, proves the rest of the chain: the host
build comes back in Device Builder's layout and lands in the local build folder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from custom_components.esphome_pipeline.engine.esphome_cli import EsphomeCli
from custom_components.esphome_pipeline.engine.lanes import RunningJob
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
from tests.fakes.test_receiver import PeerReceiver

from .real_receiver import RealReceiver
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
    identity = PeerIdentity.generate()
    link = PeerLink(
        host="127.0.0.1",
        port=receiver.port,
        identity=identity,
        pin=receiver.pin,
        dashboard_id=dashboard_id_for(identity),
        label="Test receiver",
    )
    try:
        await pair(
            "127.0.0.1",
            receiver.port,
            identity,
            pairing_key=receiver.pairing_key,
            expected_pin=receiver.pin,
            label="Test receiver",
        )
        link.start()
        await link.wait_for(lambda s: s.available, 60)
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
