"""A real Home Assistant: its configuration folder, a login, and the `hass` process.

The configuration starts fast offline and keeps the UI working: `frontend` (which pulls in
`api`, `auth`, `config`, `onboarding`, `search`, `lovelace`, `websocket_api` ...) plus
`logger`, and `http` bound to 127.0.0.1 only. `default_config` is left out on purpose: it adds
zeroconf, bluetooth, dhcp, ssdp, cloud and go2rtc, which only slow an offline start.

Onboarding is marked done in `.storage/onboarding`, so the UI opens on the login page and not
on the onboarding wizard; the login itself is created with `hass --script auth`, which must run
while Home Assistant is stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
import signal
import subprocess
import time
from typing import IO
import urllib.error
import urllib.request

from . import HASS, INTEGRATION_DIR

HASS_STOP_GRACE = 30.0
"""Seconds Home Assistant gets to stop after SIGTERM (measured: under 3 s) before SIGKILL."""

ONBOARDING_STEPS = ("user", "core_config", "analytics", "integration")


def configuration_yaml(*, port: int, name: str, log_level: str = "info") -> str:
    """The `configuration.yaml` of a fast, offline Home Assistant with a working UI."""
    return f"""\
# Written by ESPHome Pipeline's development kit (script/develop, tests/e2e).
homeassistant:
  name: {name}
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: NL

http:
  server_host: 127.0.0.1
  server_port: {port}

frontend:
api:
config:
history:
logbook:
system_health:

logger:
  default: {log_level}
  logs:
    custom_components.esphome_pipeline: debug
"""


def write_configuration(config_dir: Path, *, port: int, name: str, log_level: str = "info") -> None:
    """Write `configuration.yaml`, link the integration and mark onboarding done."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "configuration.yaml").write_text(
        configuration_yaml(port=port, name=name, log_level=log_level), encoding="utf-8"
    )
    link_integration(config_dir)
    mark_onboarded(config_dir)
    keep_network_local(config_dir)


def keep_network_local(config_dir: Path) -> None:
    """Let Home Assistant's network integration use the loopback adapter only.

    Zeroconf (which the frontend pulls in) then sends its mDNS on 127.0.0.1 alone: a
    development or test instance never announces itself on the machine's real network.
    """
    storage = config_dir / ".storage"
    storage.mkdir(parents=True, exist_ok=True)
    document = {
        "version": 1,
        "minor_version": 1,
        "key": "core.network",
        "data": {"configured_adapters": ["lo"]},
    }
    (storage / "core.network").write_text(json.dumps(document, indent=2), encoding="utf-8")


def link_integration(config_dir: Path) -> None:
    """Make `<config>/custom_components/esphome_pipeline` point at the repository's code."""
    target = config_dir / "custom_components" / "esphome_pipeline"
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() and target.resolve() == INTEGRATION_DIR.resolve():
        return
    if target.is_symlink() or target.is_file():
        target.unlink()
    target.symlink_to(INTEGRATION_DIR, target_is_directory=True)


def mark_onboarded(config_dir: Path) -> None:
    """Record every onboarding step as done, so the UI skips the onboarding wizard."""
    storage = config_dir / ".storage"
    storage.mkdir(parents=True, exist_ok=True)
    path = storage / "onboarding"
    if path.exists():
        return
    document = {
        "version": 4,
        "minor_version": 1,
        "key": "onboarding",
        "data": {"done": list(ONBOARDING_STEPS)},
    }
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")


def has_user(config_dir: Path, username: str) -> bool:
    """True when the Home Assistant auth provider already knows `username`."""
    path = config_dir / ".storage" / "auth_provider.homeassistant"
    if not path.exists():
        return False
    users = json.loads(path.read_text(encoding="utf-8"))["data"]["users"]
    return any(user["username"] == username for user in users)


def add_user(config_dir: Path, username: str, password: str) -> None:
    """Create a login (Home Assistant must be stopped); it becomes an admin at first login."""
    if has_user(config_dir, username):
        return
    subprocess.run(
        [str(HASS), "--script", "auth", "-c", str(config_dir), "add", username, password],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )


class HassProcess:
    """`hass -c <config> --skip-pip` in a session of its own."""

    def __init__(self, config_dir: Path, *, port: int) -> None:
        """Prepare (but do not start) Home Assistant on 127.0.0.1:`port`."""
        self.config_dir = config_dir
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """Where Home Assistant answers."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The `hass` pid while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while `hass` runs."""
        return self._process is not None and self._process.poll() is None

    def start(self, *, log: IO[bytes] | None = None, ready_timeout: float = 120.0) -> None:
        """Start Home Assistant and return once its HTTP server answers."""
        if self.running:
            return
        self._process = subprocess.Popen(
            [str(HASS), "-c", str(self.config_dir), "--skip-pip"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
            start_new_session=True,
        )
        self.wait_ready(timeout=ready_timeout)

    def wait_ready(self, *, timeout: float) -> None:
        """Poll until the HTTP server answers, bounded by `timeout`.

        `/auth/providers` needs no token, so polling it logs no failed-login warnings.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"Home Assistant exited with {self._process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/auth/providers", timeout=2.0):  # noqa: S310
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer: the server is up
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Home Assistant did not answer within {timeout} s")  # noqa: B904
                time.sleep(0.2)

    def wait(self) -> int:
        """Wait for Home Assistant to exit (after a signal from elsewhere); return its code."""
        if self._process is None:
            return 0
        return self._process.wait()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop Home Assistant with `sig` and wait until it is gone.

        SIGTERM goes to `hass` alone, like a service manager stopping it: it stops what it
        started. SIGKILL goes to `hass` alone too, so processes it started (ESPHome jobs)
        outlive it, as after a crash; the caller decides what happens to them.
        """
        process = self._process
        if process is None or process.poll() is not None:
            self._process = None
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        try:
            process.wait(timeout=HASS_STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        self._process = None
