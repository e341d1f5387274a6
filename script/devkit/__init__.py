"""Development kit: a real Home Assistant with ESPHome Pipeline and real ESPHome host devices.

Shared by `script/develop` (the interactive demo), `tests/e2e` (end-to-end tests) and
`benchmarks/real_bulk.py`, so all three drive exactly the same set-up:

- `demo`:     demo ESPHome `host:` configurations, the real ESPHome CLI, device processes.
- `hass`:     a Home Assistant configuration folder, a login, the `hass` process.
- `api`:      Home Assistant's REST and WebSocket API with a real token (login flow).
- `develop`:  the `script/develop` entry point.

Every path is computed from the repository root; nothing here is machine specific.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository this kit belongs to."""

VENV_BIN = REPO_ROOT / ".venv" / "bin"
ESPHOME_VENV_BIN = REPO_ROOT / ".venv-esphome" / "bin"
ESPHOME_CLI = ESPHOME_VENV_BIN / "esphome"
"""The real ESPHome CLI that `script/setup` installs into its own virtualenv."""
HASS = VENV_BIN / "hass"
INTEGRATION_DIR = REPO_ROOT / "custom_components" / "esphome_pipeline"
