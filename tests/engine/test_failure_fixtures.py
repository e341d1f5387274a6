"""`failure_summary` on real outputs of the real ESPHome CLI (tests/fixtures/esphome_output).

Each fixture is fed as bytes through the runner's `LineSplitter`, exactly as a job's output
reaches `failure_summary`, and must give ESPHome's own message, not a line around it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from custom_components.esphome_pipeline.engine.output import (
    LineSplitter,
    failure_summary,
    reported_message,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "esphome_output"

EXPECTED = {
    "unknown_value": "Unknown value 'banana', valid options are 'seconds', 'timestamp'.",
    "unknown_value_nested": (
        "Unknown value 'banana', valid options are 'ns', 'nanoseconds', 'us', 'µs', "
        "'microseconds', 'ms', 'milliseconds', 's', 'sec', 'seconds', 'min', 'minutes', 'h', "
        "'hours', 'd', 'days'."
    ),
    "invalid_port_value": "Expected integer, but cannot parse not-a-port-number as an integer.",
    "missing_secret": (
        "Error reading file secrets.yaml: [Errno 2] No such file or directory: 'secrets.yaml'"
    ),
    "missing_secret_key": (
        "Secret 'wifi_ssid' not defined (in \"secret-key.yaml\", line 6, column 9)"
    ),
    "bad_include": (
        "Error including file 'extras/missing.yaml': Error reading file extras/missing.yaml: "
        "[Errno 2] No such file or directory: 'extras/missing.yaml'"
    ),
    "unknown_component": "Component not found: bananas.",
    "yaml_syntax": (
        'while parsing a flow sequence (in "yaml-syntax.yaml", line 5, column 10); '
        "expected ',' or ']', but got '<stream end>' (in \"yaml-syntax.yaml\", line 6, column 1)"
    ),
    # gcc quotes with typographic quotes.
    "compiler_error": (
        "compiler-error.yaml:18:14: error: \u2018banana\u2019 was not declared in this scope"
    ),
    "linker_error": "undefined reference to `pipeline_missing_function()'",
    "component_crash": "crashy component failed while generating code",
    "cli_crash": "ModuleNotFoundError: No module named 'voluptuous_dependency_removed'",
    "ota_refused": (
        "Upload failed after 3 attempts: connecting to 127.0.0.1 failed: "
        "[Errno 111] Connection refused"
    ),
    "ota_auth_failure": "receiving auth result: Authentication invalid. Is the password correct?",
    "device_unreachable": (
        "Upload failed after 3 attempts: connecting to 192.0.2.1 failed: "
        "[Errno 111] Connection refused"
    ),
    "device_unresolved": (
        "Error resolving IP address: Error resolving good-device.invalid to IP address: "
        "[Errno -2] Name or service not known"
    ),
}


def output_lines(name: str) -> list[str]:
    """The fixture's lines as the runner delivers them."""
    splitter = LineSplitter()
    data = (FIXTURES / f"{name}.log").read_bytes()
    return [line for line, _ in splitter.feed(data) + splitter.flush()]


def test_every_fixture_is_checked() -> None:
    """No fixture is kept without an expectation, and none is missing."""
    assert {path.stem for path in FIXTURES.glob("*.log")} == set(EXPECTED)


@pytest.mark.parametrize(("name", "message"), sorted(EXPECTED.items()))
def test_failure_summary_gives_esphome_s_message(name: str, message: str) -> None:
    """ESPHome's own words, at most FAILURE_SUMMARY_LIMIT characters."""
    assert failure_summary(output_lines(name)) == message


def test_fixtures_hold_no_machine_paths() -> None:
    """Temp folders and virtualenvs were replaced by placeholders."""
    for path in FIXTURES.glob("*.log"):
        text = path.read_text(encoding="utf-8")
        assert "/tmp/" not in text
        assert "site-packages" not in text or "<esphome_venv>" in text


def test_reported_message_drops_the_exit_code_prefix() -> None:
    """The executor's "ESPHome compile failed with exit code 2: " is not what people read."""
    assert (
        reported_message("ESPHome compile failed with exit code 2: Component not found: x.")
        == "Component not found: x."
    )
    assert reported_message("Cancelled on request") == "Cancelled on request"
