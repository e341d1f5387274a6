"""The Home Assistant layer's layout: one way to the engine, a pure snapshot, small modules."""

from __future__ import annotations

import ast
from pathlib import Path
import re

import pytest

PACKAGE = Path(__file__).parents[2] / "custom_components" / "esphome_pipeline"
HA_MODULES = sorted(PACKAGE.glob("*.py"))
MAX_LINES = 440
"""About 400: the coordinator (life cycle, event intake, the request facade, publishing) sits
just above it; past this, a module is split along a seam."""


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", HA_MODULES, ids=lambda path: path.name)
def test_only_the_coordinator_reaches_the_engine(path: Path) -> None:
    """Actions, entities and diagnostics use the coordinator's requests, never its engine."""
    if path.name == "coordinator.py":
        return
    source = path.read_text(encoding="utf-8")
    # An attribute named engine (`coordinator.engine`), not the `.engine` package of an import.
    assert not re.search(r"(?<=[\w)\]])\.engine\b|\b_engine\b", source)
    if path.name != "__init__.py":  # setup builds the engine and hands it over
        assert ".engine.firmware.FirmwareEngine" not in _imports(path)


def test_snapshot_is_pure() -> None:
    """The snapshot module imports no Home Assistant code."""
    imports = _imports(PACKAGE / "snapshot.py")
    assert not {name for name in imports if name.startswith("homeassistant")}


@pytest.mark.parametrize("path", HA_MODULES, ids=lambda path: path.name)
def test_modules_stay_small(path: Path) -> None:
    """No module of the Home Assistant layer grows past about 400 lines (MAX_LINES)."""
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES
