"""Benchmark: the transfer rate of a 64 MiB artifact over the real peer-link framing.

A test receiver (`tests/fakes/test_receiver.py`: real aiohttp server on 127.0.0.1, real
Noise XX handshake, ChaCha20-Poly1305 frames, base64 chunks of 32 KiB in JSON, exactly the
framing of Device Builder's receiver) runs in its own process, as a peer is another machine;
it runs one fake compile and then serves 64 MiB of incompressible bytes as its artifacts.
The script times `PeerLink.download_artifacts` (all frames decrypted, parsed, checked, hashed
and written to a staging file) and prints the rate and the target (at least 50 MB/s). It
exits 1 below the target.

Then, with the real ESPHome Device Builder receiver from `.venv-peer`: the time from submit to
compile-completed of a `host:` configuration on the receiver, next to the same compile run
locally with the real ESPHome CLI (both cold, each in a fresh folder). Printed, no target.
`--transfer-only` skips this part.

Not measured here yet: the makespan of 24 configurations with 0, 1 and 3 peers (that needs
the scheduler inside the engine).

Run: `.venv/bin/python benchmarks/remote.py [--transfer-only]`
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
import sys
import tempfile
import time
from typing import Final

# Runnable as a plain script from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from custom_components.esphome_pipeline.engine.peer.client import (
    PeerLink,
    dashboard_id_for,
    pair,
)
from custom_components.esphome_pipeline.engine.peer.identity import PeerIdentity
from custom_components.esphome_pipeline.engine.peer.wire import MAX_ARTIFACT_BYTES
from script.devkit import ESPHOME_CLI
from tests.fakes import FAKE_COMMAND, FakeEsphome
from tests.fakes.peer_pairing import paired_link
from tests.fakes.real_receiver import RealReceiver

ARTIFACT_BYTES: Final = MAX_ARTIFACT_BYTES
RATE_TARGET_MB_S: Final = 50.0
ROUNDS: Final = int(os.environ.get("BENCH_ROUNDS", "3"))


async def start_receiver(folder: Path) -> tuple[asyncio.subprocess.Process, int, str, str]:
    """Run a test receiver process; return it with its port, pin and pairing key."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.test_receiver",
        str(folder),
        "0",
        "--artifact-bytes",
        str(ARTIFACT_BYTES),
        *FAKE_COMMAND,
        cwd=Path(__file__).resolve().parent.parent,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    words = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().split()
    assert words[:1] == ["LISTENING"], words
    return process, int(words[1].rsplit(":", 1)[1]), words[3], words[5]


async def measure(root: Path) -> float:
    """Return the best transfer rate in MB/s over a few rounds."""
    config = FakeEsphome(root / "config")
    config.add_config("dev1")
    receiver, port, pin, key = await start_receiver(root / "receiver")
    identity = PeerIdentity.generate()
    link = PeerLink(
        host="127.0.0.1",
        port=port,
        identity=identity,
        pin=pin,
        dashboard_id=dashboard_id_for(identity),
        label="benchmark",
    )
    try:
        await pair("127.0.0.1", port, identity, pairing_key=key, expected_pin=pin, label="bench")
        link.start()
        await link.wait_for(lambda status: status.available, 30)
        bundle = root / "bundle.tar.gz"
        process = await asyncio.create_subprocess_exec(
            *FAKE_COMMAND,
            "bundle",
            str(config.config_dir / "dev1.yaml"),
            "-o",
            str(bundle),
            stdout=asyncio.subprocess.DEVNULL,
        )
        await process.wait()
        result = await link.submit_compile("dev1.yaml", bundle, job_id="benchmark")
        assert result.state == "completed", result
        best = 0.0
        for round_number in range(ROUNDS):
            target = root / f"artifacts-{round_number}.tar.gz"
            started = time.perf_counter()
            downloaded = await link.download_artifacts("benchmark", target)
            elapsed = time.perf_counter() - started
            assert downloaded.size == ARTIFACT_BYTES
            rate = downloaded.size / elapsed / 1e6
            print(
                f"round {round_number + 1}: {downloaded.size / 2**20:.0f} MiB in "
                f"{elapsed:.2f} s = {rate:.1f} MB/s"
            )
            best = max(best, rate)
            target.unlink()
        return best
    finally:
        await link.close()
        receiver.terminate()
        await receiver.wait()


HOST_CONFIG: Final = "esphome:\n  name: bench-host\nhost:\nlogger:\n"


async def real_receiver_versus_local(root: Path) -> tuple[float, float]:
    """Return (submit to completed on the real receiver, local compile) in seconds."""
    receiver = await RealReceiver.start(root / "receiver")
    try:
        link = await paired_link(receiver, "benchmark")
    except BaseException:
        await receiver.stop()
        raise
    try:
        remote_dir = root / "remote"
        remote_dir.mkdir()
        (remote_dir / "bench-host.yaml").write_text(HOST_CONFIG)
        bundle = root / "bundle.tar.gz"
        await run_quietly(
            str(ESPHOME_CLI), "bundle", str(remote_dir / "bench-host.yaml"), "-o", str(bundle)
        )
        started = time.perf_counter()
        result = await link.submit_compile("bench-host.yaml", bundle)
        remote_seconds = time.perf_counter() - started
        assert result.state == "completed", result
    finally:
        await link.close()
        await receiver.stop()
    local_dir = root / "local"
    local_dir.mkdir()
    (local_dir / "bench-host.yaml").write_text(HOST_CONFIG)
    started = time.perf_counter()
    assert await run_quietly(str(ESPHOME_CLI), "compile", str(local_dir / "bench-host.yaml")) == 0
    return remote_seconds, time.perf_counter() - started


async def run_quietly(*argv: str) -> int:
    """Run a command with its output discarded; return its exit code."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await process.wait()


def main() -> int:
    """Run the measurements and compare the transfer rate with its target."""
    with tempfile.TemporaryDirectory() as folder:
        rate = asyncio.run(measure(Path(folder)))
    print(f"artifact transfer over the peer link: {rate:.1f} MB/s (target >= {RATE_TARGET_MB_S})")
    if "--transfer-only" not in sys.argv:
        with tempfile.TemporaryDirectory() as folder:
            remote, local = asyncio.run(real_receiver_versus_local(Path(folder)))
        print(f"host: compile, submit to completed on the real receiver: {remote:.1f} s")
        print(f"host: compile, the same compile run locally:            {local:.1f} s")
    return 0 if rate >= RATE_TARGET_MB_S else 1


if __name__ == "__main__":
    sys.exit(main())
