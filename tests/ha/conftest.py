"""Fixtures for the Home Assistant layer: custom integrations on, a config folder, the fake CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import shlex
import sys

import pytest

FAKE_ESPHOME = Path(__file__).parents[1] / "fakes" / "fake_esphome.py"


def fake_cli_command() -> str:
    """Return the command line that runs the fake ESPHome CLI with this interpreter."""
    return shlex.join([sys.executable, str(FAKE_ESPHOME)])


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> Iterator[None]:
    """Let Home Assistant load the integration from custom_components/."""
    return


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """Return an empty ESPHome configuration folder."""
    folder = tmp_path / "esphome"
    folder.mkdir()
    return folder


@pytest.fixture
def esphome_command() -> str:
    """Return the fake ESPHome CLI's command line."""
    return fake_cli_command()
