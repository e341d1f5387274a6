"""Demo ESPHome devices: `host:` configurations, the real ESPHome CLI, and the device programs.

The ESPHome `host:` platform compiles offline into a Linux program that is a real ESPHome
device: it serves the native API and accepts a real ESPHome OTA upload. On an OTA it writes the
new image over the file it was started from and re-executes it in place (same pid, same ports;
measured: it answers on its native API with the new `compilation_time` right after the upload
reports success). So a device needs no supervisor restart after an OTA, but it must run from a
copy of its program of its own: started from the build output, an OTA would overwrite the build.

Each device also gets its own HOME, because a host program keeps its preferences (the safe-mode
boot counter among them) in `~/.esphome/prefs/<name>.prefs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import json
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import time
from typing import IO

from aioesphomeapi.client import APIClient

from . import ESPHOME_CLI

OTA_RECEIVED_MARKER = "OTA staged at"
"""Printed by a host device once per OTA image it accepted."""

DEVICE_STOP_GRACE = 5.0
"""Seconds a device gets to stop after SIGTERM (measured: 2 to 3 s) before SIGKILL."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoDevice:
    """One demo `host:` configuration and the loopback ports its program listens on."""

    name: str
    friendly_name: str
    api_port: int
    ota_port: int

    @property
    def configuration(self) -> str:
        """The YAML file name, relative to the configuration folder."""
        return f"{self.name}.yaml"


DEMO_NAMES: tuple[tuple[str, str], ...] = (
    ("kitchen-light", "Kitchen Light"),
    ("porch-sensor", "Porch Sensor"),
    ("garage-door", "Garage Door"),
    ("office-climate", "Office Climate"),
    ("hallway-motion", "Hallway Motion"),
    ("attic-fan", "Attic Fan"),
)


def demo_devices(count: int, *, api_base: int, ota_base: int) -> list[DemoDevice]:
    """The first `count` demo devices, with consecutive API and OTA ports."""
    if not 1 <= count <= len(DEMO_NAMES):
        raise ValueError(f"between 1 and {len(DEMO_NAMES)} demo devices, not {count}")
    return [
        DemoDevice(name=name, friendly_name=friendly, api_port=api_base + i, ota_port=ota_base + i)
        for i, (name, friendly) in enumerate(DEMO_NAMES[:count])
    ]


def render_configuration(device: DemoDevice, *, revision: int = 1) -> str:
    """The YAML of a demo device; a new `revision` changes the firmware (a real rebuild)."""
    return f"""\
# Demo ESPHome device for ESPHome Pipeline: a `host:` program, a real OTA target on loopback.
substitutions:
  revision: "{revision}"

esphome:
  name: {device.name}
  friendly_name: {device.friendly_name}
  project:
    name: esphome_pipeline.demo
    version: "1.0.${{revision}}"

host:

# A host program would multicast otherwise.
mdns:
  disabled: true

logger:

api:
  port: {device.api_port}

ota:
  - platform: esphome
    port: {device.ota_port}

# Every OTA re-executes the program; the demo must never fall into safe mode (no API there).
safe_mode:
  disabled: true

sensor:
  - platform: uptime
    name: Uptime
    update_interval: 30s

text_sensor:
  - platform: template
    name: Firmware revision
    lambda: return std::string("${{revision}}");
    update_interval: 60s
"""


def write_configuration(folder: Path, device: DemoDevice, *, revision: int = 1) -> Path:
    """Write (or rewrite) a device's YAML in `folder`; return its path."""
    path = folder / device.configuration
    path.write_text(render_configuration(device, revision=revision), encoding="utf-8")
    return path


def write_broken_configuration(folder: Path, device: DemoDevice) -> Path:
    """Rewrite a device's YAML with an invalid value, so ESPHome's validation fails."""
    path = folder / device.configuration
    text = render_configuration(device).replace(
        f"port: {device.api_port}", "port: not-a-port-number"
    )
    path.write_text(text, encoding="utf-8")
    return path


def write_demo_folder(folder: Path, devices: Sequence[DemoDevice], *, overwrite: bool) -> None:
    """Create the folder with one YAML per device; keep existing files unless `overwrite`."""
    folder.mkdir(parents=True, exist_ok=True)
    for device in devices:
        if overwrite or not (folder / device.configuration).exists():
            write_configuration(folder, device)


def build_dir(folder: Path, device: DemoDevice) -> Path:
    """Where ESPHome builds this device."""
    return folder / ".esphome" / "build" / device.name


def program_path(folder: Path, device: DemoDevice) -> Path:
    """The program a compile of this device produces."""
    return build_dir(folder, device) / ".pioenvs" / device.name / "program"


def build_time_str(folder: Path, device: DemoDevice) -> str:
    """`build_time_str` of the last build; a device running it reports it as compilation_time."""
    info = json.loads((build_dir(folder, device) / "build_info.json").read_text(encoding="utf-8"))
    return str(info["build_time_str"])


def esphome(
    *args: str, esphome_cli: Path = ESPHOME_CLI, log: IO[bytes] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the real ESPHome CLI to completion; raise CalledProcessError when it fails."""
    return subprocess.run(
        [str(esphome_cli), *args],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=log if log is not None else subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def compile_configuration(
    folder: Path, device: DemoDevice, *, log: IO[bytes] | None = None
) -> None:
    """Compile one device with the real ESPHome CLI."""
    esphome("compile", str(folder / device.configuration), log=log)


def wait_for_port(port: int, *, timeout: float) -> None:
    """Return once something accepts TCP connections on 127.0.0.1:`port` (bounded poll)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on 127.0.0.1:{port} after {timeout} s"
                ) from None
            time.sleep(0.1)


def port_is_free(port: int) -> bool:
    """True when nothing listens on `port` (a host device binds every address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))  # noqa: S104 - a host device binds 0.0.0.0 too
        except OSError:
            return False
    return True


class DeviceProcess:
    """One running demo device: its own program copy, HOME and log under `run_dir`."""

    def __init__(self, device: DemoDevice, *, folder: Path, run_dir: Path) -> None:
        """Prepare (but do not start) the device; `folder` holds its YAML and build."""
        self.device = device
        self.folder = folder
        self.run_dir = run_dir
        self.program = run_dir / "program"
        self.log_path = run_dir / "device.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """True while the program runs."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The program's pid (it keeps it across an OTA re-exec)."""
        return self._process.pid if self._process is not None else None

    def install_build(self) -> None:
        """Copy the current build over the device's program (a "factory flash")."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        staged = self.program.with_suffix(".new")
        shutil.copy2(program_path(self.folder, self.device), staged)
        staged.replace(self.program)

    def start(self, *, ready_timeout: float = 30.0) -> None:
        """Start the program (flashing the build first if the device has none); wait for its API."""
        if self.running:
            return
        if not self.program.exists():
            self.install_build()
        env = {**os.environ, "HOME": str(self.run_dir)}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self.program)],
                cwd=self.run_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port(self.device.api_port, timeout=ready_timeout)
        wait_for_port(self.device.ota_port, timeout=ready_timeout)

    def stop(self) -> None:
        """Stop the program and everything in its process group."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=DEVICE_STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            process.wait()

    def ota_receptions(self) -> int:
        """How many OTA images this device has accepted since its log was started."""
        if not self.log_path.exists():
            return 0
        return self.log_path.read_bytes().count(OTA_RECEIVED_MARKER.encode())


async def read_compilation_time(api_port: int) -> str:
    """Ask a device over its native API which build it runs (`DeviceInfo.compilation_time`).

    ESPHome 2026 dropped password login: a ConnectRequest is never answered, so no login.
    """
    client = APIClient("127.0.0.1", api_port, None)
    await client.connect(login=False)
    try:
        info = await client.device_info()
    finally:
        await client.disconnect()
    return str(info.compilation_time)
