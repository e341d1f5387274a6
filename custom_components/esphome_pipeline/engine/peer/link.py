"""One persistent link to one paired build peer: connect, keep alive, reconnect, status.

Owns `PeerLink`: a task that opens the Noise channel with the `peer_link` intent (the
receiver's key must match the stored pin on every connect; a mismatch stops the link for good
and nothing is sent), keeps it alive with a heartbeat (a ping every interval; nothing heard for
`misses` intervals ends the session), answers the receiver's own pings, reconnects with a
backoff of 1 s doubling to 30 s, and keeps the peer's status current: connected or not, its
compile lane (idle, running, queue depth) from `queue_status`, its ESPHome version and name.

The requests that ride on the live session (`submit_compile`, `cancel`,
`download_artifacts`) are `LinkRequests`' (`link_requests.py`); the link offers them as its
own methods. A session that ends fails every request in flight with the reason
(`PeerLostError`, or the `PeerProtocolError` that closed it). `close()` ends the session at
once and tells the receiver why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import logging
from pathlib import Path
from typing import Any

import aiohttp

from .identity import PeerIdentity
from .link_requests import LinkRequests
from .remote_jobs import (
    DownloadedArtifacts,
    OutputCallback,
    ProgressCallback,
    RemoteBuildResult,
)
from .status import LinkState, PeerStatus, StatusBoard, text_from, version_from
from .transport import NoiseChannel, open_channel
from .wire import (
    ACK_TIMEOUT_BASE,
    HANDSHAKE_TIMEOUT,
    HEARTBEAT_INTERVAL,
    HEARTBEAT_MISSES,
    RECONNECT_INITIAL,
    RECONNECT_MAX,
    Intent,
    IntentResponse,
    MessageType,
    PeerError,
    PeerLostError,
    PeerPinMismatchError,
    PeerProtocolError,
    clip,
    field_bool,
    field_int,
    field_str,
)

_LOGGER = logging.getLogger(__name__)


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
        self._board = StatusBoard()
        self._channel: NoiseChannel | None = None
        self._last_channel: NoiseChannel | None = None
        self._requests = LinkRequests(
            label=label, channel=lambda: self._channel, ack_timeout=ack_timeout
        )
        self._task: asyncio.Task[None] | None = None
        self._closed = False

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
        await self._requests.cancel_accepted(self._channel)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._last_channel is not None:
            # Finish the close the cancelled session started (or start it).
            await self._last_channel.close("client_stopped")
        self._requests.fail_all(PeerLostError("The link to the build peer was closed"))
        self._board.update(state=LinkState.CLOSED)

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
            self._requests.fail_all(error)
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
        elif not await self._requests.on_frame(channel, kind, frame):
            # Newer receivers may know more message types; ignoring them keeps us compatible.
            _LOGGER.debug("Build peer %s:%s sent unknown frame %r", self.host, self.port, kind)

    # --- requests (kept by LinkRequests) -----------------------------------------------

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
        return await self._requests.submit_compile(
            configuration_filename,
            bundle_path,
            on_output=on_output,
            on_progress=on_progress,
            job_id=job_id,
            device_name=device_name,
            esphome_version=esphome_version,
        )

    async def cancel(self, job_id: str) -> None:
        """Ask the peer to cancel a job; its `cancelled` state is the confirmation."""
        await self._requests.cancel(job_id)

    async def download_artifacts(self, job_id: str, destination: Path) -> DownloadedArtifacts:
        """Fetch a completed job's artifact tarball into `destination` (a staging file)."""
        return await self._requests.download_artifacts(job_id, destination)
