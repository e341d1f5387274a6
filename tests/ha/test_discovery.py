"""Scanning the configuration folder."""

from __future__ import annotations

import os
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


def test_scan_refuses_links_leading_outside(tmp_path: Path) -> None:
    """A link to a file outside the folder is left out and reported; one inside is a device."""
    folder = tmp_path / "esphome"
    (folder / "devices").mkdir(parents=True)
    outside = tmp_path / "outside.yaml"
    outside.write_text("esphome:\n  name: outside\n")
    (folder / "devices" / "real.yaml").write_text("esphome:\n  name: inner\n")
    (folder / "kitchen.yaml").write_text("esphome:\n  name: kitchen\n")
    (folder / "escape.yaml").symlink_to(outside)
    (folder / "relative-escape.yaml").symlink_to("../outside.yaml")
    (folder / "alias.yaml").symlink_to("kitchen.yaml")
    (folder / "linked.yaml").symlink_to(folder / "devices" / "real.yaml")
    (folder / "dangling.yaml").symlink_to(folder / "missing.yaml")
    (folder / "folder-link.yaml").symlink_to(folder / "devices")
    os.mkfifo(folder / "pipe.yaml")
    (folder / "bell\a.yaml").write_text("esphome:\n  name: bell\n")

    result = scan_config_dir(folder, esphome_version="1")
    assert sorted(result.nodes) == ["alias.yaml", "kitchen.yaml", "linked.yaml"]
    assert result.nodes["linked.yaml"].name == "inner"
    assert result.unreadable == {
        "dangling.yaml": "it is a link to a file that does not exist",
        "escape.yaml": "it is a link to a file outside the configuration folder",
        "folder-link.yaml": "it is not a regular file",
        "pipe.yaml": "it is not a regular file",
        "relative-escape.yaml": "it is a link to a file outside the configuration folder",
    }


def test_scan_through_a_linked_folder(tmp_path: Path) -> None:
    """The folder itself may be reached through a link: "inside" is judged on real paths."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "kitchen.yaml").write_text("esphome:\n  name: kitchen\n")
    (real / "alias.yaml").symlink_to(real / "kitchen.yaml")
    (tmp_path / "via").symlink_to(real)
    result = scan_config_dir(tmp_path / "via", esphome_version="1")
    assert sorted(result.nodes) == ["alias.yaml", "kitchen.yaml"]
    assert result.unreadable == {}
