"""A user in a real browser: log in, open a demo device, press Install, watch it complete.

The system Chromium (Debian `chromium`, installed by `script/setup-browser`) is driven through
Playwright's `executable_path`; Playwright's own browser download is never used. Screenshots of
the device page during the compile and after completion land in `test-output/e2e-browser/`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from script.devkit import REPO_ROOT
from script.devkit.api import HomeAssistantWebSocket
from script.devkit.demo import read_compilation_time
from script.devkit.site import PASSWORD, USERNAME, Site

from .harness import E2E_TIMEOUT, JobTracker

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(E2E_TIMEOUT)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 240_000
"""Failure guard for the page to show a state (a cold compile under load is well below)."""
SCREENSHOTS = REPO_ROOT / "test-output" / "e2e-browser"


async def test_install_from_the_device_page(e2e_site: Site, ws: HomeAssistantWebSocket) -> None:
    """Login, device page with the firmware update entity, Install, progress, completion."""
    if not CHROMIUM.exists():
        # A run that selected the browser test must not pass without it: script/test installs
        # Chromium first; the fast suite deselects this test with -m "not browser".
        pytest.fail(f"{CHROMIUM} is missing: run script/setup-browser (script/test does)")
    from playwright.async_api import async_playwright, expect

    site = e2e_site
    configuration = site.configurations()[-1]
    demo = site.demo(configuration)
    site.bump(configuration)  # a real rebuild: seconds of "Running" to see
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    jobs = await JobTracker.subscribe(ws)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            await page.goto(f"{site.base_url}/")
            await page.locator("input[name=username]").fill(USERNAME)
            await page.locator("input[name=password]").fill(PASSWORD)
            await page.keyboard.press("Enter")
            await page.wait_for_url("**/lovelace/**")

            await page.goto(f"{site.base_url}/config/devices/dashboard")
            await page.get_by_text(demo.friendly_name, exact=True).click()
            await page.wait_for_url("**/config/devices/device/**")
            rows = "hui-simple-entity-row, hui-sensor-entity-row, hui-update-entity-row"
            firmware = page.locator(rows).filter(has_text="Firmware")
            compile_row = page.locator(rows).filter(has_text="Compile")
            upload_row = page.locator(rows).filter(has_text="Upload")
            await expect(firmware).to_be_visible()

            install = page.locator("hui-button-entity-row").filter(has_text="Install")
            await install.get_by_role("button", name="Press").click()

            await jobs.wait_for(
                lambda: any(
                    e["configuration"] == configuration
                    and e["job_type"] == "compile"
                    and e["status"] == "running"
                    for e in jobs.events
                )
            )
            await expect(compile_row).to_contain_text("Running", timeout=UI_TIMEOUT_MS)
            await page.screenshot(path=str(SCREENSHOTS / "1-compiling.png"))

            await jobs.wait_for(
                lambda: any(
                    e["configuration"] == configuration
                    and e["job_type"] == "upload"
                    and e["status"] in ("completed", "failed", "cancelled")
                    for e in jobs.events
                )
            )
            await expect(upload_row).to_contain_text("Completed", timeout=UI_TIMEOUT_MS)
            await expect(compile_row).to_contain_text("Completed", timeout=UI_TIMEOUT_MS)
            await expect(firmware).to_contain_text("Up-to-date", timeout=UI_TIMEOUT_MS)
            await page.screenshot(path=str(SCREENSHOTS / "2-installed.png"))
        finally:
            await browser.close()

    assert await read_compilation_time(demo.api_port) == site.build_time(configuration)
    assert (SCREENSHOTS / "2-installed.png").stat().st_size > 0
