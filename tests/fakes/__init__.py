"""Test doubles shared by every test: the fake ESPHome CLI and a helper to drive it.

`fake_cli()` is an `EsphomeCli` that runs `tests/fakes/fake_esphome.py` as a real subprocess.
`FakeEsphome(config_dir)` writes device YAML files, sets per-configuration behaviour
(`.fake_esphome.json`), releases processes blocked on `wait_for_file`, and reads back what the
fake did (`.fake_esphome_calls.jsonl`, `.fake_esphome_flashed.jsonl`).

Synchronising: a fake writes its `start` event before it waits or prints anything, so
`await fake.wait_for_call("start", subcommand="compile")` returns once the process runs. With
`behave(..., wait_for_file="go-a")` it then blocks until `fake.release("go-a")`. The helper
methods do blocking file I/O; that is fine in test code (the blocking guard only fires with
integration code on the stack).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
import shlex
import sys
from typing import Any

from custom_components.esphome_pipeline.engine.esphome_cli import EsphomeCli

FAKE_ESPHOME_SCRIPT = Path(__file__).with_name("fake_esphome.py")
FAKE_VERSION = "2026.10.0"
BEHAVIOUR_FILE = ".fake_esphome.json"
CALLS_FILE = ".fake_esphome_calls.jsonl"
FLASHED_FILE = ".fake_esphome_flashed.jsonl"
CONFIG_DIR_ENV = "FAKE_ESPHOME_CONFIG_DIR"
"""Where `version` (which has no configuration) reads behaviour and logs calls."""


FAKE_COMMAND: tuple[str, ...] = (sys.executable, "-S", str(FAKE_ESPHOME_SCRIPT))
"""The fake's argv prefix. `-S` skips site-packages: the fake needs only the standard
library, starts faster, and pytest-cov's start-up hook does not run in it (a child measured
without the project's coverage settings breaks `--cov` with "Can't combine statement
coverage data with branch data")."""


def fake_command_line() -> str:
    """Return the shell-quoted command line that runs the fake CLI."""
    return shlex.join(FAKE_COMMAND)


def fake_cli() -> EsphomeCli:
    """Return an EsphomeCli that runs the fake."""
    return EsphomeCli(FAKE_COMMAND)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    # A line being appended by a running fake may be incomplete; it ends without "\n".
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


class FakeEsphome:
    """A config folder the fake CLI works in, with its knobs and its records."""

    def __init__(self, config_dir: Path) -> None:
        """Bind to `config_dir` (created if missing)."""
        self.config_dir = config_dir
        config_dir.mkdir(parents=True, exist_ok=True)

    def add_config(
        self,
        configuration: str,
        *,
        name: str | None = None,
        friendly_name: str | None = None,
        extra: str = "",
    ) -> str:
        """Write a device YAML with an `esphome:` block; return its file name.

        `configuration` may omit `.yaml`. The device name defaults to the file stem.
        """
        if not configuration.endswith((".yaml", ".yml")):
            configuration += ".yaml"
        stem = configuration.rsplit(".", 1)[0]
        lines = ["esphome:", f"  name: {name or stem}"]
        if friendly_name:
            lines.append(f"  friendly_name: {friendly_name}")
        lines += ["", "esp32:", "  board: esp32dev", "", "ota:", "  - platform: esphome", ""]
        text = "\n".join(lines) + (extra if extra.endswith("\n") or not extra else extra + "\n")
        (self.config_dir / configuration).write_text(text, encoding="utf-8")
        return configuration

    def behave(self, configuration: str, subcommand: str, **behaviour: Any) -> None:
        """Merge behaviour for `configuration` ('default' for all) and `subcommand`."""
        path = self.config_dir / BEHAVIOUR_FILE
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            table = {}
        table.setdefault(configuration, {}).setdefault(subcommand, {}).update(behaviour)
        # Write then rename, so a fake starting now never reads half a file.
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(table, indent=2), encoding="utf-8")
        temporary.replace(path)

    def release(self, relative_path: str) -> None:
        """Create the file a `wait_for_file` behaviour waits for."""
        target = self.config_dir / relative_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()

    def calls(
        self,
        event: str | None = None,
        subcommand: str | None = None,
        configuration: str | None = None,
    ) -> list[dict[str, Any]]:
        """Return recorded events, oldest first, optionally filtered."""
        return [
            call
            for call in _read_jsonl(self.config_dir / CALLS_FILE)
            if (event is None or call["event"] == event)
            and (subcommand is None or call["subcommand"] == subcommand)
            and (configuration is None or call["configuration"] == configuration)
        ]

    def flashed(self) -> list[dict[str, Any]]:
        """Return completed uploads in order: configuration, name, port, firmware, sha256."""
        return _read_jsonl(self.config_dir / FLASHED_FILE)

    async def wait_for_call(
        self,
        event: str,
        subcommand: str | None = None,
        configuration: str | None = None,
        *,
        count: int = 1,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Wait until at least `count` matching events were recorded; return them.

        Polls the calls file (the fake is another process, so there is nothing to await);
        raises TimeoutError after `timeout` seconds.
        """
        async with asyncio.timeout(timeout):
            while True:
                found = self.calls(event, subcommand, configuration)
                if len(found) >= count:
                    return found
                await asyncio.sleep(0.02)

    def firmware_path(self, name: str) -> Path:
        """Return where compile writes the image of device `name`."""
        return self.config_dir / ".esphome" / "build" / name / ".pioenvs" / name / "firmware.bin"

    def build_info_path(self, name: str) -> Path:
        """Return the build_info.json of device `name`."""
        return self.config_dir / ".esphome" / "build" / name / "build_info.json"

    def storage_path(self, configuration: str) -> Path:
        """Return the StorageJSON file of a configuration."""
        return self.config_dir / ".esphome" / "storage" / f"{configuration}.json"
