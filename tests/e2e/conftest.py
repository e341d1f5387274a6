"""Fixtures of the end-to-end tests: one real site per test session.

The session fixture builds everything once (the demo devices are compiled cold once, which is
most of the set-up time), as a user would: a Home Assistant configuration folder with a login
made by `hass --script auth`, `hass` started on a free loopback port, a token from the REST
login flow, and the ESPHome Pipeline entry created through the config-flow API with the real
ESPHome CLI (see `script.devkit.site`). Every process it starts is stopped at the end.

The Home Assistant test plugin disables sockets around each test; the session fixture enables
them while it talks to the real Home Assistant, and each test requests `socket_enabled`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
import contextlib
from pathlib import Path
from typing import Final

import aiohttp
import pytest
import pytest_socket  # type: ignore[import-untyped]

from script.devkit import ESPHOME_CLI
from script.devkit.api import HomeAssistantWebSocket
from script.devkit.site import Site

DEMO_DEVICE_COUNT = 4


@contextlib.contextmanager
def _sockets_enabled() -> Iterator[None]:
    """Let the session fixture reach the real Home Assistant on 127.0.0.1."""
    pytest_socket.enable_socket()
    try:
        yield
    finally:
        pytest_socket.disable_socket(allow_unix_socket=True)


@pytest.fixture(scope="session")
def e2e_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A real Home Assistant with ESPHome Pipeline on running demo devices (session-wide)."""
    if not ESPHOME_CLI.exists():
        pytest.fail(f"the real ESPHome CLI is missing ({ESPHOME_CLI}): run script/setup")
    root = tmp_path_factory.mktemp("e2e")
    with _sockets_enabled():
        site = Site.prepare(root, device_count=DEMO_DEVICE_COUNT)
        try:
            site.start()
        except BaseException:
            site.stop()
            raise
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
async def ws(e2e_site: Site, socket_enabled: None) -> AsyncIterator[HomeAssistantWebSocket]:
    """An authenticated WebSocket connection to the site's Home Assistant."""
    async with (
        aiohttp.ClientSession() as session,
        HomeAssistantWebSocket(session, e2e_site.base_url, e2e_site.token) as websocket,
    ):
        yield websocket


FIRST: Final = ("test_device_truth.py",)
"""End-to-end modules that need the shared site as it starts (devices on the folder's builds,
untouched by any install)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the end-to-end modules of FIRST before any other test changes the shared site."""
    here = Path(__file__).parent
    items.sort(key=lambda item: not (item.path.parent == here and item.path.name in FIRST))
