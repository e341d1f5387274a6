"""The tolerant YAML reader, node facts and the configuration fingerprint (pure code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from custom_components.esphome_pipeline.engine import (
    fingerprint,
    fingerprint_cache,
    fingerprint_inputs,
)
from custom_components.esphome_pipeline.engine.fingerprint import (
    MAX_FILES,
    ConfigurationReadError,
    IncludeDirRef,
    IncludeRef,
    SecretRef,
    Tagged,
    load_yaml_text,
    read_node,
)

VERSION = "2026.10.0"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _fingerprint(folder: Path, name: str = "node.yaml", version: str = VERSION) -> str:
    node = read_node(folder, name, esphome_version=version)
    assert node is not None
    return node.fingerprint


def test_tags_are_inert_markers() -> None:
    """Every ESPHome tag parses to a marker; nothing is executed or resolved."""
    document = load_yaml_text(
        """
wifi:
  password: !secret wifi_password
packages:
  base: !include common/base.yaml
  vars: !include {file: common/vars.yaml, vars: {x: 1}}
  odd: !include {vars: {x: 1}}
sensors: !include_dir_merge_list sensors/
lambda: !lambda return 1;
extended: !extend some_id
removed: !remove
env: !env_var HOME
seq: !custom [1, 2]
"""
    )
    assert document["wifi"]["password"] == SecretRef("wifi_password")
    assert document["packages"]["base"] == IncludeRef("common/base.yaml")
    assert document["packages"]["vars"] == IncludeRef("common/vars.yaml")
    assert document["packages"]["odd"] == Tagged("!include", {"vars": {"x": 1}})
    assert document["sensors"] == IncludeDirRef("sensors/")
    assert document["lambda"] == Tagged("!lambda", "return 1;")
    assert document["extended"] == Tagged("!extend", "some_id")
    assert document["removed"] == Tagged("!remove", "")
    assert document["env"] == Tagged("!env_var", "HOME")
    assert document["seq"] == Tagged("!custom", [1, 2])


def test_merge_key_with_include_is_kept(tmp_path: Path) -> None:
    """`<<: !include` does not break parsing, and the included file counts."""
    _write(tmp_path, "base.yaml", "logger:\n")
    _write(tmp_path, "node.yaml", "esphome:\n  name: n\n<<: !include base.yaml\n")
    before = _fingerprint(tmp_path)
    _write(tmp_path, "base.yaml", "logger:\n  level: DEBUG\n")
    assert _fingerprint(tmp_path) != before


def test_node_facts_with_substitutions(tmp_path: Path) -> None:
    """Name and friendly name come from `esphome:` with top-level substitutions applied."""
    _write(
        tmp_path,
        "node.yaml",
        """
substitutions:
  device: kitchen
  pretty: ${device} light
  nested: {a: 1}
esphome:
  name: ${device}-node
  friendly_name: $pretty ($nested, $missing)
esp32:
  board: esp32dev
""",
    )
    node = read_node(tmp_path, "node.yaml", esphome_version=VERSION)
    assert node is not None
    assert node.name == "kitchen-node"
    assert node.friendly_name == "kitchen light ($nested, $missing)"
    assert node.display_name == "kitchen light ($nested, $missing)"
    assert node.platform == "esp32"
    assert len(node.fingerprint) == 12
    int(node.fingerprint, 16)


def test_substitution_loop_is_bounded(tmp_path: Path) -> None:
    """Substitutions that refer to each other stop after a bounded number of rounds."""
    _write(
        tmp_path,
        "node.yaml",
        "substitutions:\n  a: $b\n  b: $a\nesphome:\n  name: $a\n",
    )
    node = read_node(tmp_path, "node.yaml", esphome_version=VERSION)
    assert node is not None
    assert node.name in {"$a", "$b"}


def test_node_defaults(tmp_path: Path) -> None:
    """Without a name the file stem is used; a tagged name or an odd block falls back too."""
    _write(tmp_path, "plain.yaml", "esphome:\n  friendly_name: !secret x\nhost:\n")
    node = read_node(tmp_path, "plain.yaml", esphome_version=VERSION)
    assert node is not None
    assert (node.name, node.friendly_name, node.platform) == ("plain", None, "host")
    assert node.display_name == "plain"

    _write(tmp_path, "legacy.yaml", "esphome:\n  name: old\n  platform: ESP8266\n")
    node = read_node(tmp_path, "legacy.yaml", esphome_version=VERSION)
    assert node is not None
    assert node.platform == "esp8266"

    _write(tmp_path, "included.yaml", "esphome: !include common.yaml\n")
    node = read_node(tmp_path, "included.yaml", esphome_version=VERSION)
    assert node is not None
    assert (node.name, node.platform) == ("included", None)


@pytest.mark.parametrize("text", ["logger:\n", "- a\n- b\n", ""])
def test_not_a_configuration(tmp_path: Path, text: str) -> None:
    """YAML without a top-level `esphome:` block is not a configuration."""
    _write(tmp_path, "node.yaml", text)
    assert read_node(tmp_path, "node.yaml", esphome_version=VERSION) is None


@pytest.mark.parametrize("content", [b"esphome: [\n", b"\xff\xfe"])
def test_unparsable_raises(tmp_path: Path, content: bytes) -> None:
    """Malformed YAML or bytes raise ConfigurationReadError."""
    (tmp_path / "node.yaml").write_bytes(content)
    with pytest.raises(ConfigurationReadError):
        read_node(tmp_path, "node.yaml", esphome_version=VERSION)


def test_missing_file_raises(tmp_path: Path) -> None:
    """A file that vanished raises ConfigurationReadError."""
    with pytest.raises(ConfigurationReadError):
        read_node(tmp_path, "gone.yaml", esphome_version=VERSION)


def test_fingerprint_inputs(tmp_path: Path) -> None:
    """YAML, includes (nested, folders, C++ includes), used secrets and the version count."""
    _write(
        tmp_path,
        "node.yaml",
        """
esphome:
  name: node
  includes:
    - custom.h
    - 42
wifi:
  password: !secret wifi_password
packages:
  common: !include common/base.yaml
sensor: !include_dir_list sensors
""",
    )
    _write(tmp_path, "custom.h", "int x;\n")
    _write(tmp_path, "common/base.yaml", "api: !include api.yaml\n")
    _write(tmp_path, "common/api.yaml", "encryption: !secret api_key\n")
    _write(tmp_path, "sensors/a.yaml", "platform: uptime\n")
    _write(tmp_path, "sensors/.hidden/b.yaml", "platform: hidden\n")
    _write(tmp_path, "secrets.yaml", "wifi_password: one\napi_key: two\nunused: three\n")
    base = _fingerprint(tmp_path)
    assert base == _fingerprint(tmp_path)  # stable

    changes = [
        ("custom.h", "int y;\n"),
        ("common/api.yaml", "encryption: !secret api_key\nreboot_timeout: 0s\n"),
        ("sensors/a.yaml", "platform: wifi_signal\n"),
        ("secrets.yaml", "wifi_password: changed\napi_key: two\nunused: three\n"),
        ("secrets.yaml", "wifi_password: changed\napi_key: new\nunused: three\n"),
        ("node.yaml", (tmp_path / "node.yaml").read_text() + "logger:\n"),
    ]
    seen = {base}
    for name, text in changes:
        _write(tmp_path, name, text)
        fingerprint = _fingerprint(tmp_path)
        assert fingerprint not in seen, name
        seen.add(fingerprint)

    current = _fingerprint(tmp_path)
    _write(tmp_path, "secrets.yaml", "wifi_password: changed\napi_key: new\nunused: other\n")
    _write(tmp_path, "sensors/.hidden/b.yaml", "platform: other\n")
    assert _fingerprint(tmp_path) == current  # unused secret and hidden files do not count
    assert _fingerprint(tmp_path, version="2026.11.0") != current
    assert "changed" not in current


def test_fingerprint_bounds(tmp_path: Path) -> None:
    """Includes outside the folder, missing or unreadable ones, and loops do not break it."""
    outside = tmp_path / "outside.yaml"
    outside.write_text("x: 1\n")
    folder = tmp_path / "config"
    _write(
        folder,
        "node.yaml",
        """
esphome:
  name: node
a: !include ../outside.yaml
b: !include missing.yaml
c: !include loop.yaml
d: !include_dir_named ../
e: !include bad.yaml
f: !include binary.yaml
g: !secret nowhere
h: !custom {inner: !include tagged.yaml}
""",
    )
    _write(folder, "loop.yaml", "again: !include node.yaml\nself: !include loop.yaml\n")
    _write(folder, "bad.yaml", "x: [\n")
    (folder / "binary.yaml").write_bytes(b"\xff\xfe")
    _write(folder, "secrets.yaml", "- not a mapping\n")
    _write(folder, "secrets.yml", "x: [\n")
    _write(folder / "sub", "secrets.yaml", "x: [\n")
    _write(folder, "tagged.yaml", "v: 1\n")
    first = _fingerprint(folder)
    outside.write_text("x: 2\n")
    assert _fingerprint(folder) == first  # outside the folder: never read
    _write(folder, "tagged.yaml", "v: 2\n")
    assert _fingerprint(folder) != first  # an include inside an unknown tag still counts


def test_fingerprint_secret_beside_including_file(tmp_path: Path) -> None:
    """A secret used in a sub-folder include is read from that folder's secrets.yaml first."""
    _write(tmp_path, "node.yaml", "esphome:\n  name: n\np: !include sub/pkg.yaml\n")
    _write(tmp_path, "sub/pkg.yaml", "k: !secret key\n")
    _write(tmp_path, "sub/secrets.yaml", "key: one\n")
    _write(tmp_path, "secrets.yaml", "key: root\n")
    first = _fingerprint(tmp_path)
    _write(tmp_path, "secrets.yaml", "key: root2\n")
    assert _fingerprint(tmp_path) == first
    _write(tmp_path, "sub/secrets.yaml", "key: two\n")
    assert _fingerprint(tmp_path) != first


def test_fingerprint_file_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At most MAX_FILES files are read; past it the fingerprint says it cannot vouch."""
    monkeypatch.setattr(fingerprint_inputs, "MAX_FILES", 8)
    lines = ["esphome:", "  name: n"] + [
        f"i{number}: !include inc/{number}.yaml" for number in range(12)
    ]
    _write(tmp_path, "node.yaml", "\n".join(lines) + "\n")
    for number in range(12):
        _write(tmp_path, f"inc/{number}.yaml", f"v: {number}\n")
    first = _fingerprint(tmp_path)
    _write(tmp_path, "inc/11.yaml", "v: changed\n")
    assert _fingerprint(tmp_path) == first
    node = read_node(tmp_path, "node.yaml", esphome_version=VERSION)
    assert node is not None
    assert node.unverifiable == ("more than 8 files",)
    assert MAX_FILES > 1000


def test_unreadable_include(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An include that exists but cannot be read counts as missing."""
    _write(tmp_path, "node.yaml", "esphome:\n  name: n\np: !include pkg.yaml\nf: font.ttf\n")
    _write(tmp_path, "pkg.yaml", "x: 1\n")
    _write(tmp_path, "font.ttf", "x\n")

    def refuse(path: str, *args: Any) -> Any:
        if Path(path).name in {"pkg.yaml", "font.ttf"}:
            raise PermissionError("denied")
        return open(path, *args)  # noqa: PTH123

    monkeypatch.setattr(fingerprint, "open", refuse, raising=False)
    monkeypatch.setattr(fingerprint_cache, "open", refuse, raising=False)
    first = _fingerprint(tmp_path)
    monkeypatch.undo()
    assert _fingerprint(tmp_path) != first


def test_node_facts_through_a_merge_key(tmp_path: Path) -> None:
    """`esphome: <<: *base` takes the name from the anchor, the block's own keys win."""
    _write(
        tmp_path,
        "node.yaml",
        ".base: &base\n  name: from-anchor\n  friendly_name: Anchor\n"
        "esphome:\n  <<: *base\n  friendly_name: Own\n",
    )
    node = read_node(tmp_path, "node.yaml", esphome_version=VERSION)
    assert node is not None
    assert (node.name, node.friendly_name) == ("from-anchor", "Own")
