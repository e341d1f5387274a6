"""The per-job and per-download rules of the link, frame by frame."""

from __future__ import annotations

import base64
import hashlib

import pytest

from custom_components.esphome_pipeline.engine.peer.remote_jobs import (
    ArtifactDownload,
    ArtifactsUnavailableError,
    RemoteJob,
    RemoteJobRefusedError,
    bundle_frames,
)
from custom_components.esphome_pipeline.engine.peer.wire import (
    CHUNK_BYTES,
    PeerLostError,
    PeerProtocolError,
    field_bool,
    field_int,
)


async def test_job_rules() -> None:
    lines: list[tuple[str, bool]] = []
    progress: list[int] = []
    job = RemoteJob("j", lambda text, again: lines.append((text, again)), progress.append)
    with pytest.raises(PeerProtocolError, match="before accepting it"):
        job.on_state({"status": "running"})
    job.on_ack({"accepted": True})
    with pytest.raises(PeerProtocolError, match="twice"):
        job.on_ack({"accepted": True})
    job.on_output({"line": "Uploading: [==  ] 40% \r"})
    job.on_output({"line": "[10/20] Compiling x\n"})
    job.on_output({"line": "tail without newline"})
    job.on_state({"status": "completed"})
    assert ("tail without newline", False) in lines
    assert progress == [40, 50]
    result = await job.result
    assert result.state == "completed"
    assert result.error is None
    # Late frames after the end change nothing.
    job.on_output({"line": "late\n"})
    job.on_state({"status": "failed"})
    assert (await job.result).state == "completed"


async def test_refused_and_failed_jobs() -> None:
    refused = RemoteJob("r", None, None)
    refused.on_ack({"accepted": False, "reason": "busy"})
    with pytest.raises(RemoteJobRefusedError, match="busy"):
        await refused.result
    lost = RemoteJob("l", None, None)
    lost.fail(PeerLostError("gone"))
    with pytest.raises(PeerLostError):
        await lost.acknowledged
    failed = RemoteJob("f", None, None)
    failed.on_ack({"accepted": True})
    failed.on_state({"status": "failed", "error_message": "boom", "failure_reason": "provision"})
    result = await failed.result
    assert result.error == "boom"
    assert result.failure_reason == "provision"


def start(data: bytes, **changes: object) -> dict[str, object]:
    frame: dict[str, object] = {
        "total_bytes": len(data),
        "num_chunks": 1,
        "artifacts_sha256": hashlib.sha256(data).hexdigest(),
        "firmware_offset": "0x10000",
    }
    frame.update(changes)
    return frame


def chunk(data: bytes, index: int = 0, *, last: bool = True) -> dict[str, object]:
    return {"chunk_index": index, "data_b64": base64.b64encode(data).decode(), "is_last": last}


async def test_download_rules() -> None:
    download = ArtifactDownload("j")
    with pytest.raises(PeerProtocolError, match="before its header"):
        download.on_chunk(chunk(b"x"))
    with pytest.raises(PeerProtocolError, match="no SHA-256"):
        download.on_start(start(b"abc", artifacts_sha256="xyz"))
    with pytest.raises(PeerProtocolError, match="3 chunks for 2 bytes"):
        ArtifactDownload("k").on_start(start(b"ab", num_chunks=3))
    with pytest.raises(PeerProtocolError, match="whole number"):
        ArtifactDownload("k").on_start(start(b"ab", total_bytes=True))
    download.on_start(start(b"abc", num_chunks=2))
    with pytest.raises(PeerProtocolError, match="twice"):
        download.on_start(start(b"abc"))
    with pytest.raises(PeerProtocolError, match="does not add up"):
        download.on_chunk(chunk(b"a", 0, last=True))
    with pytest.raises(PeerProtocolError, match="before its last chunk"):
        download.on_end({"accepted": True})


async def test_download_short_stream_and_refusal() -> None:
    short = ArtifactDownload("s")
    short.on_start(
        start(b"abcd", num_chunks=1, artifacts_sha256=hashlib.sha256(b"abcd").hexdigest())
    )
    short.on_chunk(chunk(b"ab"))
    with pytest.raises(PeerProtocolError, match="not the 4"):
        short.on_end({"accepted": True})
    refused = ArtifactDownload("r")
    refused.on_end({"accepted": False})
    with pytest.raises(ArtifactsUnavailableError, match=r"\(unknown\)$"):
        await refused.done
    good = ArtifactDownload("g")
    good.on_start(start(b"abc"))
    good.on_chunk(chunk(b"abc"))
    good.on_end({"accepted": True})
    received = await good.wait()
    assert bytes(received.data) == b"abc"
    assert received.firmware_offset == "0x10000"


async def test_a_stalled_download() -> None:
    download = ArtifactDownload("j")
    with pytest.raises(PeerProtocolError, match="stalled"):
        await download.wait(idle_timeout=0.01)


def test_bundle_frames_and_fields() -> None:
    frames = bundle_frames("j", "a.yaml", b"x" * (CHUNK_BYTES + 1), "dev", "2026.10.0")
    header, first, second = frames
    assert header["num_chunks"] == 2
    assert header["device_name"] == "dev"
    assert header["target_esphome_version"] == "2026.10.0"
    assert (first["is_last"], second["is_last"]) == (False, True)
    with pytest.raises(PeerProtocolError, match="true or false"):
        field_bool({"type": "x", "a": 1}, "a")
    with pytest.raises(PeerProtocolError, match="'x' frame"):
        field_int({"type": "x", "a": -1}, "a")
