"""The test receiver's wire side: its sessions, jobs, hostile cases and artifact streams.

Split from `test_receiver.py`: `Session` (one open link and its send lock), `Job` (one
accepted compile), the names of the hostile and quirky behaviours, and the two places where
they act on the wire (during a build, and while streaming artifacts).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
from pathlib import Path
import signal
from typing import Any

from aiohttp import web
from noise.connection import NoiseConnection

PAIRING_KEY = "ABCD-EFGH-JKMN-PQRS"
CHUNK = 32 * 1024
HOSTILE_HANDSHAKE = (
    "handshake_text",
    "handshake_garbage_answer",
    "handshake_bad_second_message",
    "handshake_answer_without_response",
)
QUIRKS = (
    "handshake_stall",
    "refuse_job",
    "peer_cancels",
    "noise_for_others",
    "pack_failed",
    "never_ack",
    "ignore_cancel",
)
"""Odd but legal behaviour: a stalled handshake, a refused job, a cancel nobody asked for,
frames of unknown types or for unknown jobs (to be ignored), a refused download, a job never
acknowledged, a cancel ignored."""
HOSTILE_WIRE = (
    *HOSTILE_HANDSHAKE,
    "text_frame",
    "oversize_frame",
    "garbage_frame",
    "not_json_frame",
    "array_frame",
    "untyped_frame",
    "bad_state",
    "bad_output",
    "unknown_ack",
    "bad_queue_status",
    "unsolicited_artifacts",
    "sha_mismatch",
    "chunk_out_of_order",
    "oversize_announce",
    "chunk_not_base64",
    "extra_bytes",
    "terminate_mid_build",
)


class Session:
    """One open peer link: its socket, Noise state and send lock."""

    def __init__(self, ws: web.WebSocketResponse, noise: NoiseConnection, peer: str) -> None:
        self.ws = ws
        self.noise = noise
        self.peer = peer
        self.lock = asyncio.Lock()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.send_plain(json.dumps(frame).encode())

    async def send_plain(self, plaintext: bytes) -> None:
        async with self.lock:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_bytes(bytes(self.noise.encrypt(plaintext)))


class Job:
    """One accepted compile."""

    def __init__(self, job_id: str, session: Session, folder: Path, yaml: str) -> None:
        self.job_id = job_id
        self.session = session
        self.folder = folder
        self.yaml = yaml
        self.state = "queued"
        self.process: asyncio.subprocess.Process | None = None
        self.cancelled = False


async def misbehave_mid_build(hostile: str | None, job: Job) -> None:
    """Do the hostile thing a receiver may do while a job runs."""
    session = job.session
    match hostile:
        case "text_frame":
            await session.ws.send_str("not binary")
        case "oversize_frame":
            await session.ws.send_bytes(bytes(61 * 1024))
        case "garbage_frame":
            await session.ws.send_bytes(os.urandom(64))
        case "not_json_frame":
            await session.send_plain(b"\x00\x01 not json")
        case "array_frame":
            await session.send_plain(b"[1, 2, 3]")
        case "untyped_frame":
            await session.send_plain(b'{"job_id": "x"}')
        case "unsolicited_artifacts":
            await session.send(
                {
                    "type": "artifacts_start",
                    "job_id": job.job_id,
                    "total_bytes": 1,
                    "num_chunks": 1,
                    "artifacts_sha256": "0" * 64,
                    "firmware_offset": "0x0",
                }
            )
        case "noise_for_others":
            await session.send({"type": "future_feature", "value": 1})
            await session.send({"type": "job_output", "job_id": "old", "line": "x\n"})
        case "peer_cancels":
            job.cancelled = True
            if job.process is not None:
                os.killpg(job.process.pid, signal.SIGTERM)
        case "terminate_mid_build":
            await session.send({"type": "terminate", "reason": "server_shutting_down"})
            await session.ws.close()
        case _:
            pass


async def stream_artifacts(hostile: str | None, session: Session, job_id: str, data: bytes) -> None:
    """Send `data` as an artifact stream (start, chunks, end), hostile when asked."""
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    sha = hashlib.sha256(data).hexdigest()
    total = len(data)
    if hostile == "sha_mismatch":
        sha = hashlib.sha256(b"other").hexdigest()
    if hostile == "oversize_announce":
        total = 65 * 1024 * 1024
    if hostile == "extra_bytes":
        chunks[-1] += b"extra"
    await session.send(
        {
            "type": "artifacts_start",
            "job_id": job_id,
            "total_bytes": total,
            "num_chunks": len(chunks),
            "artifacts_sha256": sha,
            "firmware_offset": "0x0",
        }
    )
    order = list(range(len(chunks)))
    if hostile == "chunk_out_of_order":
        order = [*order[1:], 0] if len(order) > 1 else [1]
    for index in order:
        chunk = chunks[index % len(chunks)]
        encoded = (
            "!!not base64!!" if hostile == "chunk_not_base64" else base64.b64encode(chunk).decode()
        )
        await session.send(
            {
                "type": "artifacts_chunk",
                "job_id": job_id,
                "chunk_index": index,
                "data_b64": encoded,
                "is_last": index == len(chunks) - 1,
            }
        )
    await session.send({"type": "artifacts_end", "job_id": job_id, "accepted": True})
