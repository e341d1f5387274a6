"""The requests that ride on a peer link's live session: submit, cancel, download.

Owns `LinkRequests`: the bookkeeping of every request in flight on one link (the submitted
compiles by job id, the artifact downloads, the cancels that arrived before their job was
sent), the frames that answer them (`submit_job_ack`, `job_state_changed`, `job_output`, the
`artifacts_*` stream), and failing them all at once when the session ends, so a caller never
waits on a dead link. `PeerLink` owns the session itself (connect, heartbeat, reconnect,
status) and hands this class the channel of the moment and every frame it does not handle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from pathlib import Path
import re
from typing import Any, Final
import uuid

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
from .transport import NoiseChannel
from .wire import (
    ACK_BYTES_PER_SECOND,
    MAX_BUNDLE_BYTES,
    MessageType,
    PeerError,
    PeerLostError,
    PeerProtocolError,
    RemoteJobState,
    field_str,
)

_YAML_LEAF_RE: Final = re.compile(r"^[^/\\\x00]+\.(?:ya?ml)$", re.IGNORECASE)
CANCEL_ON_CLOSE_TIMEOUT: Final = 0.5
"""Seconds a link's close spends at most on telling the peer to cancel our running compiles."""
_EARLY_CANCELS_KEPT: Final = 100

_JOB_FRAMES: Final = frozenset({MessageType.JOB_STATE_CHANGED, MessageType.JOB_OUTPUT})
_ARTIFACT_FRAMES: Final = frozenset(
    {MessageType.ARTIFACTS_START, MessageType.ARTIFACTS_CHUNK, MessageType.ARTIFACTS_END}
)


class LinkRequests:
    """Every request in flight on one link, and the frames that answer them."""

    def __init__(
        self, *, label: str, channel: Callable[[], NoiseChannel | None], ack_timeout: float
    ) -> None:
        """Send on whatever `channel()` returns (None: no live session) for the peer `label`."""
        self._label = label
        self._channel = channel
        self._ack_timeout = ack_timeout
        self._jobs: dict[str, RemoteJob] = {}
        self._downloads: dict[str, ArtifactDownload] = {}
        self._submit_lock = asyncio.Lock()
        self._download_lock = asyncio.Lock()
        self._early_cancels: set[str] = set()
        """Jobs cancelled before `submit_compile` registered them: they are never sent."""

    def _require_channel(self) -> NoiseChannel:
        channel = self._channel()
        if channel is None:
            raise PeerLostError(f"The build peer {self._label} is not connected")
        return channel

    # --- the session's side -------------------------------------------------------------

    def fail_all(self, error: PeerError) -> None:
        """End every request in flight with `error` (the session ended)."""
        for job in list(self._jobs.values()):
            job.fail(error)
        for download in list(self._downloads.values()):
            download.fail(error)

    async def cancel_accepted(self, channel: NoiseChannel | None) -> None:
        """Cancel on the peer every compile it accepted and still runs (the link closes).

        Whoever waits on them sees them lost, not cancelled: the peer's answer to this cancel
        must not read as a user's cancel (the compile goes elsewhere).
        """
        accepted = [
            job.job_id
            for job in self._jobs.values()
            if job.acknowledged.done()
            and job.acknowledged.exception() is None
            and not job.result.done()
        ]
        if channel is None or not accepted:
            return
        for job_id in accepted:
            self._jobs[job_id].fail(PeerLostError("The link to the build peer was closed"))
        # Best effort and bounded: the close must not wait on a peer that stopped reading.
        with contextlib.suppress(PeerLostError, TimeoutError):
            async with asyncio.timeout(CANCEL_ON_CLOSE_TIMEOUT):
                for job_id in accepted:
                    await channel.send({"type": MessageType.CANCEL_JOB, "job_id": job_id})

    async def on_frame(self, channel: NoiseChannel, kind: str, frame: dict[str, Any]) -> bool:
        """Handle a frame that answers a request; return False for any other frame."""
        if kind == MessageType.SUBMIT_JOB_ACK:
            job = self._jobs.get(field_str(frame, "job_id"))
            if job is None:
                raise PeerProtocolError("The build peer acknowledged a job that was never sent")
            job.on_ack(frame)
            if job.cancel_requested and job.acknowledged.done() and not job.result.done():
                await channel.send({"type": MessageType.CANCEL_JOB, "job_id": job.job_id})
        elif kind in _JOB_FRAMES:
            job = self._jobs.get(field_str(frame, "job_id"))
            if job is None:
                # A job of an earlier session still reporting: already failed here, ignored.
                return True
            if kind == MessageType.JOB_OUTPUT:
                job.on_output(frame)
            else:
                job.on_state(frame)
        elif kind in _ARTIFACT_FRAMES:
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
            return False
        return True

    # --- the callers' side --------------------------------------------------------------

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
        """Send the bundle for a compile and wait for the job's end on the peer."""
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
            if len(self._early_cancels) > _EARLY_CANCELS_KEPT:
                self._early_cancels.clear()
            self._early_cancels.add(job_id)
            return
        if job.result.done():
            return
        job.cancel_requested = True
        # Before the acknowledgement the receiver has no job to cancel yet: the cancel is
        # sent when the acknowledgement arrives.
        channel = self._channel()
        if job.acknowledged.done() and channel is not None:
            with contextlib.suppress(PeerLostError):
                await channel.send({"type": MessageType.CANCEL_JOB, "job_id": job_id})

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
