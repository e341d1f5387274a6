"""Scanning the configuration folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from custom_components.esphome_pipeline.discovery import scan_config_dir


def test_scan_skips_what_is_not_a_device(tmp_path: Path) -> None:
    """Hidden files, secrets, sub-folders, other extensions and packages are skipped."""
    (tmp_path / "kitchen.yaml").write_text("esphome:\n  name: kitchen\nesp32:\n")
    (tmp_path / "garage.yml").write_text("esphome:\n  name: garage\n")
    (tmp_path / "secrets.yaml").write_text("esphome: x\n")
    (tmp_path / ".hidden.yaml").write_text("esphome:\n  name: hidden\n")
    (tmp_path / "package.yaml").write_text("wifi:\n  ssid: x\n")
    (tmp_path / "notes.txt").write_text("esphome:\n")
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.yaml").write_text("esphome:\n  name: inner\n")
    (tmp_path / "broken.yaml").write_text("esphome: [\n")

    result = scan_config_dir(tmp_path, esphome_version="1")
    assert sorted(result.nodes) == ["garage.yml", "kitchen.yaml"]
    assert result.nodes["kitchen.yaml"].platform == "esp32"
    assert list(result.unreadable) == ["broken.yaml"]


def test_scan_missing_folder_raises(tmp_path: Path) -> None:
    """A folder that cannot be listed raises OSError (the caller keeps its last result)."""
    with pytest.raises(OSError):
        scan_config_dir(tmp_path / "missing", esphome_version="1")
