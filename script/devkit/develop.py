"""`script/develop`: a real Home Assistant with ESPHome Pipeline on a folder of demo devices.

Everything lives in the git-ignored `dev/` folder at the repository root:

    dev/config/                     Home Assistant's configuration (UI on 127.0.0.1:8123)
    dev/config/custom_components/   a link to the integration in this repository
    dev/config/esphome/             demo ESPHome `host:` configurations (edit them freely)
    dev/devices/<name>/             each running demo device: its program, HOME and log
    dev/logs/                       compile logs of the first builds

Re-runs are fast: the login, the entry, the builds and the devices' firmware are kept. The
entry is created through the real config-flow API, exactly as a user would. Ctrl-C (or SIGTERM)
stops Home Assistant and the demo devices this run started.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
import signal
import sys
from types import FrameType

import aiohttp

from . import ESPHOME_CLI, REPO_ROOT
from .api import create_entry, fetch_token, list_entries
from .demo import (
    DemoDevice,
    DeviceProcess,
    compile_configuration,
    demo_devices,
    port_is_free,
    program_path,
    write_demo_folder,
)
from .hass import HassProcess, add_user, write_configuration

DEV_DIR = REPO_ROOT / "dev"
CONFIG_DIR = DEV_DIR / "config"
ESPHOME_DIR = CONFIG_DIR / "esphome"
DEVICES_DIR = DEV_DIR / "devices"
LOGS_DIR = DEV_DIR / "logs"

USERNAME = "dev"
PASSWORD = "dev"  # noqa: S105 - a local development login, printed for the developer
DEMO_DEVICE_COUNT = 4
DEMO_API_BASE = 16053
DEMO_OTA_BASE = 13232


class _StopRequestedError(Exception):
    """SIGINT or SIGTERM arrived."""


def _request_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopRequestedError


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _prepare(port: int, devices: Sequence[DemoDevice]) -> None:
    """Write the configuration, the demo folder and the login (Home Assistant is stopped)."""
    # Warnings from Home Assistant, everything from the integration: a readable terminal.
    write_configuration(
        CONFIG_DIR, port=port, name="ESPHome Pipeline development", log_level="warning"
    )
    write_demo_folder(ESPHOME_DIR, devices, overwrite=False)
    add_user(CONFIG_DIR, USERNAME, PASSWORD)
    LOGS_DIR.mkdir(parents=True, exist_ok=True)


def _build_missing(devices: Sequence[DemoDevice]) -> None:
    """Compile each demo device that was never built (a cold host build takes about 10 s)."""
    for device in devices:
        if program_path(ESPHOME_DIR, device).exists():
            continue
        _say(f"Compiling {device.configuration} with the real ESPHome CLI (first time only)")
        with (LOGS_DIR / f"compile-{device.name}.log").open("wb") as log:
            compile_configuration(ESPHOME_DIR, device, log=log)


def _start_devices(devices: Sequence[DemoDevice]) -> list[DeviceProcess]:
    started: list[DeviceProcess] = []
    for device in devices:
        if not (port_is_free(device.api_port) and port_is_free(device.ota_port)):
            _say(
                f"{device.name}: port {device.api_port} or {device.ota_port} is in use; "
                "not starting it (is another script/develop running?)"
            )
            continue
        process = DeviceProcess(device, folder=ESPHOME_DIR, run_dir=DEVICES_DIR / device.name)
        started.append(process)
        process.start()
        _say(
            f"Demo device {device.friendly_name}: API 127.0.0.1:{device.api_port}, "
            f"OTA 127.0.0.1:{device.ota_port}, log {process.log_path.relative_to(REPO_ROOT)}"
        )
    return started


async def _ensure_entry(base_url: str) -> None:
    """Create the ESPHome Pipeline entry through the config-flow API unless it exists."""
    async with aiohttp.ClientSession() as session:
        token = await fetch_token(session, base_url, USERNAME, PASSWORD)
        entries = await list_entries(session, base_url, token)
        if entries:
            return
        _say("Setting up ESPHome Pipeline through the config flow")
        await create_entry(
            session,
            base_url,
            token,
            config_dir=str(ESPHOME_DIR),
            esphome_command=str(ESPHOME_CLI),
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare, start the devices and Home Assistant, and wait for Ctrl-C."""
    parser = argparse.ArgumentParser(prog="script/develop", description=__doc__)
    parser.add_argument("--port", type=int, default=8123, help="Home Assistant's HTTP port")
    args = parser.parse_args(argv)
    if not port_is_free(args.port):
        _say(f"Port {args.port} is in use: stop the other Home Assistant or pass --port.")
        return 1

    devices = demo_devices(DEMO_DEVICE_COUNT, api_base=DEMO_API_BASE, ota_base=DEMO_OTA_BASE)
    hass = HassProcess(CONFIG_DIR, port=args.port)
    started: list[DeviceProcess] = []
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        _prepare(args.port, devices)
        _build_missing(devices)
        started = _start_devices(devices)
        _say("Starting Home Assistant (its log follows)")
        hass.start()
        asyncio.run(_ensure_entry(hass.base_url))
        print(
            "\n"
            f"  Home Assistant:  {hass.base_url}\n"
            f"  Login:           user {USERNAME!r}, password {PASSWORD!r}\n"
            f"  Demo devices:    {ESPHOME_DIR.relative_to(REPO_ROOT)}/ "
            f"({', '.join(d.configuration for d in devices)})\n"
            "  Stop:            Ctrl-C (stops Home Assistant and the demo devices)\n",
            flush=True,
        )
        code = hass.wait()
    except _StopRequestedError:
        _say("Stopping")
        code = 0
    else:
        _say(f"Home Assistant exited with {code}")
    finally:
        # A second Ctrl-C must not interrupt the clean-up half way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        hass.stop()
        for process in started:
            process.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
