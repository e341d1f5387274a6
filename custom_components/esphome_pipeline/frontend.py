"""The dashboard card's bundle: served by Home Assistant and loaded by its frontend on its own.

Owns: the static path of the built card (`frontend/esphome-pipeline-card.js`, committed, built
from the TypeScript sources in the repository's top-level `frontend/`) and its registration as
an extra frontend module, so a HACS install brings the card with no manual resource step.

The module URL carries the integration version and a digest of the bundle (`?v=...`): the file
is served with long cache headers, so a new bundle must come with a new URL.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

from homeassistant.components.frontend import add_extra_js_url
from homeassistant.components.http import StaticPathConfig
from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_integration

from .const import DOMAIN

CARD_DIR: Final = Path(__file__).parent / "frontend"
CARD_FILE: Final = "esphome-pipeline-card.js"
URL_BASE: Final = f"/{DOMAIN}_frontend"
"""Where the bundle folder is served (a path no core integration uses)."""
DIGEST_LENGTH: Final = 12


def card_url(version: str, bundle: bytes) -> str:
    """Return the card's module URL for this integration version and bundle content."""
    digest = hashlib.sha256(bundle).hexdigest()[:DIGEST_LENGTH]
    return f"{URL_BASE}/{CARD_FILE}?v={version}-{digest}"


async def async_register_card(hass: HomeAssistant) -> str:
    """Serve the card's folder and add its module to every frontend page; return its URL."""
    integration = await async_get_integration(hass, DOMAIN)
    bundle = await hass.async_add_executor_job((CARD_DIR / CARD_FILE).read_bytes)
    url = card_url(str(integration.version), bundle)
    await hass.http.async_register_static_paths(
        [StaticPathConfig(URL_BASE, str(CARD_DIR), cache_headers=True)]
    )
    add_extra_js_url(hass, url)
    return url
