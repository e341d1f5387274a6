"""Static checks of the integration's metadata files (a small stand-in for hassfest)."""

from __future__ import annotations

import json
from pathlib import Path
import re
from typing import Any

from homeassistant.helpers import service
import pytest
import yaml

from custom_components.esphome_pipeline import services as services_module
from custom_components.esphome_pipeline.engine import errors
from custom_components.esphome_pipeline.engine.esphome_cli import EsphomeCliError

PACKAGE = Path(__file__).parents[2] / "custom_components" / "esphome_pipeline"


def _source(name: str) -> str:
    return (PACKAGE / name).read_text(encoding="utf-8")


def _json(name: str) -> Any:
    return json.loads((PACKAGE / name).read_text(encoding="utf-8"))


def test_translations_match_strings() -> None:
    """translations/en.json is strings.json."""
    assert _json("translations/en.json") == _json("strings.json")


def test_manifest() -> None:
    """The manifest has what HACS and Home Assistant require."""
    manifest = _json("manifest.json")
    assert manifest["domain"] == "esphome_pipeline"
    assert manifest["name"] == "ESPHome Pipeline"
    for key in ("codeowners", "documentation", "issue_tracker", "version", "iot_class"):
        assert manifest[key]
    assert manifest["config_flow"] is True
    # Packages Home Assistant itself pins are given as a floor: an exact pin would clash with
    # the constraints of a newer Home Assistant and stop the integration from loading. The
    # peer link (remote builds) needs the Noise library; HA already ships this version.
    assert manifest["requirements"] == [
        "aioesphomeapi>=29.9.0",
        "esptool==5.6.0",
        "noiseprotocol==0.3.1",
        "pyserial-asyncio-fast>=0.14",
    ]
    png = (PACKAGE / "brand" / "icon.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(png[16:20]) == int.from_bytes(png[20:24]) == 256


def test_services_yaml_matches_strings_and_icons() -> None:
    """Every action is described, translated (with each field) and has an icon."""
    described = service._SERVICES_SCHEMA(
        yaml.safe_load((PACKAGE / "services.yaml").read_text(encoding="utf-8"))
    )
    strings = _json("strings.json")["services"]
    icons = _json("icons.json")["services"]
    registered = {
        value for name, value in vars(services_module).items() if name.startswith("SERVICE_")
    }
    assert set(described) == set(strings) == set(icons) == registered
    for name, description in described.items():
        assert set(description["fields"]) == set(strings[name]["fields"]), name


@pytest.mark.parametrize(
    "error",
    [
        errors.EngineError,
        errors.InvalidRequestError,
        errors.InvalidConfigurationError,
        errors.InvalidPortError,
        errors.UnknownJobError,
        errors.ResetFailedError,
        errors.EngineStoppedError,
        EsphomeCliError,
    ],
)
def test_engine_errors_are_translated(error: type[errors.EngineError]) -> None:
    """Every engine error the actions can raise has a message."""
    assert error.translation_key in _json("strings.json")["exceptions"]


def test_translation_keys_used_in_code_exist() -> None:
    """Every translation key the code names is in strings.json."""
    strings = _json("strings.json")
    exceptions = set(strings["exceptions"])
    issues = set(strings["issues"])
    errors_ = set(strings["config"]["error"])
    platforms = {name: _source(f"{name}.py") for name in strings["entity"]}
    # The hub's `esphome` update entity lives in a module of its own.
    platforms["update"] += re.sub(r'translation_key="[a-z_]+"', "", _source("esphome_update.py"))
    # The build peers' sensors too.
    platforms["sensor"] += _source("peer_entities.py")
    for platform, platform_source in platforms.items():
        # Entity descriptions name their entity's translation key.
        described = set(re.findall(r'translation_key="([a-z_]+)"', platform_source))
        described |= set(re.findall(r'_KEY: Final = "([a-z_]+)"', platform_source))
        assert described == set(strings["entity"][platform]), platform
    source = "\n".join(
        path.read_text(encoding="utf-8")
        for path in PACKAGE.glob("*.py")
        if path.stem not in platforms and path.stem != "peer_entities"
    )
    used = set(re.findall(r'translation_key="([a-z_]+)"', source))
    used |= set(re.findall(r'invalid_input\(\s*"([a-z_]+)"', source))
    assert {
        "folder_missing", "cli_unavailable", "no_targets", "unknown_configuration",
        "unreadable_configuration",
    } <= used  # fmt: skip
    assert used <= exceptions | issues
    reasons = set(re.findall(r'reason = "([a-z_]+)"', source)) - {"unknown"}
    assert "folder_not_found" in reasons
    assert reasons <= errors_
    assert {"cli_not_found", "cli_invalid", "cli_failed"} <= set(strings["options"]["error"])
    entity_keys = {key for platform in strings["entity"].values() for key in platform}
    assert entity_keys == {
        "firmware", "compile", "upload", "last_error", "compile_lane", "upload_lane",
        "queue_depth", "next_job", "install", "cancel", "clean", "reset_build_env", "esphome",
        "peer_connected", "peer_state", "peer_esphome_version",
    }  # fmt: skip
    icon_keys = {key for platform in _json("icons.json")["entity"].values() for key in platform}
    assert icon_keys == entity_keys - {"firmware"}


def test_quality_scale_lists_every_rule() -> None:
    """quality_scale.yaml names all 54 rules, each done, todo or exempt with a reason."""
    rules = yaml.safe_load((PACKAGE / "quality_scale.yaml").read_text(encoding="utf-8"))["rules"]
    assert len(rules) == 54
    for name, status in rules.items():
        if isinstance(status, dict):
            assert status["status"] in {"done", "todo", "exempt"}, name
            assert status.get("comment") or status["status"] != "exempt", name
        else:
            assert status in {"done", "todo"}, name


def test_action_descriptions_are_plain_text() -> None:
    """The action dialog shows descriptions as plain text: no Markdown backticks."""
    for name, action in _json("strings.json")["services"].items():
        assert "`" not in action["description"], name
        for field_name, field in action["fields"].items():
            assert "`" not in field["description"], (name, field_name)
    force = _json("strings.json")["services"]["install"]["fields"]["force"]["description"]
    assert "upload" in force  # install's force also never skips the upload
