"""A malicious receiver that speaks the real handshake: every trick is a clear error on the job.

For each case a remote compile runs against `PeerReceiver(hostile=case)`: a hostile artifact
tarball (links, devices, traversal, lying sizes, bad JSON, bad names, missing parts, broken
gzip) or a hostile frame (not binary, too big, forged, not JSON, untyped, wrong field types,
unknown job, unsolicited artifacts, wrong hash, chunks out of order, oversize announcement,
bad base64, extra bytes, a terminate mid-build). Nothing may be written outside the job's
staging folder, nothing may crash, and the job must fail with a message naming the problem.
The link recovers: it opens a new session afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from custom_components.esphome_pipeline.engine.lanes import RunningJob
from custom_components.esphome_pipeline.engine.models import JobStatus
from tests.fakes import CALLS_FILE, FakeEsphome
from tests.fakes.artifact_tarballs import HOSTILE_TARBALLS
from tests.fakes.test_receiver import HOSTILE_WIRE

from .conftest import WAIT, LinkFactory, ReceiverFactory
from .test_remote_compile import RecordingSink, Remote, compile_job

WIRE_CASES = [case for case in HOSTILE_WIRE if not case.startswith("handshake")]
EXPECTED_KIND = {
    **dict.fromkeys(HOSTILE_TARBALLS, "artifacts_invalid"),
    **dict.fromkeys(WIRE_CASES, "protocol"),
    "terminate_mid_build": "peer_lost",
}
MESSAGES = {
    "symlink": "is a symbolic link",
    "hardlink": "is a hard link",
    "absolute_path": "absolute",
    "dot_dot": "leaves its folder",
    "nested_dot_dot": "leaves its folder",
    "device": "is a device",
    "fifo": "is a fifo",
    "folder_as_firmware": "is a folder",
    "declared_oversize": "declares 68157440 bytes",
    "total_oversize": "more than 67108864 bytes in total",
    "storage_not_json": "storage.json' is not valid JSON",
    "storage_array": "storage.json' is not a JSON object",
    "build_info_string": "build_info.json' is not a JSON object",
    "unsafe_name": "unusable device name",
    "no_storage": "lack storage.json",
    "no_firmware": "lack the firmware",
    "firmware_escapes": "leaves the build folder",
    "firmware_outside": "outside the build folder",
    "duplicate": "twice",
    "file_and_folder": "both a file and a folder",
    "backslash": "forbidden name",
    "not_gzip": "not a valid gzip tar",
    "truncated": "not a valid gzip tar",
    "empty": "are empty",
    "pax_bomb": "unpack to more than",
    "text_frame": "TEXT frame, not binary",
    "oversize_frame": "larger than 61440 bytes",
    "garbage_frame": "failed Noise authentication",
    "not_json_frame": "not JSON",
    "array_frame": "not a JSON object",
    "untyped_frame": "without a message type",
    "bad_state": "unknown job state 'exploded'",
    "bad_output": "field 'line' must be a string",
    "unknown_ack": "acknowledged a job that was never sent",
    "bad_queue_status": "field 'queue_depth' must be a whole number",
    "unsolicited_artifacts": "artifacts nobody asked for",
    "sha_mismatch": "do not match the SHA-256",
    "chunk_out_of_order": "chunk 0 was due",
    "oversize_announce": "the limit is 67108864",
    "chunk_not_base64": "not base64",
    "extra_bytes": "more artifact bytes than it announced",
    "terminate_mid_build": "ended the link (server_shutting_down)",
}
assert len(EXPECTED_KIND) >= 25


def files_under(root: Path) -> set[Path]:
    return {path.relative_to(root) for path in root.rglob("*")}


@pytest.mark.parametrize("case", sorted(EXPECTED_KIND))
async def test_hostile_receiver(
    case: str, tmp_path: Path, make_receiver: ReceiverFactory, make_link: LinkFactory
) -> None:
    config = FakeEsphome(tmp_path / "config")
    config.add_config("dev1")
    receiver = await make_receiver(hostile=case)
    link = await make_link(receiver)
    await link.wait_for(lambda s: s.connected and s.idle, WAIT)
    before = files_under(config.config_dir)
    remote = Remote(config, receiver, link)
    result = await remote.executor.run_remote(RunningJob(compile_job()), RecordingSink())

    assert result.outcome.status is JobStatus.FAILED
    assert result.kind == EXPECTED_KIND[case], result.outcome.error
    assert MESSAGES[case] in (result.outcome.error or ""), result.outcome.error
    assert "Test HA" in (result.outcome.error or "")
    # Nothing outside the (now removed) staging folder changed on our side.
    allowed = {Path(CALLS_FILE), Path(".esphome"), Path(".esphome/.pipeline-remote")}
    assert files_under(config.config_dir) - before <= allowed
    assert not any(path.name == "evil" for path in tmp_path.rglob("*"))
    assert not Path("/evil").exists()
    # The link lives on: a session is (or becomes) open again.
    await link.wait_for(lambda s: s.connected, WAIT)
