"""The suite's blocking-call guard catches the integration blocking the loop, and only that."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import BlockingCallError

_INTEGRATION_FILE = str(
    Path(__file__).parents[1] / "custom_components" / "esphome_pipeline" / "guard_probe.py"
)


def _run_as_integration(source: str, namespace: dict[str, object]) -> None:
    exec(compile(source, _INTEGRATION_FILE, "exec"), namespace)  # noqa: S102


async def test_open_in_the_loop_from_the_integration_raises(tmp_path: Path) -> None:
    """A file read on the event loop by integration code is reported."""
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(BlockingCallError, match="open inside the event loop"):
        _run_as_integration("open(path).close()", {"path": str(target)})


async def test_exemptions_match_home_assistant(tmp_path: Path) -> None:
    """Loaded modules and /proc reads pass, as in Home Assistant's own detector."""
    _run_as_integration(
        "import importlib\nimportlib.import_module('json')\nopen('/proc/self/stat').close()", {}
    )


def test_outside_the_loop_nothing_is_reported(tmp_path: Path) -> None:
    """Executor threads and plain code may block: the guard ignores them."""
    target = tmp_path / "file.txt"
    target.write_text("x")
    _run_as_integration("open(path).close()", {"path": str(target)})
