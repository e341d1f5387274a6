"""Edges of requests on a link: bad input, a job never accepted, a cancel the peer ignores."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from custom_components.esphome_pipeline.engine.lanes import RunningJob, StopReason
from custom_components.esphome_pipeline.engine.models import JobStatus
from custom_components.esphome_pipeline.engine.peer.executor import RemoteExecutor
from custom_components.esphome_pipeline.engine.peer.identity import PeerIdentity
from custom_components.esphome_pipeline.engine.peer.transport import open_channel
from custom_components.esphome_pipeline.engine.peer.wire import (
    Intent,
    PeerLostError,
)
from tests.fakes import FakeEsphome, fake_cli

from .conftest import WAIT, LinkFactory, ReceiverFactory
from .test_remote_compile import RecordingSink, compile_job


async def test_channel_limits(make_receiver: ReceiverFactory, identity: PeerIdentity) -> None:
    receiver = await make_receiver()
    channel, answer = await open_channel(
        "127.0.0.1", receiver.port, identity, Intent.PREVIEW, {}, expected_pin=receiver.pin
    )
    assert answer["intent_response"] == "ok"
    async with channel:
        with pytest.raises(ValueError, match="too big"):
            await channel.send({"type": "x", "data": "a" * 70_000})
        # The receiver closes a preview after its answer.
        with pytest.raises(PeerLostError):
            await channel.receive()
    with pytest.raises(PeerLostError, match="closed"):
        await channel.send({"type": "ping"})


async def test_bad_submissions(
    tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    link = await make_link(await make_receiver())
    await link.wait_for(lambda s: s.available, WAIT)
    empty = tmp_path / "empty.tar.gz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="not a YAML file name"):
        await link.submit_compile("../x.yaml", empty)
    with pytest.raises(ValueError, match="0 bytes"):
        await link.submit_compile("x.yaml", empty)
    await link.cancel("unknown job")


async def test_a_job_never_accepted_ends_the_session(
    tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    receiver = await make_receiver(hostile="never_ack")
    link = await make_link(receiver, ack_timeout=0.05)
    await link.wait_for(lambda s: s.available, WAIT)
    bundle = tmp_path / "b.tar.gz"
    bundle.write_bytes(b"bundle")
    with pytest.raises(PeerLostError, match="did not accept the job"):
        await link.submit_compile("dev1.yaml", bundle)
    status = await link.wait_for(lambda s: s.connected and s.sessions == 2, WAIT)
    assert status.sessions == 2


async def test_a_cancel_the_peer_ignores_still_ends_the_job(
    tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    config = FakeEsphome(tmp_path / "config")
    config.add_config("dev1")
    receiver = await make_receiver(
        hostile="ignore_cancel", behaviour={"default": {"compile": {"wait_for_file": "never"}}}
    )
    link = await make_link(receiver)
    await link.wait_for(lambda s: s.available, WAIT)
    executor = RemoteExecutor(
        link, fake_cli(), config.config_dir, stop_poll=0.01, cancel_confirm_timeout=0.05
    )
    running = RunningJob(compile_job())
    run = asyncio.ensure_future(executor.run(running, RecordingSink()))
    await asyncio.wait_for(receiver.event("started").wait(), WAIT)
    running.request_stop(StopReason.CANCEL)
    outcome = await asyncio.wait_for(run, WAIT)
    assert outcome.status is JobStatus.CANCELLED
    assert receiver.cancels == [running.job.job_id]


async def test_a_job_cancelled_before_it_is_sent_is_never_sent(
    tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    receiver = await make_receiver()
    link = await make_link(receiver)
    await link.wait_for(lambda s: s.available, WAIT)
    bundle = tmp_path / "b.tar.gz"
    bundle.write_bytes(b"bundle")
    await link.cancel("early")
    result = await link.submit_compile("dev1.yaml", bundle, job_id="early")
    assert result.state == "cancelled"
    assert result.error == "Cancelled before it was sent"
    assert receiver.jobs == {}
    assert not receiver.event("submit").is_set()


async def test_closing_the_link_cancels_its_compile_on_the_peer(
    tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    """A removed peer stops building for us at once; here the compile counts as lost."""
    config = FakeEsphome(tmp_path / "config")
    config.add_config("dev1")
    receiver = await make_receiver(behaviour={"default": {"compile": {"wait_for_file": "never"}}})
    link = await make_link(receiver)
    await link.wait_for(lambda s: s.available, WAIT)
    executor = RemoteExecutor(link, fake_cli(), config.config_dir, stop_poll=0.01)
    running = RunningJob(compile_job())
    run = asyncio.ensure_future(executor.run_remote(running, RecordingSink()))
    await asyncio.wait_for(receiver.event("started").wait(), WAIT)
    await link.close()
    result = await asyncio.wait_for(run, WAIT)
    assert result.kind == "peer_lost", result.outcome.error
    assert receiver.cancels == [running.job.job_id]
    # The receiver's compile process ended (SIGTERM from its cancel), it did not run on.
    await asyncio.wait_for(receiver.event("ended").wait(), WAIT)
    assert receiver.jobs[running.job.job_id].cancelled
