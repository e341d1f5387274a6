"""What the link tracks per remote job: its state and output, and an artifact download.

Owns `RemoteJob` (one submitted compile: the acknowledgement, the state frames, the output
lines turned into log lines and progress, the terminal result) and `ArtifactDownload` (one
`download_artifacts` stream: header checks, chunks in order, the running size against the
declared one and the cap, the SHA-256 at the end). Both are fed by the link's single reader
task and only ever see frames whose fields `wire` has already checked for type; every rule of
order and size is checked here and broken ones raise `PeerProtocolError`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
import hashlib
import os
from pathlib import Path
from typing import Any, Final

from ..output import LineSplitter, ProgressTracker
from .wire import (
    CHUNK_BYTES,
    MAX_ARTIFACT_BYTES,
    MessageType,
    PeerError,
    PeerProtocolError,
    RemoteJobState,
    clip,
    field_bool,
    field_int,
    field_str,
)

DOWNLOAD_IDLE_TIMEOUT: Final = 60.0
"""Seconds an artifact stream may stall before the session is given up."""

type OutputCallback = Callable[[str, bool], None]
type ProgressCallback = Callable[[int], None]


class RemoteJobRefusedError(PeerError):
    """The receiver refused a submitted job (its `submit_job_ack` said no)."""

    kind = "refused"


class ArtifactsUnavailableError(PeerError):
    """The receiver could not send a build's artifacts (`artifacts_end` refused)."""

    kind = "artifacts_unavailable"

    def __init__(self, message: str, *, reason: str, detail: str) -> None:
        """Keep the receiver's reason code and detail."""
        super().__init__(message)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RemoteBuildResult:
    """How a remote compile ended on the peer."""

    job_id: str
    state: RemoteJobState
    error: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ReceivedArtifacts:
    """An artifact tarball received whole and intact (its bytes match the announced hash)."""

    data: bytes | bytearray = field(repr=False)
    sha256: str
    firmware_offset: str


@dataclass(frozen=True, slots=True)
class DownloadedArtifacts:
    """An artifact tarball saved in a staging folder, not yet checked or unpacked."""

    path: Path
    size: int
    sha256: str
    firmware_offset: str


class RemoteJob:
    """One submitted job as the link sees it."""

    def __init__(
        self,
        job_id: str,
        on_output: OutputCallback | None,
        on_progress: ProgressCallback | None,
    ) -> None:
        """Track `job_id`; output and progress go to the callbacks."""
        loop = asyncio.get_running_loop()
        self.job_id = job_id
        self.state = RemoteJobState.QUEUED
        self.acknowledged: asyncio.Future[None] = loop.create_future()
        self.result: asyncio.Future[RemoteBuildResult] = loop.create_future()
        self.cancel_requested = False
        self._on_output = on_output
        self._on_progress = on_progress
        self._splitter = LineSplitter()
        self._progress = ProgressTracker()

    def on_ack(self, frame: dict[str, Any]) -> None:
        """Handle `submit_job_ack`."""
        if self.acknowledged.done():
            raise PeerProtocolError(f"The build peer acknowledged job {self.job_id} twice")
        if field_bool(frame, "accepted"):
            self.acknowledged.set_result(None)
            return
        reason = clip(field_str(frame, "reason", optional=True), 200) or "no reason given"
        self.fail(RemoteJobRefusedError(f"The build peer refused the job: {reason}"))

    def on_state(self, frame: dict[str, Any]) -> None:
        """Handle `job_state_changed`."""
        raw = field_str(frame, "status")
        try:
            state = RemoteJobState(raw)
        except ValueError:
            raise PeerProtocolError(
                f"The build peer reported an unknown job state {raw!r}"
            ) from None
        if not self.acknowledged.done():
            raise PeerProtocolError(
                f"The build peer reported job {self.job_id} before accepting it"
            )
        if self.result.done():
            return
        self.state = state
        if not state.is_terminal:
            return
        self._flush_output()
        error = clip(field_str(frame, "error_message", optional=True), 2_000) or None
        reason = clip(field_str(frame, "failure_reason", optional=True), 100) or None
        self.result.set_result(
            RemoteBuildResult(self.job_id, state, error=error, failure_reason=reason)
        )

    def on_output(self, frame: dict[str, Any]) -> None:
        """Handle `job_output`: the receiver keeps each line's terminator (`\\r` redraws)."""
        line = clip(field_str(frame, "line"))
        if self.result.done():
            return
        for text, replaces_previous in self._splitter.feed(line.encode()):
            self._deliver(text, replaces_previous)

    def _flush_output(self) -> None:
        for text, replaces_previous in self._splitter.flush():
            self._deliver(text, replaces_previous)

    def _deliver(self, text: str, replaces_previous: bool) -> None:
        if self._on_output is not None:
            self._on_output(text, replaces_previous)
        value = self._progress.feed(text)
        if value is not None and self._on_progress is not None:
            self._on_progress(value)

    def fail(self, error: BaseException) -> None:
        """End the job with `error` (the link is gone, or the peer broke the protocol)."""
        if not self.acknowledged.done():
            self.acknowledged.set_exception(error)
            # Whoever waits for the result sees the same error; nobody need await both.
            self.acknowledged.exception()
        if not self.result.done():
            self.result.set_exception(error)
            self.result.exception()


class ArtifactDownload:
    """One artifact stream: `artifacts_start`, chunks in order, `artifacts_end`."""

    def __init__(self, job_id: str, limit: int = MAX_ARTIFACT_BYTES) -> None:
        """Expect the artifacts of `job_id`, at most `limit` bytes."""
        self.job_id = job_id
        self.done: asyncio.Future[ReceivedArtifacts] = asyncio.get_running_loop().create_future()
        self._limit = limit
        self._buffer = bytearray()
        self._hash = hashlib.sha256()
        self._total: int | None = None
        self._chunks = 0
        self._next_index = 0
        self._expected_sha = ""
        self._firmware_offset = ""

    @property
    def received(self) -> int:
        """Bytes received so far."""
        return len(self._buffer)

    def on_start(self, frame: dict[str, Any]) -> None:
        """Handle `artifacts_start`: check the announced size and chunk count."""
        if self._total is not None:
            raise PeerProtocolError("The build peer started the artifact stream twice")
        total = field_int(frame, "total_bytes", minimum=1)
        chunks = field_int(frame, "num_chunks", minimum=1)
        if total > self._limit:
            raise PeerProtocolError(
                f"The build peer announced {total} bytes of artifacts; the limit is {self._limit}"
            )
        if chunks > total:
            raise PeerProtocolError(f"The build peer announced {chunks} chunks for {total} bytes")
        sha = field_str(frame, "artifacts_sha256").lower()
        if len(sha) != 64 or any(char not in "0123456789abcdef" for char in sha):
            raise PeerProtocolError("The build peer announced an artifact hash that is no SHA-256")
        self._total = total
        self._chunks = chunks
        self._expected_sha = sha
        self._firmware_offset = clip(field_str(frame, "firmware_offset", optional=True), 32)

    def on_chunk(self, frame: dict[str, Any]) -> None:
        """Handle `artifacts_chunk`: in order, never past the announced size."""
        if self._total is None:
            raise PeerProtocolError("The build peer sent an artifact chunk before its header")
        index = field_int(frame, "chunk_index")
        is_last = field_bool(frame, "is_last")
        encoded = field_str(frame, "data_b64")
        if index != self._next_index:
            raise PeerProtocolError(
                f"The build peer sent artifact chunk {index}; chunk {self._next_index} was due"
            )
        try:
            data = binascii.a2b_base64(encoded, strict_mode=True)
        except (binascii.Error, ValueError) as err:
            raise PeerProtocolError(
                "The build peer sent an artifact chunk that is not base64"
            ) from err
        if len(self._buffer) + len(data) > self._total:
            raise PeerProtocolError("The build peer sent more artifact bytes than it announced")
        self._next_index += 1
        if is_last != (self._next_index == self._chunks):
            raise PeerProtocolError("The build peer's artifact chunk count does not add up")
        self._buffer.extend(data)
        self._hash.update(data)

    def on_end(self, frame: dict[str, Any]) -> None:
        """Handle `artifacts_end`: a refusal, or the end of a complete, intact stream."""
        if not field_bool(frame, "accepted"):
            reason = clip(field_str(frame, "reason", optional=True), 100) or "unknown"
            detail = clip(field_str(frame, "detail", optional=True), 300)
            message = f"The build peer could not send the artifacts ({reason})"
            self.fail(
                ArtifactsUnavailableError(
                    f"{message}: {detail}" if detail else message, reason=reason, detail=detail
                )
            )
            return
        if self._total is None or self._next_index != self._chunks:
            raise PeerProtocolError(
                "The build peer ended the artifact stream before its last chunk"
            )
        if len(self._buffer) != self._total:
            raise PeerProtocolError(
                f"The build peer sent {len(self._buffer)} artifact bytes, not the {self._total} "
                "it announced"
            )
        digest = self._hash.hexdigest()
        if digest != self._expected_sha:
            raise PeerProtocolError(
                "The artifacts do not match the SHA-256 the build peer announced"
            )
        if not self.done.done():
            # Handed over without a copy: the download is done with its buffer.
            self.done.set_result(ReceivedArtifacts(self._buffer, digest, self._firmware_offset))
        self._buffer = bytearray()

    async def wait(self, idle_timeout: float = DOWNLOAD_IDLE_TIMEOUT) -> ReceivedArtifacts:
        """Wait for the whole stream; PeerProtocolError when it stalls for `idle_timeout`."""
        seen = -1
        while True:
            try:
                async with asyncio.timeout(idle_timeout):
                    return await asyncio.shield(self.done)
            except TimeoutError:
                if self.received == seen:
                    error = PeerProtocolError("The build peer stalled while sending artifacts")
                    self.fail(error)
                    raise error from None
                seen = self.received

    def fail(self, error: BaseException) -> None:
        """End the download with `error`."""
        self._buffer = bytearray()
        if not self.done.done():
            self.done.set_exception(error)
            self.done.exception()


def bundle_frames(
    job_id: str,
    configuration_filename: str,
    bundle: bytes,
    device_name: str | None = None,
    esphome_version: str | None = None,
) -> list[dict[str, Any]]:
    """Return the `submit_job` header and its `submit_job_chunk` frames for a bundle."""
    chunks = [bundle[i : i + CHUNK_BYTES] for i in range(0, len(bundle), CHUNK_BYTES)]
    header: dict[str, Any] = {
        "type": MessageType.SUBMIT_JOB,
        "job_id": job_id,
        "configuration_filename": configuration_filename,
        "target": "compile",
        "total_bundle_bytes": len(bundle),
        "num_chunks": len(chunks),
        "bundle_sha256": hashlib.sha256(bundle).hexdigest(),
    }
    if device_name:
        header["device_name"] = device_name
    if esphome_version:
        header["target_esphome_version"] = esphome_version
    return [
        header,
        *(
            {
                "type": MessageType.SUBMIT_JOB_CHUNK,
                "job_id": job_id,
                "chunk_index": index,
                "data_b64": base64.b64encode(chunk).decode("ascii"),
                "is_last": index == len(chunks) - 1,
            }
            for index, chunk in enumerate(chunks)
        ),
    ]


def save_private(path: Path, data: bytes | bytearray) -> None:
    """Write `data` to `path` (mode 0600) through a temporary name (blocking)."""
    temporary = path.with_name(f".{path.name}.part")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    temporary.replace(path)
