"""Benchmark: fingerprints of a generated folder of 200 configurations and 2,000 files.

Each configuration pulls in a shared package (with a secret), a package of its own with an
`!include_dir_merge_list` folder of sensors, a C++ header under `includes:`, a font, an image,
an animation and a local external component of its own (two files): ten files per device
(two devices have one sensor less, for the two shared files), 2,000 in all. Every mtime is
set an hour back (settled files, as in a folder nobody is editing).

Measured for all 200 configurations, each the median of several runs:
- cold: a new `Fingerprinter` with no cache at all (every file read and hashed);
- restart: a new `Fingerprinter` with the on-disk cache of a previous run (YAML parsed again,
  other files not read);
- warm: the same `Fingerprinter` again (only `stat` calls).
Targets: cold <= 300 ms, warm <= 20 ms. Prints the figures and PASS/FAIL; exits 1 on FAIL.

Run: `.venv/bin/python benchmarks/fingerprint.py`
"""

from __future__ import annotations

import os
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Final

# Runnable as a plain script from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from custom_components.esphome_pipeline.engine.fingerprint import Fingerprinter

CONFIGURATIONS: Final = 200
FILES_PER_CONFIGURATION: Final = 10
COLD_TARGET_MS: Final = 300.0
WARM_TARGET_MS: Final = 20.0
RUNS: Final = 7
ESPHOME_VERSION: Final = "2026.10.0"
AN_HOUR_NS: Final = 3600 * 1_000_000_000

SHARED_PACKAGE: Final = """\
wifi:
  ssid: !secret wifi_ssid
  password: !secret wifi_password
logger:
  level: INFO
api:
  encryption:
    key: !secret api_key
ota:
  - platform: esphome
"""


def device_yaml(index: int) -> str:
    """The top-level YAML of device `index`."""
    name = f"device-{index:03d}"
    return f"""\
substitutions:
  name: {name}
  friendly: Device {index}

esphome:
  name: ${{name}}
  friendly_name: ${{friendly}}
  includes:
    - devices/{name}/custom.h

esp32:
  board: esp32dev

packages:
  shared: !include common/shared.yaml
  own: !include devices/{name}/package.yaml

external_components:
  - source:
      type: local
      path: devices/{name}/components

font:
  - file: devices/{name}/font.ttf
    id: font_small
    size: 12

image:
  - file: devices/{name}/logo.png
    id: logo
    type: binary

animation:
  - file: devices/{name}/spinner.gif
    id: spinner
    type: rgb565

sensor:
  - platform: uptime
    name: Uptime
  - platform: wifi_signal
    name: WiFi signal
    update_interval: 60s

display:
  - platform: ssd1306_i2c
    model: SSD1306 128x64
    lambda: |-
      it.image(0, 0, id(logo));
      it.print(0, 40, id(font_small), "Device {index}");
"""


def write_folder(root: Path) -> list[str]:
    """Write the generated folder; return the configuration names."""
    (root / "common").mkdir(parents=True)
    (root / "secrets.yaml").write_text(
        "wifi_ssid: bench\nwifi_password: secret-password\napi_key: c2VjcmV0LWtleQ==\n"
    )
    (root / "common" / "shared.yaml").write_text(SHARED_PACKAGE)
    names = []
    for index in range(CONFIGURATIONS):
        name = f"device-{index:03d}"
        own = root / "devices" / name
        (own / "sensors").mkdir(parents=True)
        (own / "components" / f"widget_{index}").mkdir(parents=True)
        (root / f"{name}.yaml").write_text(device_yaml(index))
        (own / "package.yaml").write_text(
            "sensor: !include_dir_merge_list sensors\n"
            f"text_sensor:\n  - platform: version\n    name: Version {index}\n"
        )
        (own / "sensors" / "temperature.yaml").write_text(
            f"- platform: template\n  name: Temperature {index}\n  lambda: return 21.0;\n"
        )
        if index >= 2:  # 2 shared files + 10 per device, less these two: 2,000 files
            (own / "sensors" / "humidity.yaml").write_text(
                f"- platform: template\n  name: Humidity {index}\n  lambda: return 40.0;\n"
            )
        (own / "custom.h").write_text(f"#pragma once\nstatic const int DEVICE = {index};\n")
        (own / "font.ttf").write_bytes(os.urandom(24_000))
        (own / "logo.png").write_bytes(os.urandom(3_000))
        (own / "spinner.gif").write_bytes(os.urandom(6_000))
        component = own / "components" / f"widget_{index}"
        (component / "__init__.py").write_text(f'"""Widget {index}."""\nCODEOWNERS = []\n')
        (component / "widget.h").write_text(f"#pragma once\nclass Widget{index} {{}};\n")
        names.append(f"{name}.yaml")
    past = time.time_ns() - AN_HOUR_NS
    for folder, _dirs, files in os.walk(root):
        for entry in [Path(folder), *(Path(folder) / name for name in files)]:
            os.utime(entry, ns=(past, past))
    return names


def run_all(fingerprinter: Fingerprinter, names: list[str]) -> tuple[float, float]:
    """Fingerprint every configuration and flush the disk layer; return (wall, CPU) ms."""
    start, cpu = time.perf_counter(), time.process_time()
    for name in names:
        node = fingerprinter.read_node(name)
        assert node is not None, name
        assert not node.unverifiable, node.unverifiable
    fingerprinter.flush()
    return (time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000


def main() -> int:
    """Run the benchmark; return the process exit code."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "esphome"
        names = write_folder(root)
        files = sum(
            len([f for f in fs if not f.startswith(".")])
            for d, _s, fs in os.walk(root)
            if ".esphome" not in d
        )
        cache_file = root / ".esphome" / "esphome_pipeline" / "fingerprint-cache.json"
        cold: list[tuple[float, float]] = []
        restart: list[tuple[float, float]] = []
        warm: list[tuple[float, float]] = []
        fingerprints: set[tuple[str, ...]] = set()
        reads = {}
        for _ in range(RUNS):
            cache_file.unlink(missing_ok=True)
            fresh = Fingerprinter(root, esphome_version=ESPHOME_VERSION)
            cold.append(run_all(fresh, names))
            reads["cold"] = fresh.files_read
            again = Fingerprinter(root, esphome_version=ESPHOME_VERSION)
            restart.append(run_all(again, names))
            reads["restart"] = again.files_read
            before = again.files_read
            warm.append(run_all(again, names))
            reads["warm"] = again.files_read - before
            fingerprints.add(tuple(again.read_node(n).fingerprint for n in names))  # type: ignore[union-attr]
        assert len(fingerprints) == 1, "fingerprints differ between runs"
    figures = {
        name: statistics.median(wall for wall, _cpu in runs)
        for name, runs in (("cold", cold), ("restart", restart), ("warm", warm))
    }
    cpu = {
        name: statistics.median(cpu for _wall, cpu in runs)
        for name, runs in (("cold", cold), ("restart", restart), ("warm", warm))
    }
    print(f"Fingerprint of {CONFIGURATIONS} configurations, {files} files ({RUNS} runs, median)")
    print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    best = {
        name: min(wall for wall, _cpu in runs)
        for name, runs in (("cold", cold), ("restart", restart), ("warm", warm))
    }
    for name in ("cold", "restart", "warm"):
        print(
            f"  {name:<8}{figures[name]:8.1f} ms  (best {best[name]:6.1f} ms, "
            f"CPU {cpu[name]:6.1f} ms, files read: {reads[name]})"
        )
    cold_ok = figures["cold"] <= COLD_TARGET_MS
    warm_ok = figures["warm"] <= WARM_TARGET_MS and reads["warm"] == 0
    print(f"  target cold <= {COLD_TARGET_MS:.0f} ms: {'PASS' if cold_ok else 'FAIL'}")
    print(f"  target warm <= {WARM_TARGET_MS:.0f} ms: {'PASS' if warm_ok else 'FAIL'}")
    return 0 if cold_ok and warm_ok else 1


if __name__ == "__main__":
    sys.exit(main())
