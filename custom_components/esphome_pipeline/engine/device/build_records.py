"""What ESPHome recorded about a configuration's last build, read from its data folder.

Owns the reading of three files ESPHome writes under its data folder (`<config>/.esphome`, or
`/data` in the add-on):

- `storage/<configuration>.json` (StorageJSON): node name, platform (chip family), ESPHome
  version, build folder and the firmware image path;
- `build/<name>/build_info.json`: `config_hash`, `build_time`, `build_time_str` (what the
  device reports as `compilation_time`) and `esphome_version`;
- `storage/<configuration>.validated.json`: the validated configuration (substitutions,
  packages and secrets resolved), for the native API endpoint: port, encryption key, address.

Nothing here raises on a missing or malformed file: it returns None and the caller decides
(no skip). Blocking: call from an executor.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
from typing import Any, Final

DEFAULT_API_PORT: Final = 6053


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildIdentity:
    """Who a build is: what a device running it reports, and the image that carries it."""

    name: str
    esphome_version: str
    build_time_str: str | None
    config_hash: str | None
    firmware: Path | None
    build_info: Path

    def describe(self) -> str:
        """`ESPHome 2026.10.0, built 2026-11-27 16:14:49 +0000` for people."""
        built = f", built {self.build_time_str}" if self.build_time_str else ""
        return f"ESPHome {self.esphome_version}{built}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiEndpoint:
    """Where and how to reach a device's native API."""

    host: str
    port: int = DEFAULT_API_PORT
    noise_psk: str | None = None


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_build_identity(data_dir: Path, configuration: str) -> BuildIdentity | None:
    """The last build of `configuration`, or None when ESPHome recorded none (or it is gone)."""
    storage = _json(data_dir / "storage" / f"{configuration}.json")
    if not isinstance(storage, dict) or not isinstance(storage.get("name"), str):
        return None
    name: str = storage["name"]
    build_path = storage.get("build_path")
    build_dir = Path(build_path) if isinstance(build_path, str) else data_dir / "build" / name
    info_path = build_dir / "build_info.json"
    info = _json(info_path)
    if not isinstance(info, dict) or not isinstance(info.get("esphome_version"), str):
        return None
    firmware = storage.get("firmware_bin_path")
    config_hash = info.get("config_hash")
    build_time_str = info.get("build_time_str")
    return BuildIdentity(
        name=name,
        esphome_version=info["esphome_version"],
        build_time_str=build_time_str if isinstance(build_time_str, str) else None,
        config_hash=None if config_hash is None else str(config_hash),
        firmware=Path(firmware) if isinstance(firmware, str) else None,
        build_info=info_path,
    )


def read_api_endpoint(
    data_dir: Path, configuration: str, name: str, *, address: str | None = None
) -> ApiEndpoint | None:
    """The native API endpoint from the validated configuration, or None without an `api:`.

    The host is `address` when given (an upload target), else the configuration's
    `use_address` or static IP, else `<name>.local` (mDNS).
    """
    cached = _json(data_dir / "storage" / f"{configuration}.validated.json")
    config = cached.get("config") if isinstance(cached, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("api"), dict):
        return None
    api: dict[str, Any] = config["api"]
    encryption = api.get("encryption")
    key = encryption.get("key") if isinstance(encryption, dict) else None
    port = api.get("port", DEFAULT_API_PORT)
    return ApiEndpoint(
        host=address or _configured_address(config) or f"{name}.local",
        port=port if isinstance(port, int) else DEFAULT_API_PORT,
        noise_psk=key if isinstance(key, str) else None,
    )


def _configured_address(config: dict[str, Any]) -> str | None:
    for network in ("wifi", "ethernet", "openthread"):
        block = config.get(network)
        if not isinstance(block, dict):
            continue
        manual = block.get("manual_ip")
        static = manual.get("static_ip") if isinstance(manual, dict) else None
        for value in (block.get("use_address"), static):
            if isinstance(value, str) and value:
                return value
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildTarget:
    """The node and the chip family a configuration was last built for."""

    name: str
    platform: str
    """ESPHome's platform in lower case: `esp32` (any variant), `esp8266`, `rp2040`, `host`..."""

    @property
    def is_esp32(self) -> bool:
        """True for the ESP32 family, whose builds have bootloader, partitions and app images."""
        return self.platform.startswith("esp32")


def read_build_target(data_dir: Path, configuration: str) -> BuildTarget | None:
    """The node name and platform from StorageJSON, or None when ESPHome recorded none."""
    storage = _json(data_dir / "storage" / f"{configuration}.json")
    if not isinstance(storage, dict) or not isinstance(storage.get("name"), str):
        return None
    # `core_platform` is the family (esp32); older files only have `esp_platform` (ESP32S3).
    platform = storage.get("core_platform") or storage.get("esp_platform")
    if not isinstance(platform, str) or not platform:
        return None
    return BuildTarget(name=storage["name"], platform=platform.lower())
