"""One persistent link to one paired build peer: connect, keep alive, submit, cancel, download.

Owns `PeerLink`: a task that opens the Noise channel with the `peer_link` intent (the
receiver's key must match the stored pin on every connect; a mismatch stops the link for good
and nothing is sent), keeps it alive with a heartbeat (a ping every interval; nothing heard for
`misses` intervals ends the session), answers the receiver's own pings, reconnects with a
backoff of 1 s doubling to 30 s, and keeps the peer's status current: connected or not, its
compile lane (idle, running, queue depth) from `queue_status`, its ESPHome version and name.

Requests ride on the live session: `submit_compile` streams a bundle in chunks and waits for
the receiver's acknowledgement and then the job's end, feeding output and progress on the way;
`cancel` reaches the peer; `download_artifacts` saves the artifact tarball into a staging file.
A session that ends fails every request in flight with the reason (`PeerLostError`, or the
`PeerProtocolError` that closed it), so a caller never waits on a dead link. `close()` ends the
session at once and tells the receiver why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import logging
from pathlib import Path
import re
from typing import Any, Final
import uuid

import aiohttp

from .identity import PeerIdentity
from .remote_jobs import (
    DOWNLOAD_IDLE_TIMEOUT,
    ArtifactDownload,
    DownloadedArtifacts,
    OutputCallback,
    ProgressCallback,
    RemoteBuildResult,
    RemoteJob,
    bundle_frames,
    save_private,
)
from .status import LinkState, PeerStatus, StatusBoard, text_from, version_from
from .transport import NoiseChannel, open_channel
from .wire import (
    ACK_BYTES_PER_SECOND,
    ACK_TIMEOUT_BASE,
    HANDSHAKE_TIMEOUT,
    HEARTBEAT_INTERVAL,
    HEARTBEAT_MISSES,
    MAX_BUNDLE_BYTES,
    RECONNECT_INITIAL,
    RECONNECT_MAX,
    Intent,
    IntentResponse,
    MessageType,
    PeerError,
    PeerLostError,
    PeerPinMismatchError,
    PeerProtocolError,
    RemoteJobState,
    clip,
    field_bool,
    field_int,
    field_str,
)

_LOGGER = logging.getLogger(__name__)

_YAML_LEAF_RE: Final = re.compile(r"^[^/\\\x00]+\.(?:ya?ml)$", re.IGNORECASE)
CANCEL_ON_CLOSE_TIMEOUT: Final = 0.5
"""Seconds `close()` spends at most on telling the peer to cancel our running compiles."""


class PeerLink:
    """The persistent link to one peer. Call `start()`, and `close()` when the peer goes."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        identity: PeerIdentity,
        pin: str,
        dashboard_id: str,
        label: str,
        http: aiohttp.ClientSession | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        heartbeat_misses: int = HEARTBEAT_MISSES,
        reconnect_initial: float = RECONNECT_INITIAL,
        reconnect_max: float = RECONNECT_MAX,
        connect_timeout: float = HANDSHAKE_TIMEOUT,
        ack_timeout: float = ACK_TIMEOUT_BASE,
    ) -> None:
        """Describe the link; nothing connects before `start()`.

        `ack_timeout` (plus the bundle's size at 2 MiB/s) bounds the wait for the receiver
        to accept a submitted job; the session is given up when it passes.
        """
        self.host = host
        self.port = port
        self.pin = pin
        self.label = label
        self._identity = identity
        self._hello = {
            "dashboard_id": dashboard_id,
            "label": label,
            "friendly_name": label,
            "ha_addon": False,
        }
        self._http = http
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_misses = heartbeat_misses
        self._reconnect_initial = reconnect_initial
        self._reconnect_max = reconnect_max
        self._connect_timeout = connect_timeout
        self._ack_timeout = ack_timeout
        self._board = StatusBoard()
        self._channel: NoiseChannel | None = None
        self._last_channel: NoiseChannel | None = None
        self._jobs: dict[str, RemoteJob] = {}
        self._downloads: dict[str, ArtifactDownload] = {}
        self._submit_lock = asyncio.Lock()
        self._download_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._early_cancels: set[str] = set()
        """Jobs cancelled before `submit_compile` registered them: they are never sent."""

    # --- status -------------------------------------------------------------------------

    @property
    def status(self) -> PeerStatus:
        """The current status."""
        return self._board.status

    def subscribe(self, callback: Callable[[PeerStatus], None]) -> Callable[[], None]:
        """Call `callback` with every new status; return the function that unsubscribes."""
        return self._board.subscribe(callback)

    async def wait_for(
        self, predicate: Callable[[PeerStatus], bool], within: float | None = None
    ) -> PeerStatus:
        """Return the first status (the current one included) for which `predicate` holds."""
        return await self._board.wait_for(predicate, within)

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting (and reconnecting) in the background."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"peer link {self.host}:{self.port}"
            )

    async def close(self) -> None:
        """End the link now: the session closes, requests in flight fail, no reconnect.

        Compiles the peer runs for us are cancelled there first: nobody will fetch them, and
        a receiver keeps building for a closed session otherwise (Device Builder 1.26.0 does).
        """
        self._closed = True
        await self._cancel_on_peer()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._last_channel is not None:
            # Finish the close the cancelled session started (or start it).
            await self._last_channel.close("client_stopped")
        self._fail_inflight(PeerLostError("The link to the build peer was closed"))
        self._board.update(state=LinkState.CLOSED)

    async def _cancel_on_peer(self) -> None:
        channel = self._channel
        accepted = [
            job.job_id
            for job in self._jobs.values()
            if job.acknowledged.done()
            and job.acknowledged.exception() is None
            and not job.result.done()
        ]
        if channel is None or not accepted:
            return
        # Lost, not cancelled, for whoever waits on them: the peer's answer to this cancel
        # must not read as a user's cancel (the compile goes elsewhere).
        for job_id in accepted:
            self._jobs[job_id].fail(PeerLostError("The link to the build peer was closed"))
        # Best effort and bounded: the close must not wait on a peer that stopped reading.
        with contextlib.suppress(PeerLostError, TimeoutError):
            async with asyncio.timeout(CANCEL_ON_CLOSE_TIMEOUT):
                for job_id in accepted:
                    await channel.send({"type": MessageType.CANCEL_JOB, "job_id": job_id})

    async def _run(self) -> None:
        backoff = self._reconnect_initial
        while not self._closed:
            self._board.update(state=LinkState.CONNECTING)
            try:
                channel, response = await open_channel(
                    self.host,
                    self.port,
                    self._identity,
                    Intent.PEER_LINK,
                    self._hello,
                    expected_pin=self.pin,
                    http=self._http,
                    connect_timeout=self._connect_timeout,
                )
            except PeerPinMismatchError as err:
                _LOGGER.warning("Build peer %s:%s: %s", self.host, self.port, err)
                self._board.update(state=LinkState.PIN_MISMATCH, error=str(err), idle=False)
                return
            except PeerError as err:
                self._board.update(state=LinkState.OFFLINE, error=str(err), idle=False)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._reconnect_max)
                continue
            answer = response["intent_response"]
            if answer != IntentResponse.OK:
                await channel.close()
                reason = response.get("reason")
                detail = f" ({clip(reason, 100)})" if isinstance(reason, str) and reason else ""
                self._board.update(
                    state=LinkState.REJECTED,
                    idle=False,
                    error=f"The build peer refused the link: {clip(answer, 50)}{detail}",
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._reconnect_max)
                continue
            backoff = self._reconnect_initial
            error = await self._serve(channel, response)
            _LOGGER.info("Build peer %s:%s: session ended: %s", self.host, self.port, error)
            self._board.update(
                state=LinkState.OFFLINE, error=str(error), idle=False, running=False, queue_depth=0
            )
            await asyncio.sleep(backoff)

    async def _serve(self, channel: NoiseChannel, response: dict[str, Any]) -> PeerError:
        """Run one session until it ends; return why it ended."""
        self._channel = self._last_channel = channel
        self._board.update(
            state=LinkState.CONNECTED,
            error=None,
            esphome_version=version_from(response),
            friendly_name=text_from(response, "friendly_name"),
            sessions=self._board.status.sessions + 1,
        )
        loop = asyncio.get_running_loop()
        heard = [loop.time()]
        reader = loop.create_task(self._read(channel, heard))
        heartbeat = loop.create_task(self._heartbeat(channel, heard))
        error: PeerError = PeerLostError("The link to the build peer was closed")
        try:
            done, _ = await asyncio.wait({reader, heartbeat}, return_when=asyncio.FIRST_COMPLETED)
            ended = done.pop().exception()
            if isinstance(ended, PeerError):
                error = ended
            elif ended is not None:
                _LOGGER.error("Build peer session failed", exc_info=ended)
                error = PeerLostError(f"Internal error on the peer link: {ended!r}")
        finally:
            self._channel = None
            for task in (reader, heartbeat):
                task.cancel()
            await asyncio.gather(reader, heartbeat, return_exceptions=True)
            self._fail_inflight(error)
            await channel.close("client_stopped" if self._closed else None)
        return error

    async def _heartbeat(self, channel: NoiseChannel, heard: list[float]) -> None:
        loop = asyncio.get_running_loop()
        nonce = 0
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            silent = loop.time() - heard[0]
            if silent > self._heartbeat_interval * self._heartbeat_misses:
                raise PeerLostError(f"The build peer stopped answering ({silent:.0f} s silent)")
            nonce += 1
            await channel.send({"type": MessageType.PING, "nonce": nonce})

    async def _read(self, channel: NoiseChannel, heard: list[float]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            frame = await channel.receive()
            heard[0] = loop.time()
            try:
                await self._dispatch(channel, frame)
            except PeerProtocolError as err:
                _LOGGER.warning(
                    "Build peer %s:%s broke the protocol: %s", self.host, self.port, err
                )
                raise

    def _fail_inflight(self, error: PeerError) -> None:
        for job in list(self._jobs.values()):
            job.fail(error)
        for download in list(self._downloads.values()):
            download.fail(error)

    # --- frames from the peer -----------------------------------------------------------

    async def _dispatch(self, channel: NoiseChannel, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == MessageType.PING:
            nonce = frame.get("nonce")
            await channel.send({"type": MessageType.PONG, "nonce": nonce})
        elif kind == MessageType.PONG:
            self._board.update(heartbeats=self._board.status.heartbeats + 1)
        elif kind == MessageType.TERMINATE:
            reason = clip(field_str(frame, "reason", optional=True), 100) or "no reason"
            raise PeerLostError(f"The build peer ended the link ({reason})")
        elif kind == MessageType.QUEUE_STATUS:
            idle = field_bool(frame, "idle")
            running = field_bool(frame, "running")
            depth = field_int(frame, "queue_depth")
            self._board.update(idle=idle, running=running, queue_depth=depth)
        elif kind == MessageType.SUBMIT_JOB_ACK:
            job = self._jobs.get(field_str(frame, "job_id"))
            if job is None:
                raise PeerProtocolError("The build peer acknowledged a job that was never sent")
            job.on_ack(frame)
            if job.cancel_requested and job.acknowledged.done() and not job.result.done():
                await channel.send({"type": MessageType.CANCEL_JOB, "job_id": job.job_id})
        elif kind in {MessageType.JOB_STATE_CHANGED, MessageType.JOB_OUTPUT}:
            job = self._jobs.get(field_str(frame, "job_id"))
            if job is None:
                # A job of an earlier session still reporting: already failed here, ignored.
                return
            if kind == MessageType.JOB_OUTPUT:
                job.on_output(frame)
            else:
                job.on_state(frame)
        elif kind in {
            MessageType.ARTIFACTS_START,
            MessageType.ARTIFACTS_CHUNK,
            MessageType.ARTIFACTS_END,
        }:
            download = self._downloads.get(field_str(frame, "job_id"))
            if download is None:
                raise PeerProtocolError("The build peer sent artifacts nobody asked for")
            if kind == MessageType.ARTIFACTS_START:
                download.on_start(frame)
            elif kind == MessageType.ARTIFACTS_CHUNK:
                download.on_chunk(frame)
            else:
                download.on_end(frame)
        else:
            # Newer receivers may know more message types; ignoring them keeps us compatible.
            _LOGGER.debug("Build peer %s:%s sent unknown frame %r", self.host, self.port, kind)

    # --- requests -----------------------------------------------------------------------

    def _require_channel(self) -> NoiseChannel:
        if self._channel is None:
            raise PeerLostError(f"The build peer {self.label} is not connected")
        return self._channel

    async def submit_compile(
        self,
        configuration_filename: str,
        bundle_path: Path,
        *,
        on_output: OutputCallback | None = None,
        on_progress: ProgressCallback | None = None,
        job_id: str | None = None,
        device_name: str | None = None,
        esphome_version: str | None = None,
    ) -> RemoteBuildResult:
        """Send the bundle for a compile and wait for the job's end on the peer.

        `esphome_version`, when given, asks the receiver to build with that ESPHome release
        (Device Builder then installs it on the receiver). Raises PeerLostError when the
        session ends first, RemoteJobRefusedError when the receiver refuses the job.
        """
        if not _YAML_LEAF_RE.fullmatch(configuration_filename):
            raise ValueError(f"{configuration_filename!r} is not a YAML file name")
        bundle = await asyncio.get_running_loop().run_in_executor(None, bundle_path.read_bytes)
        if not bundle or len(bundle) > MAX_BUNDLE_BYTES:
            raise ValueError(f"A bundle of {len(bundle)} bytes cannot be sent to a build peer")
        self._require_channel()
        job = RemoteJob(job_id or uuid.uuid4().hex, on_output, on_progress)
        if job.job_id in self._early_cancels:
            self._early_cancels.discard(job.job_id)
            job.cancel_requested = True
        self._jobs[job.job_id] = job
        try:
            async with self._submit_lock:
                if job.acknowledged.done():
                    await job.acknowledged
                if job.cancel_requested:
                    return RemoteBuildResult(
                        job.job_id, RemoteJobState.CANCELLED, error="Cancelled before it was sent"
                    )
                await self._send_bundle(
                    self._require_channel(),
                    job,
                    configuration_filename,
                    bundle,
                    device_name,
                    esphome_version,
                )
            return await job.result
        finally:
            self._jobs.pop(job.job_id, None)

    async def _send_bundle(
        self,
        channel: NoiseChannel,
        job: RemoteJob,
        configuration_filename: str,
        bundle: bytes,
        device_name: str | None,
        esphome_version: str | None,
    ) -> None:
        for frame in bundle_frames(
            job.job_id, configuration_filename, bundle, device_name, esphome_version
        ):
            await channel.send(frame)
        limit = self._ack_timeout + len(bundle) / ACK_BYTES_PER_SECOND
        try:
            async with asyncio.timeout(limit):
                await asyncio.shield(job.acknowledged)
        except TimeoutError:
            error = PeerLostError(f"The build peer did not accept the job within {limit:.0f} s")
            job.fail(error)
            await channel.close("ack_timeout")
            raise error from None

    async def cancel(self, job_id: str) -> None:
        """Ask the peer to cancel a job; its `cancelled` state is the confirmation."""
        job = self._jobs.get(job_id)
        if job is None:
            # Not submitted yet (or long over): make sure it is never sent.
            if len(self._early_cancels) > 100:
                self._early_cancels.clear()
            self._early_cancels.add(job_id)
            return
        if job.result.done():
            return
        job.cancel_requested = True
        # Before the acknowledgement the receiver has no job to cancel yet: the cancel is
        # sent when the acknowledgement arrives.
        if job.acknowledged.done() and self._channel is not None:
            with contextlib.suppress(PeerLostError):
                await self._channel.send({"type": MessageType.CANCEL_JOB, "job_id": job_id})

    async def download_artifacts(self, job_id: str, destination: Path) -> DownloadedArtifacts:
        """Fetch a completed job's artifact tarball into `destination` (a staging file)."""
        async with self._download_lock:
            channel = self._require_channel()
            download = ArtifactDownload(job_id)
            self._downloads[job_id] = download
            try:
                await channel.send({"type": MessageType.DOWNLOAD_ARTIFACTS, "job_id": job_id})
                try:
                    received = await download.wait(DOWNLOAD_IDLE_TIMEOUT)
                except PeerProtocolError:
                    await channel.close("download_stalled")
                    raise
            finally:
                self._downloads.pop(job_id, None)
        await asyncio.get_running_loop().run_in_executor(
            None, save_private, destination, received.data
        )
        return DownloadedArtifacts(
            destination, len(received.data), received.sha256, received.firmware_offset
        )
