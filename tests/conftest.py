"""Shared fixtures for every test: the Home Assistant test plugin and blocking-call detection.

Home Assistant's own `block_async_io` skips `open`, `listdir` and friends when it sees a test
run, so the suite installs its own guard on the same calls: any of them made on a thread that
runs an event loop, with this integration's code on the stack, raises at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
import functools
import glob
import importlib
import os
import pathlib
import sys
import time
from typing import Any

import pytest

pytest_plugins = ["pytest_homeassistant_custom_component"]

_PACKAGE_MARKER = f"{os.sep}custom_components{os.sep}esphome_pipeline{os.sep}"

# (owner, attribute) pairs Home Assistant's block_async_io watches.
_GUARDED_CALLS: list[tuple[Any, str]] = [
    (__import__("builtins"), "open"),
    (os, "listdir"),
    (os, "scandir"),
    (os, "walk"),
    (glob, "glob"),
    (glob, "iglob"),
    (time, "sleep"),
    (importlib, "import_module"),
    (pathlib.Path, "open"),
    (pathlib.Path, "read_text"),
    (pathlib.Path, "read_bytes"),
    (pathlib.Path, "write_text"),
    (pathlib.Path, "write_bytes"),
    (pathlib.Path, "iterdir"),
    (pathlib.Path, "glob"),
    (pathlib.Path, "rglob"),
]


class BlockingCallError(RuntimeError):
    """A blocking call ran inside the event loop from this integration's code."""


def _called_from_integration() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if _PACKAGE_MARKER in frame.f_code.co_filename:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _allowed(name: str, args: tuple[Any, ...]) -> bool:
    """Mirror Home Assistant's exemptions: loaded modules and `/proc` reads do not block."""
    first = str(args[0]) if args else ""
    if name.endswith("import_module"):
        return first in sys.modules
    return first.startswith("/proc/")


def _guard(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if (
            asyncio._get_running_loop() is not None
            and not _allowed(name, args)
            and _called_from_integration()
        ):
            raise BlockingCallError(
                f"Detected blocking call to {name} inside the event loop by custom "
                "integration 'esphome_pipeline'"
            )
        return func(*args, **kwargs)

    return guarded


@pytest.fixture(autouse=True)
def detect_blocking_calls() -> Iterator[None]:
    """Fail any test in which the integration blocks the event loop."""
    originals = [(owner, attr, getattr(owner, attr)) for owner, attr in _GUARDED_CALLS]
    for owner, attr, func in originals:
        setattr(owner, attr, _guard(func, f"{getattr(owner, '__name__', owner)}.{attr}"))
    try:
        yield
    finally:
        for owner, attr, func in originals:
            setattr(owner, attr, func)
