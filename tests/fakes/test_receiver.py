"""Our own build-peer receiver: Device Builder's peer-link protocol, a real ESPHome CLI behind it.

`PeerReceiver` serves `/remote-build/peer-link` on 127.0.0.1 with the responder side of
`Noise_XX_25519_ChaChaPoly_SHA256`, like `esphome-device-builder --remote-build-only`: the
intents `preview` (answers `requires_pairing_key`), `pair_request` (approves the first request
that carries the pairing key, then closes its window; anything else gets `no_pairing_window`),
`pair_status` and `peer_link` (only for an approved id with the same key). On a link it pings,
answers pings, broadcasts `queue_status` on every change of its compile lane, accepts chunked
bundles, runs `<cli> compile <yaml>` one job at a time (real subprocesses in their own
session; `cancel_job` stops them), streams `job_output` with line terminators kept and
`job_state_changed`, and answers `download_artifacts` with the build packed in Device
Builder's tarball layout.

Its key and approvals persist in its folder, so a receiver started again on the same folder
is the same peer. `hostile=` makes it misbehave in one way (see `HOSTILE_WIRE` and
`artifact_tarballs.HOSTILE_TARBALLS`); `artifact_override=` serves given bytes as the
artifacts (the transfer benchmark); `behaviour=` is the fake CLI's behaviour table written
into every job's folder. Tests synchronise on `event(name)`: `session`, `ping`, `submit`,
`started`, `ended`, `cancel` are set when they happen.

The wire details (sessions, jobs, the hostile cases and the artifact stream) live in
`receiver_wire.py`. Not a test module despite its name: it defines no tests.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
import contextlib
import hashlib
import io
import json
import os
from pathlib import Path
import re
import signal
import sys
import tarfile
from typing import Any

from aiohttp import WSMsgType, web
from noise.connection import Keypair, NoiseConnection

from custom_components.esphome_pipeline.engine.peer.identity import PeerIdentity
from tests.fakes.artifact_tarballs import hostile_tarball, pack_build
from tests.fakes.receiver_wire import (
    HOSTILE_HANDSHAKE,
    HOSTILE_WIRE,
    PAIRING_KEY,
    QUIRKS,
    Job,
    Session,
    misbehave_mid_build,
    stream_artifacts,
)

__all__ = ["HOSTILE_HANDSHAKE", "HOSTILE_WIRE", "PAIRING_KEY", "QUIRKS", "PeerReceiver"]

_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)")


def _normalise_key(key: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", key.upper())


class PeerReceiver:
    """A receiver on 127.0.0.1; `start()`, then `stop()` (clean) or `kill()` (abrupt)."""

    def __init__(
        self,
        work_dir: Path,
        *,
        cli: Sequence[str],
        port: int = 0,
        pairing_key: str = PAIRING_KEY,
        esphome_version: str = "2026.10.0",
        friendly_name: str = "Test receiver",
        hostile: str | None = None,
        artifact_override: bytes | None = None,
        heartbeat_interval: float = 30.0,
        answer_pings: bool = True,
        behaviour: dict[str, Any] | None = None,
    ) -> None:
        """Describe the receiver; `work_dir` holds its key, approvals and job folders."""
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.cli = tuple(cli)
        self.port = port
        self.pairing_key = pairing_key
        self.esphome_version = esphome_version
        self.friendly_name = friendly_name
        self.hostile = hostile
        self.artifact_override = artifact_override
        self.heartbeat_interval = heartbeat_interval
        self.answer_pings = answer_pings
        self.behaviour = behaviour
        key_file = work_dir / ".receiver-key.bin"
        if not key_file.exists():
            key_file.write_bytes(PeerIdentity.generate().private_key)
        self.identity = PeerIdentity.from_private_key(key_file.read_bytes())
        self._peers_file = work_dir / ".receiver-peers.json"
        self.approved: dict[str, str] = (
            json.loads(self._peers_file.read_text()) if self._peers_file.exists() else {}
        )
        self.pings = 0
        self.cancels: list[str] = []
        self.jobs: dict[str, Job] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._sessions: set[Session] = set()
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._running: Job | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    @property
    def pin(self) -> str:
        """The receiver's pin."""
        return self.identity.pin

    def event(self, name: str) -> asyncio.Event:
        """The event set when `name` happens (created on first use)."""
        return self._events.setdefault(name, asyncio.Event())

    def _fire(self, name: str) -> None:
        self.event(name).set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- server -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1 (`port`, or a free one that `port` then holds)."""
        app = web.Application()
        app.router.add_get("/remote-build/peer-link", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._spawn(self._compile_lane())

    async def stop(self) -> None:
        """Shut down cleanly: tell every link, stop the build, close."""
        for session in list(self._sessions):
            await session.send({"type": "terminate", "reason": "server_shutting_down"})
        await self._shutdown(signal.SIGTERM)

    async def kill(self) -> None:
        """Die at once: sockets dropped without a word, the build killed."""
        for session in list(self._sessions):
            transport = session.ws._req.transport if session.ws._req else None
            if transport is not None:
                transport.abort()
        await self._shutdown(signal.SIGKILL)

    async def _shutdown(self, signum: int) -> None:
        self._stopping.set()
        if self._running is not None and self._running.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._running.process.pid, signum)
            await self._running.process.wait()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in list(self._sessions):
            with contextlib.suppress(Exception):
                await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=60 * 1024, autoping=True)
        await ws.prepare(request)
        noise = NoiseConnection.from_name(b"Noise_XX_25519_ChaChaPoly_SHA256")
        noise.set_as_responder()
        noise.set_keypair_from_private_bytes(Keypair.STATIC, self.identity.private_key)
        noise.start_handshake()
        handshake = noise.noise_protocol.handshake_state
        try:
            first = await ws.receive_bytes(timeout=10)
            intent = json.loads(bytes(noise.read_message(first)) or b"{}").get("intent")
            if self.hostile == "handshake_text":
                await ws.send_str("hello")
                return ws
            if self.hostile == "handshake_bad_second_message":
                await ws.send_bytes(os.urandom(96))
                return ws
            if self.hostile == "handshake_stall":
                await self._stopping.wait()
                return ws
            await ws.send_bytes(bytes(noise.write_message(b"")))
            hello = json.loads(
                bytes(noise.read_message(await ws.receive_bytes(timeout=10))) or b"{}"
            )
        except (TimeoutError, TypeError, ValueError):
            return ws
        peer_pin = hashlib.sha256(bytes(handshake.rs.public_bytes)).hexdigest()
        session = Session(ws, noise, str(hello.get("dashboard_id", "")))
        answer = self._answer(str(intent), session.peer, peer_pin, hello)
        if self.hostile == "handshake_garbage_answer":
            await session.send_plain(b"\xff not json")
            return ws
        if self.hostile == "handshake_answer_without_response":
            await session.send({"esphome_version": "1"})
            return ws
        await session.send(answer)
        if intent == "peer_link" and answer["intent_response"] == "ok":
            await self._serve(session)
        return ws

    def _answer(self, intent: str, peer: str, pin: str, hello: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "esphome_version": self.esphome_version,
            "friendly_name": self.friendly_name,
            "ha_addon": False,
        }
        known = self.approved.get(peer)
        if intent == "preview":
            return {**answer, "intent_response": "ok", "requires_pairing_key": True}
        if intent in {"pair_request", "pair_status"} and known is not None:
            response = "approved" if known == pin else "rejected"
            return {**answer, "intent_response": response}
        if intent == "pair_request":
            key = hello.get("pairing_key")
            if (
                not self.approved
                and isinstance(key, str)
                and _normalise_key(key) == _normalise_key(self.pairing_key)
            ):
                self.approved[peer] = pin
                self._peers_file.write_text(json.dumps(self.approved))
                return {**answer, "intent_response": "approved"}
            return {**answer, "intent_response": "no_pairing_window"}
        if intent == "peer_link" and known == pin:
            return {**answer, "intent_response": "ok"}
        reason = "pin_mismatch" if known else "no_approved_peer"
        return {**answer, "intent_response": "rejected", "reason": reason}

    # --- a link -------------------------------------------------------------------------

    async def _serve(self, session: Session) -> None:
        self._sessions.add(session)
        self._fire("session")
        await self._send_status(session)
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(session))
        upload: dict[str, Any] = {}
        try:
            async for message in session.ws:
                if message.type is not WSMsgType.BINARY:
                    return
                frame = json.loads(bytes(session.noise.decrypt(message.data)))
                await self._on_frame(session, frame, upload)
        except Exception:
            return
        finally:
            heartbeat.cancel()
            self._sessions.discard(session)

    async def _heartbeat(self, session: Session) -> None:
        nonce = 0
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            nonce += 1
            await session.send({"type": "ping", "nonce": nonce})

    async def _on_frame(
        self, session: Session, frame: dict[str, Any], upload: dict[str, Any]
    ) -> None:
        kind = frame.get("type")
        if kind == "ping":
            self.pings += 1
            self._fire("ping")
            if self.answer_pings:
                await session.send({"type": "pong", "nonce": frame.get("nonce")})
        elif kind == "terminate":
            await session.ws.close()
        elif kind == "submit_job":
            upload.clear()
            upload.update(header=frame, data=bytearray())
        elif kind == "submit_job_chunk":
            upload["data"].extend(base64.b64decode(frame["data_b64"]))
            if frame["is_last"]:
                await self._accept(session, upload["header"], bytes(upload["data"]))
        elif kind == "cancel_job":
            self.cancels.append(frame["job_id"])
            self._fire("cancel")
            if self.hostile != "ignore_cancel":
                await self._cancel(frame["job_id"])
        elif kind == "download_artifacts":
            self._spawn(self._send_artifacts(session, frame["job_id"]))

    async def _send_status(self, session: Session | None = None) -> None:
        running = self._running is not None
        depth = self._queue.qsize()
        frame: dict[str, Any] = {
            "type": "queue_status",
            "idle": not running and depth == 0,
            "running": running,
            "queue_depth": depth,
        }
        if self.hostile == "bad_queue_status" and self._running is not None:
            frame["queue_depth"] = "many"
        for target in [session] if session is not None else list(self._sessions):
            await target.send(frame)

    async def _accept(self, session: Session, header: dict[str, Any], bundle: bytes) -> None:
        job_id = header["job_id"]
        if self.hostile == "never_ack":
            self._fire("submit")
            return
        if (
            self.hostile == "refuse_job"
            or hashlib.sha256(bundle).hexdigest() != header["bundle_sha256"]
        ):
            await session.send(
                {
                    "type": "submit_job_ack",
                    "job_id": job_id,
                    "accepted": False,
                    "reason": "hash_mismatch",
                }
            )
            return
        folder = (
            self.work_dir
            / "builds"
            / session.peer
            / header["configuration_filename"].rsplit(".", 1)[0]
        )
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
            tar.extractall(folder, filter="data")
        if self.behaviour is not None:
            # The fake CLI reads its behaviour from the configuration's folder.
            (folder / ".fake_esphome.json").write_text(json.dumps(self.behaviour))
        job = Job(job_id, session, folder, header["configuration_filename"])
        self.jobs[job_id] = job
        await session.send({"type": "submit_job_ack", "job_id": job_id, "accepted": True})
        if self.hostile == "unknown_ack":
            await session.send({"type": "submit_job_ack", "job_id": "never-sent", "accepted": True})
        self._fire("submit")
        await self._state(job, "queued")
        self._queue.put_nowait(job)
        await self._send_status()

    async def _state(self, job: Job, state: str, error: str = "") -> None:
        job.state = state
        frame: dict[str, Any] = {
            "type": "job_state_changed",
            "job_id": job.job_id,
            "status": state,
            "error_message": error,
        }
        if self.hostile == "bad_state" and state == "running":
            frame["status"] = "exploded"
        await job.session.send(frame)

    async def _cancel(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.state not in {"queued", "running"}:
            return
        job.cancelled = True
        if job.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.process.pid, signal.SIGTERM)
        elif job.state == "queued":
            await self._state(job, "cancelled", "Cancelled")

    # --- the compile lane ---------------------------------------------------------------

    async def _compile_lane(self) -> None:
        while True:
            job = await self._queue.get()
            if job.cancelled:
                continue
            self._running = job
            await self._send_status()
            try:
                await self._compile(job)
            finally:
                self._running = None
                await self._send_status()

    async def _compile(self, job: Job) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
        job.process = await asyncio.create_subprocess_exec(
            *self.cli,
            "compile",
            str(job.folder / job.yaml),
            cwd=job.folder,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._fire("started")
        await self._state(job, "running")
        await misbehave_mid_build(self.hostile, job)
        assert job.process.stdout is not None
        pending = b""
        while chunk := await job.process.stdout.read(4096):
            pending += chunk
            consumed = 0
            for match in _LINE.finditer(pending):
                await self._output(job, match.group())
                consumed = match.end()
            pending = pending[consumed:]
        if pending:
            await self._output(job, pending)
        code = await job.process.wait()
        self._fire("ended")
        if job.cancelled:
            await self._state(job, "cancelled", "Cancelled by the offloader")
        elif code != 0:
            await self._state(job, "failed", f"esphome compile exited with {code}")
        else:
            await self._state(job, "completed")

    async def _output(self, job: Job, raw: bytes) -> None:
        line: Any = raw.decode(errors="replace")
        if self.hostile == "bad_output":
            line = 42
        await job.session.send(
            {"type": "job_output", "job_id": job.job_id, "stream": "stdout", "line": line}
        )

    # --- artifacts ----------------------------------------------------------------------

    async def _send_artifacts(self, session: Session, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.state != "completed":
            await session.send(
                {
                    "type": "artifacts_end",
                    "job_id": job_id,
                    "accepted": False,
                    "reason": "unknown_job" if job is None else "job_not_completed",
                }
            )
            return
        loop = asyncio.get_running_loop()
        if self.hostile == "pack_failed":
            await session.send(
                {
                    "type": "artifacts_end",
                    "job_id": job_id,
                    "accepted": False,
                    "reason": "pack_failed",
                    "detail": "RuntimeError: no module",
                }
            )
            return
        if self.artifact_override is not None:
            data = self.artifact_override
        elif self.hostile is not None and self.hostile not in (*HOSTILE_WIRE, *QUIRKS):
            data = await loop.run_in_executor(None, hostile_tarball, self.hostile)
        else:
            try:
                data = await loop.run_in_executor(None, pack_build, job.folder, job.yaml)
            except (OSError, ValueError, KeyError) as err:
                await session.send(
                    {
                        "type": "artifacts_end",
                        "job_id": job_id,
                        "accepted": False,
                        "reason": "pack_failed",
                        "detail": f"{type(err).__name__}: {err}",
                    }
                )
                return
        await stream_artifacts(self.hostile, session, job_id, data)


def main() -> None:
    """Run a receiver as a process.

    `python -m tests.fakes.test_receiver FOLDER PORT [--artifact-bytes N] [--behaviour JSON]
    CLI...` prints `LISTENING 127.0.0.1:<port> PIN <pin> KEY <key>` once it serves; with
    `--artifact-bytes` it answers every download with N random bytes (the transfer benchmark),
    with `--behaviour` every job runs the fake CLI with that behaviour table (the makespan
    benchmark's 1.0 s compiles).
    """
    folder, port, *rest = sys.argv[1:]
    override: bytes | None = None
    behaviour: dict[str, Any] | None = None
    while rest[:1] in (["--artifact-bytes"], ["--behaviour"]):
        if rest[0] == "--artifact-bytes":
            override = os.urandom(int(rest[1]))
        else:
            behaviour = json.loads(rest[1])
        rest = rest[2:]

    async def serve() -> None:
        receiver = PeerReceiver(
            Path(folder), cli=rest, port=int(port), artifact_override=override, behaviour=behaviour
        )
        await receiver.start()
        print(
            f"LISTENING 127.0.0.1:{receiver.port} PIN {receiver.pin} KEY {receiver.pairing_key}",
            flush=True,
        )
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
