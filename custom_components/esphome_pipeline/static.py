"""Files the integration serves itself: its icon, so pictures work without internet.

Home Assistant's update entities default to a picture on brands.home-assistant.io, which has
no image for this custom domain and is unreachable offline. The integration's own
`brand/icon.png` is served at `ICON_URL` instead (registered once, at integration setup, when
the HTTP server is loaded; tests without it skip the registration).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from homeassistant.components.http import StaticPathConfig
from homeassistant.core import HomeAssistant

from .const import DOMAIN

BRAND_DIR: Final = Path(__file__).parent / "brand"
STATIC_BASE: Final = f"/{DOMAIN}/static"
ICON_URL: Final = f"{STATIC_BASE}/icon.png"
_REGISTERED: Final = f"{DOMAIN}_static_registered"


async def async_register_static_paths(hass: HomeAssistant) -> None:
    """Serve the brand folder under STATIC_BASE (once per Home Assistant run)."""
    if "http" not in hass.config.components or hass.data.get(_REGISTERED):
        return
    hass.data[_REGISTERED] = True
    await hass.http.async_register_static_paths(
        [StaticPathConfig(STATIC_BASE, str(BRAND_DIR), cache_headers=True)]
    )
