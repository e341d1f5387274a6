"""A stand-in for Home Assistant: a `FirmwareEngine` in a process of its own, to be killed.

Run from the repository root as
`python -m tests.fakes.engine_host <config_dir> <store_path> install <configuration>...`
(`install-force` instead of `install`: queued with `force`): it loads the engine on the file
store (with the fake ESPHome CLI), queues an install chain per configuration, prints the
chains as one JSON line (`[{"compile": id, "upload": id}]`) and runs until it is killed. A
test SIGKILLs it to leave the jobs' processes behind exactly as a crashed Home Assistant
would, then restores the same store in-process.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
import sys

from custom_components.esphome_pipeline.engine.firmware import FirmwareEngine
from custom_components.esphome_pipeline.engine.persistence import FileJobStore
from tests.fakes import fake_cli


async def host(
    config_dir: Path, store_path: Path, configurations: list[str], *, force: bool = False
) -> None:
    """Run the engine with an install of `configurations` queued; never returns."""
    engine = FirmwareEngine(config_dir=config_dir, cli=fake_cli(), store=FileJobStore(store_path))
    await engine.load()
    running = asyncio.get_running_loop().create_task(engine.run())
    chains = await engine.install(configurations, force=force)
    print(
        json.dumps([{"compile": c.compile.job_id, "upload": c.upload.job_id} for c in chains]),
        flush=True,
    )
    await running


def main(argv: list[str]) -> int:
    """Parse `<config_dir> <store_path> install[-force] <configuration>...` and host the engine."""
    if len(argv) < 4 or argv[2] not in ("install", "install-force"):
        sys.stderr.write(__doc__ or "")
        return 2
    asyncio.run(host(Path(argv[0]), Path(argv[1]), argv[3:], force=argv[2] == "install-force"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
