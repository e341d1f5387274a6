"""A fake ESPHome device that takes what the fake CLI flashes, for the upload proof's tests.

`FakeNativeDevice` is the native API fake of `native_api_device.py` (real TCP on 127.0.0.1,
aioesphomeapi's plaintext frames, so the engine's proof runs the real `wait_for_build` against
it) tied to one configuration of a fake ESPHome folder:

- with `follow_flashes` it takes the build of its configuration whenever the fake CLI
  "flashed" it (a new record in `.fake_esphome_flashed.jsonl`): it comes back with
  `build_info.json`'s `build_time_str`, as a device that took the image. Without it the device
  restarts into the build it ran (the proof must fail);
- `write_api_config()` writes the validated configuration ESPHome keeps, so the engine finds
  the device's API port at 127.0.0.1.

`stop()` closes the listener and every connection (the device is offline); `start()` brings
it back on the same port.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from .fake_esphome import FLASHED_FILE
from .native_api_device import FakeNativeApiDevice

ESPHOME_VERSION = "2026.10.0"


class FakeNativeDevice(FakeNativeApiDevice):
    """One device of a fake ESPHome folder: its name, the build it runs, online after start."""

    def __init__(
        self,
        config_dir: Path,
        configuration: str,
        *,
        name: str,
        compilation_time: str = "2026-01-01 00:00:00 +0000",
        follow_flashes: bool = True,
    ) -> None:
        """Describe the device; it is offline until `start()`."""
        super().__init__(
            name=name, esphome_version=ESPHOME_VERSION, compilation_time=compilation_time
        )
        self.config_dir = config_dir
        self.configuration = configuration
        self.follow_flashes = follow_flashes
        self._flashes_seen = 0

    def write_api_config(self) -> None:
        """Write the validated configuration ESPHome keeps: an `api:` on this device's port,
        reached at 127.0.0.1 (`use_address`). Blocking: call from test code."""
        storage = self.config_dir / ".esphome" / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "config": {
                "api": {"port": self.port},
                "wifi": {"use_address": "127.0.0.1"},
            }
        }
        (storage / f"{self.configuration}.validated.json").write_text(json.dumps(config))

    async def before_answer(self) -> None:
        """Take the build the fake CLI flashed since the last question (`follow_flashes`)."""
        if not self.follow_flashes:
            return
        flashed, build_time = await asyncio.to_thread(self._flash_records)
        if flashed > self._flashes_seen and build_time is not None:
            self._flashes_seen = flashed
            self.compilation_time = build_time

    def _flash_records(self) -> tuple[int, str | None]:
        try:
            lines = (self.config_dir / FLASHED_FILE).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return 0, None
        mine = [line for line in lines if json.loads(line)["configuration"] == self.configuration]
        info_path = self.config_dir / ".esphome" / "build" / self.name / "build_info.json"
        try:
            build_time = json.loads(info_path.read_text(encoding="utf-8"))["build_time_str"]
        except (FileNotFoundError, ValueError, KeyError):
            build_time = None
        return len(mine), build_time
