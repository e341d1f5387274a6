"""A whole demo site in a folder of its own: Home Assistant, ESPHome Pipeline, running devices.

Used where a throw-away site is needed (the end-to-end tests and `benchmarks/real_bulk.py`);
`script/develop` builds its long-lived one in `dev/` with the same pieces. Everything goes
through the front door: a login made by `hass --script auth`, a token from the REST login
flow, the entry created through the config-flow API with the real ESPHome CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
import os
from pathlib import Path
import random
import signal

import aiohttp

from . import ESPHOME_CLI
from .api import connect, create_entry, fetch_token
from .demo import (
    DemoDevice,
    DeviceProcess,
    build_time_str,
    compile_configuration,
    demo_devices,
    port_is_free,
    write_configuration,
    write_demo_folder,
)
from .hass import HassProcess, add_user, write_configuration as write_hass_configuration

USERNAME = "e2e"
PASSWORD = "e2e-password"  # noqa: S105 - a throw-away login on a loopback-only instance


def free_port_block(size: int) -> int:
    """A random high base port such that `base .. base + size - 1` are all free."""
    rng = random.Random()  # noqa: S311 - spreads port choices, nothing secret
    for _ in range(200):
        base = rng.randrange(20000, 60000 - size)
        if all(port_is_free(port) for port in range(base, base + size)):
            return base
    raise RuntimeError("no free block of loopback ports")


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose command line contains `text`."""
    found: list[tuple[int, str]] = []
    own = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        if text in command and state != "Z":
            found.append((int(entry.name), command))
    return found


@dataclass(kw_only=True, slots=True)
class Site:
    """A Home Assistant with ESPHome Pipeline and its demo devices, all under `root`."""

    root: Path
    config_dir: Path
    folder: Path
    hass: HassProcess
    devices: dict[str, DeviceProcess]
    token: str = ""
    entry_id: str = ""
    revisions: dict[str, int] = field(default_factory=dict)

    @classmethod
    def prepare(cls, root: Path, *, device_count: int) -> Site:
        """Write both folders and the login, and compile every device once (cold)."""
        config_dir = root / "config"
        folder = config_dir / "esphome"
        base = free_port_block(1 + 2 * device_count)
        devices = demo_devices(device_count, api_base=base + 1, ota_base=base + 1 + device_count)
        write_hass_configuration(config_dir, port=base, name="ESPHome Pipeline demo site")
        write_demo_folder(folder, devices, overwrite=True)
        add_user(config_dir, USERNAME, PASSWORD)
        with (root / "first-compiles.log").open("wb") as log:
            for device in devices:
                compile_configuration(folder, device, log=log)
        return cls(
            root=root,
            config_dir=config_dir,
            folder=folder,
            hass=HassProcess(config_dir, port=base),
            devices={
                device.configuration: DeviceProcess(
                    device, folder=folder, run_dir=root / "devices" / device.name
                )
                for device in devices
            },
        )

    def start(self) -> None:
        """Start the devices and Home Assistant; create the entry through the config flow."""
        for process in self.devices.values():
            process.start()
        self.start_hass()
        asyncio.run(self._create_entry())

    def stop(self) -> None:
        """Stop Home Assistant, the devices and any ESPHome process left on the folder."""
        self.hass.stop()
        for process in self.devices.values():
            process.stop()
        for pid, _command in self.esphome_processes():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    async def _create_entry(self) -> None:
        await self.login()
        async with aiohttp.ClientSession() as session:
            entry = await create_entry(
                session,
                self.base_url,
                self.token,
                config_dir=str(self.folder),
                esphome_command=str(ESPHOME_CLI),
            )
        self.entry_id = str(entry["entry_id"])
        async with connect(self.base_url, self.token) as ws:
            await ws.wait_entry_loaded(self.entry_id)

    @property
    def base_url(self) -> str:
        """Home Assistant's URL."""
        return self.hass.base_url

    @property
    def hass_log(self) -> Path:
        """Home Assistant's console output."""
        return self.root / "hass.log"

    def configurations(self) -> list[str]:
        """Every demo configuration name."""
        return list(self.devices)

    def demo(self, configuration: str) -> DemoDevice:
        """The demo device behind a configuration."""
        return self.devices[configuration].device

    def bump(self, configuration: str) -> None:
        """Change the configuration's firmware (a new revision): the next compile rebuilds."""
        self.revisions[configuration] = self.revisions.get(configuration, 1) + 1
        write_configuration(
            self.folder, self.demo(configuration), revision=self.revisions[configuration]
        )

    def build_time(self, configuration: str) -> str:
        """`build_time_str` of the configuration's current build."""
        return build_time_str(self.folder, self.demo(configuration))

    def start_hass(self) -> None:
        """Start Home Assistant (its console output appended to `hass_log`)."""
        with self.hass_log.open("ab") as log:
            self.hass.start(log=log)

    async def login(self) -> None:
        """Get a fresh token through the REST login flow."""
        async with aiohttp.ClientSession() as session:
            self.token = await fetch_token(session, self.base_url, USERNAME, PASSWORD)

    async def restart(self, sig: signal.Signals) -> None:
        """Stop Home Assistant with `sig` (SIGKILL: as after a crash), start it, log in again,
        and return once the entry is loaded again."""
        await asyncio.to_thread(self.hass.stop, sig)
        await asyncio.to_thread(self.start_hass)
        await self.login()
        async with connect(self.base_url, self.token) as ws:
            await ws.wait_entry_loaded(self.entry_id)

    def esphome_processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process working on this site's ESPHome folder."""
        return processes_mentioning(str(self.folder))
