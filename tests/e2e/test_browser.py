"""A user in a real browser: the device page, its update dialog, its errors, its Cancel.

The system Chromium (Debian `chromium`, installed by `script/setup-browser`) is driven through
Playwright's `executable_path`; Playwright's own browser download is never used. Screenshots of
each state land in `test-output/e2e-browser/` (look at them: they are what a user saw).

Each test takes its own demo device of the session's site: the devices were compiled once by
the site's set-up but never installed through ESPHome Pipeline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
import contextlib
from pathlib import Path
import re
from typing import TYPE_CHECKING, Any

import pytest

from script.devkit import REPO_ROOT
from script.devkit.api import HomeAssistantWebSocket
from script.devkit.demo import (
    DemoDevice,
    read_compilation_time,
    render_configuration,
    write_configuration,
)
from script.devkit.site import PASSWORD, USERNAME, Site

from .harness import E2E_TIMEOUT, TERMINAL, JobTracker

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page

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
ROWS = "hui-simple-entity-row, hui-sensor-entity-row, hui-update-entity-row"
BANANA = "Unknown value 'banana'"


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """The system Chromium, headless; a run that selected the browser tests needs it."""
    if not CHROMIUM.exists():
        # A run that selected the browser test must not pass without it: script/test installs
        # Chromium first; the fast suite deselects this test with -m "not browser".
        pytest.fail(f"{CHROMIUM} is missing: run script/setup-browser (script/test does)")
    from playwright.async_api import async_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def logged_in(browser: Browser, site: Site) -> Page:
    """A new page, logged in to the site's Home Assistant."""
    page = await browser.new_page(viewport={"width": 1280, "height": 1400})
    page.set_default_timeout(UI_TIMEOUT_MS)
    await page.goto(f"{site.base_url}/")
    await page.locator("input[name=username]").fill(USERNAME)
    await page.locator("input[name=password]").fill(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/lovelace/**")
    return page


async def device_page(browser: Browser, site: Site, demo: DemoDevice) -> Page:
    """Log in and open the demo device's page."""
    page = await logged_in(browser, site)
    await page.goto(f"{site.base_url}/config/devices/dashboard")
    await page.get_by_text(demo.friendly_name, exact=True).click()
    await page.wait_for_url("**/config/devices/device/**")
    return page


def row(page: Page, name: str) -> Locator:
    """The device page's entity row whose name is `name`."""
    return page.locator(ROWS).filter(has_text=name)


async def press(page: Page, name: str) -> None:
    """Press the device page's button `name`."""
    button_row = page.locator("hui-button-entity-row").filter(has_text=name)
    await button_row.get_by_role("button", name="Press").click()


def job_seen(
    jobs: JobTracker, configuration: str, job_type: str, *statuses: str
) -> Callable[[], bool]:
    """A condition: a job of this kind of `configuration` reached one of `statuses`."""
    return lambda: any(
        event["configuration"] == configuration
        and event["job_type"] == job_type
        and event["status"] in statuses
        for event in jobs.events
    )


def last_event(jobs: JobTracker, configuration: str, job_type: str) -> dict[str, Any]:
    """The latest event of `configuration`'s jobs of this kind."""
    return [
        event
        for event in jobs.events
        if event["configuration"] == configuration and event["job_type"] == job_type
    ][-1]


async def test_install_from_the_device_page(e2e_site: Site, ws: HomeAssistantWebSocket) -> None:
    """Login, device page with the firmware update entity, Install, progress, completion."""
    site = e2e_site
    configuration = site.configurations()[-1]
    demo = site.demo(configuration)
    site.bump(configuration)  # a real rebuild: seconds of "Running" to see
    jobs = await JobTracker.subscribe(ws)

    async with chromium() as browser:
        page = await device_page(browser, site, demo)
        firmware, compile_row = row(page, "Firmware"), row(page, "Compile")
        upload_row = row(page, "Upload")
        await firmware.wait_for()
        await press(page, "Install")

        await jobs.wait_for(job_seen(jobs, configuration, "compile", "running"))
        await expect_text(compile_row, "Running")
        await expect_text(upload_row, "Waiting")
        await page.screenshot(path=str(SCREENSHOTS / "1-compiling.png"))

        await jobs.wait_for(job_seen(jobs, configuration, "upload", *TERMINAL))
        await expect_text(upload_row, "Completed")
        await expect_text(compile_row, "Completed")
        await expect_text(firmware, "Up-to-date")
        await page.screenshot(path=str(SCREENSHOTS / "2-installed.png"))

    assert await read_compilation_time(demo.api_port) == site.build_time(configuration)
    assert (SCREENSHOTS / "2-installed.png").stat().st_size > 0


async def test_never_installed_device_installs_from_its_update_dialog(
    e2e_site: Site, ws: HomeAssistantWebSocket
) -> None:
    """A device the pipeline never installed, running an older build of its configuration:
    its update dialog says what the device runs and offers Install."""
    site = e2e_site
    configuration = site.configurations()[0]
    demo = site.demo(configuration)
    site.bump(configuration)  # edited since the device's build
    jobs = await JobTracker.subscribe(ws)

    async with chromium() as browser:
        page = await device_page(browser, site, demo)
        firmware = row(page, "Firmware")
        await expect_text(firmware, "Update available")
        await firmware.click()
        dialog = page.locator("ha-more-info-dialog")
        # What differs from the build the device runs (the pipeline never installed it).
        await expect_text(
            dialog, re.compile(r"changed since the installed build|Since the installed build")
        )
        await page.screenshot(path=str(SCREENSHOTS / "3-never-installed-dialog.png"))
        # Home Assistant's dialog names the install action "Update".
        await dialog.get_by_role("button", name=re.compile(r"^(install|update)$", re.I)).click()

        await jobs.wait_for(job_seen(jobs, configuration, "upload", *TERMINAL))
        assert last_event(jobs, configuration, "upload")["status"] == "completed"
        await expect_text(dialog, re.compile("up-to-date", re.I))
        await page.screenshot(path=str(SCREENSHOTS / "4-installed-from-dialog.png"))
        await page.keyboard.press("Escape")
        await expect_text(firmware, "Up-to-date")

    assert await read_compilation_time(demo.api_port) == site.build_time(configuration)


async def test_failing_yaml_shows_esphome_s_message(
    e2e_site: Site, ws: HomeAssistantWebSocket
) -> None:
    """ESPHome's own message on the device page (last error, logbook), not a nearby line."""
    site = e2e_site
    configuration = site.configurations()[1]
    demo = site.demo(configuration)
    jobs = await JobTracker.subscribe(ws)
    broken = render_configuration(demo).replace("update_interval: 30s", "update_interval: banana")
    assert "banana" in broken
    (site.folder / configuration).write_text(broken, encoding="utf-8")
    try:
        async with chromium() as browser:
            page = await device_page(browser, site, demo)
            await press(page, "Install")
            await jobs.wait_for(job_seen(jobs, configuration, "upload", *TERMINAL))
            failed = last_event(jobs, configuration, "compile")
            assert failed["status"] == "failed"
            assert BANANA in failed["error"]
            assert "platform: uptime" not in failed["error"]

            await expect_text(row(page, "Compile"), "Failed")
            await expect_text(row(page, "Last error"), BANANA)
            logbook = page.locator("ha-logbook")
            await expect_text(logbook, f"compile failed: {BANANA}")
            await expect_text(logbook, "upload cancelled: prerequisite did not complete")
            await page.screenshot(path=str(SCREENSHOTS / "5-esphome-message.png"), full_page=True)
    finally:
        write_configuration(site.folder, demo, revision=site.revisions.get(configuration, 1))
    log = site.hass_log.read_text(encoding="utf-8", errors="replace")
    assert f"compile failed: {BANANA}" in log


async def test_cancel_on_the_device_page_stops_a_running_compile(
    e2e_site: Site, ws: HomeAssistantWebSocket
) -> None:
    """Cancel is there while a job runs; pressing it ends the compile and its processes."""
    site = e2e_site
    configuration = site.configurations()[2]
    demo = site.demo(configuration)
    site.bump(configuration)  # a real rebuild, to cancel while it runs
    jobs = await JobTracker.subscribe(ws)

    async with chromium() as browser:
        page = await device_page(browser, site, demo)
        await press(page, "Install")
        await jobs.wait_for(job_seen(jobs, configuration, "compile", "running"))
        compile_row = row(page, "Compile")
        await expect_text(compile_row, "Running")
        await page.screenshot(path=str(SCREENSHOTS / "6-before-cancel.png"))
        await press(page, "Cancel")

        # The held upload ends at once; the compile once its process tree is gone.
        await jobs.wait_for(job_seen(jobs, configuration, "compile", *TERMINAL))
        await jobs.wait_for(job_seen(jobs, configuration, "upload", *TERMINAL))
        cancelled = last_event(jobs, configuration, "compile")
        assert cancelled["status"] == "cancelled"
        assert cancelled["error"] == "Cancelled on request"
        await expect_text(compile_row, "Cancelled")
        await expect_text(page.locator("ha-logbook"), "compile cancelled: cancelled on request")
        await page.screenshot(path=str(SCREENSHOTS / "7-cancelled.png"), full_page=True)
        cancel_button = page.locator("hui-button-entity-row").filter(has_text="Cancel")
        from playwright.async_api import expect

        await expect(cancel_button.get_by_role("button", name="Press")).to_be_disabled()

    assert not [command for _pid, command in site.esphome_processes() if configuration in command]


async def test_add_build_peer_is_offered_on_the_integration_page(e2e_site: Site) -> None:
    """Home Assistant 2025.4 offers subentry flows in the entry's menu: "Add build peer" is
    there, and it opens the pairing form (translated: no "Translation error" in it)."""
    async with chromium() as browser:
        page = await logged_in(browser, e2e_site)
        await page.goto(f"{e2e_site.base_url}/config/integrations/integration/esphome_pipeline")
        entry = page.locator("ha-md-list-item").filter(has_text="ESPHome Pipeline (")
        await entry.locator("ha-md-button-menu ha-icon-button").first.click()
        add_peer = page.get_by_text("Add build peer", exact=True)
        await add_peer.wait_for()
        await page.screenshot(path=str(SCREENSHOTS / "8-add-build-peer-menu.png"))
        await add_peer.click()
        dialog = page.locator("dialog-data-entry-flow")
        await expect_text(dialog, "Add a build peer")
        await expect_text(dialog, "Device Builder")
        await page.screenshot(path=str(SCREENSHOTS / "9-add-build-peer-form.png"))
        assert "Translation error" not in await dialog.inner_text()
        assert await dialog.get_by_text("Host", exact=True).count() == 1


async def expect_text(locator: Locator, text: str | re.Pattern[str]) -> None:
    """Wait until `locator` shows `text` (a failure guard, not a timing assertion)."""
    from playwright.async_api import expect

    await expect(locator.first).to_contain_text(text, timeout=UI_TIMEOUT_MS)
