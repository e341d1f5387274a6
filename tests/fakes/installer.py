"""The fake interpreter of the installer tests, and a handle to steer and read it.

`FakeInstaller(root)` writes `<root>/base/bin/python3`, a shell wrapper that runs
`fake_installer.py` as the interpreter environments are made from; point an
`EsphomeProvisioner` (or `find_installer`) at `fake.python`. `behave(...)` sets what the fake
tools do, `calls()` reads what they were asked, `release(name)` unblocks an install that waits
for a file. The helpers do blocking file I/O, which is fine in test code.

`use_fake_installer(hass, root)` makes Home Assistant's provisioner build from the fake, into
`<root>/config/.esphome_pipeline` (the test Home Assistant's own config folder is shared).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
import shlex
import sys
from typing import Any

from homeassistant.core import HomeAssistant

from custom_components.esphome_pipeline.provision.layout import ROOT_DIR_NAME
from custom_components.esphome_pipeline.provision.manager import (
    PROVISIONER_KEY,
    EsphomeProvisioner,
)

FAKE_INSTALLER_SCRIPT = Path(__file__).with_name("fake_installer.py")


class FakeInstaller:
    """A fake base interpreter under `root`, its knobs and its records."""

    def __init__(self, root: Path) -> None:
        """Write the wrapper and an empty control folder under `root`."""
        self.root = root
        self.control = root / "control"
        self.control.mkdir(parents=True, exist_ok=True)
        base = root / "base" / "bin" / "python3"
        base.parent.mkdir(parents=True, exist_ok=True)
        words = [sys.executable, "-S", str(FAKE_INSTALLER_SCRIPT), str(self.control)]
        base.write_text(f'#!/bin/sh\nexec {shlex.join(words)} base "$0" "$@"\n', encoding="utf-8")
        base.chmod(0o755)
        self.python = str(base)

    def behave(self, **behaviour: Any) -> None:
        """Merge `behaviour` into what the fake tools do from now on."""
        path = self.control / "behaviour.json"
        current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        current.update(behaviour)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(current), encoding="utf-8")
        temporary.replace(path)

    def calls(self, event: str | None = "start") -> list[dict[str, Any]]:
        """Every recorded run (by default their `start` events), oldest first."""
        path = self.control / "calls.jsonl"
        if not path.exists():
            return []
        records = [
            json.loads(line)
            for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
            if line.endswith("\n")
        ]
        return [record for record in records if event is None or record["event"] == event]

    def commands(self) -> list[str]:
        """What each run was asked, as `role: args` lines (for readable assertions)."""
        return [f"{call['role']}: {' '.join(call['argv'])}" for call in self.calls()]

    def release(self, name: str) -> None:
        """Create the file an install waiting with `install_wait_for=name` waits for."""
        (self.control / name).touch()

    async def wait_for(self, event: str, *, timeout: float = 30.0) -> None:
        """Wait until a run recorded `event` (polling the log of another process)."""
        async with asyncio.timeout(timeout):
            while not self.calls(event):
                await asyncio.sleep(0.02)


def use_fake_installer(hass: HomeAssistant, root: Path) -> tuple[FakeInstaller, EsphomeProvisioner]:
    """Give `hass` a provisioner that builds from a fake interpreter under `root`."""
    fake = FakeInstaller(root / "installer")
    provisioner = EsphomeProvisioner(hass, python=fake.python, root=root / "config" / ROOT_DIR_NAME)
    hass.data[PROVISIONER_KEY] = provisioner
    return fake, provisioner
