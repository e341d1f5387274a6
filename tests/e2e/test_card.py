"""The dashboard card in a real browser, on a real Home Assistant with real ESPHome devices.

A dashboard holding the card is created through the WebSocket API (`lovelace/config/save`),
then the system Chromium (as in test_browser.py) watches a real install move through the
compile and upload lanes with the compiler's lines in the live log, cancels a running compile
from the card (its held upload is cancelled too), and presses "Install all outdated", which
must queue exactly the configurations whose firmware entity offers an update. Screenshots
(light, dark, phone width) land in `test-output/e2e-card/`; `docs/dashboard.md` shows them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from script.devkit import REPO_ROOT
from script.devkit.api import HomeAssistantWebSocket
from script.devkit.demo import build_dir, esphome
from script.devkit.site import PASSWORD, USERNAME, Site

from .harness import E2E_TIMEOUT, JobTracker, StateTracker, entity_ids, install
from .test_browser import CHROMIUM, CHROMIUM_ARGS, UI_TIMEOUT_MS
from .test_cancel import _wait_for_compiler

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(E2E_TIMEOUT)]

SCREENSHOTS = REPO_ROOT / "test-output" / "e2e-card"
DASHBOARD = "esphome-pipeline"
VIEW = "firmware"
CARD = "esphome-pipeline-card"


async def _create_dashboard(ws: HomeAssistantWebSocket) -> None:
    """A dashboard with one panel view holding the card, as a user would save it."""
    dashboards = await ws.call("lovelace/dashboards/list")
    if not any(item["url_path"] == DASHBOARD for item in dashboards):
        await ws.call(
            "lovelace/dashboards/create",
            url_path=DASHBOARD,
            title="Firmware",
            icon="mdi:chip",
            show_in_sidebar=True,
            require_admin=False,
        )
    await ws.call(
        "lovelace/config/save",
        url_path=DASHBOARD,
        config={
            "views": [
                {
                    "title": "Firmware",
                    "path": VIEW,
                    "panel": True,
                    "cards": [{"type": f"custom:{CARD}", "history": 6}],
                }
            ]
        },
    )


async def _outdated(ws: HomeAssistantWebSocket, entry_id: str) -> set[str]:
    """The configurations whose firmware update entity is `on` (an update available)."""
    prefix = f"{entry_id}_"
    firmware = {
        entry["entity_id"]: entry["unique_id"].removeprefix(prefix).removesuffix("_firmware")
        for entry in await ws.entity_registry()
        if entry.get("config_entry_id") == entry_id and entry["unique_id"].endswith("_firmware")
    }
    states = await ws.states()
    return {
        configuration
        for entity_id, configuration in firmware.items()
        if states.get(entity_id, {}).get("state") == "on"
    }


async def _theme_applied(page: Any, card: Any, *, dark: bool) -> None:
    """Wait until the card's background has turned dark (or light): the theme's transition
    has ended, so the screenshot shows the theme and not a blend of both."""
    handle = await card.locator("ha-card").element_handle()
    await page.wait_for_function(
        """([element, dark]) => {
            const [r, g, b] = getComputedStyle(element).backgroundColor.match(/\\d+/g).map(Number);
            const light = (r + g + b) / 3;
            return dark ? light < 60 : light > 200;
        }""",
        arg=[handle, dark],
    )


def _cold(site: Site, configuration: str) -> None:
    """Clean the build and change the firmware: the next compile runs for many seconds."""
    esphome("clean", str(site.folder / configuration))
    site.bump(configuration)


async def test_card_on_a_dashboard(e2e_site: Site, ws: HomeAssistantWebSocket) -> None:
    """Progress through both lanes, the live log, Cancel, and "Install all outdated"."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run script/setup-browser (script/test does)")
    from playwright.async_api import async_playwright, expect

    site = e2e_site
    first, second = site.configurations()[0], site.configurations()[1]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await _create_dashboard(ws)
    jobs = await JobTracker.subscribe(ws)
    await asyncio.to_thread(_cold, site, first)

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
            await page.goto(f"{site.base_url}/{DASHBOARD}/{VIEW}")
            card = page.locator(CARD)
            await expect(card.locator("section.lane[data-lane=compile]")).to_be_visible()

            def job_row(lane: str, configuration: str, job_type: str) -> Any:
                return card.locator(
                    f"section[data-lane={lane}] .row[data-configuration='{configuration}']"
                    f"[data-job-type={job_type}]"
                )

            # 1. A real install: compile running with its upload held, the compiler's lines in
            #    the live log, then both completed among the results.
            chain = (await install(ws, [first]))[first]
            compiling = job_row("compile", first, "compile")
            await expect(compiling).to_have_attribute("data-state", "running")
            held = job_row("upload", first, "upload")
            await expect(held).to_have_attribute("data-state", "held")
            await expect(held).to_contain_text("waits for its compile")
            await compiling.click()
            log = card.locator("section.log pre")
            await expect(log).to_contain_text("Compiling")
            await expect(compiling.locator(".bar[aria-valuenow]")).to_be_visible()
            await page.screenshot(path=str(SCREENSHOTS / "card-light.png"))
            await page.emulate_media(color_scheme="dark")
            await _theme_applied(page, card, dark=True)
            await page.screenshot(path=str(SCREENSHOTS / "card-dark.png"))
            await page.emulate_media(color_scheme="light")
            await _theme_applied(page, card, dark=False)
            await jobs.wait_finished([chain["compile_job_id"], chain["upload_job_id"]])
            assert jobs.statuses(chain["compile_job_id"]) == ["queued", "running", "completed"]
            assert jobs.statuses(chain["upload_job_id"]) == ["queued", "running", "completed"]
            results = card.locator("section.results")
            for job_type in ("compile", "upload"):
                await expect(
                    results.locator(
                        f".row[data-configuration='{first}'][data-job-type={job_type}]"
                    ).first
                ).to_have_attribute("data-state", "completed")
            await expect(card.locator("section.log")).to_contain_text("completed")

            # 2. Cancel on the card stops a running compile; the held upload is cancelled.
            await asyncio.to_thread(_cold, site, second)
            chain = (await install(ws, [second]))[second]
            compile_id, upload_id = chain["compile_job_id"], chain["upload_job_id"]
            running = job_row("compile", second, "compile")
            await expect(running).to_have_attribute("data-state", "running")
            await _wait_for_compiler(str(build_dir(site.folder, site.demo(second))))
            await running.locator("button.cancel").click()
            await jobs.wait_finished([compile_id, upload_id])
            assert jobs.statuses(compile_id) == ["queued", "running", "cancelled"]
            assert jobs.statuses(upload_id) == ["queued", "cancelled"]
            assert site.esphome_processes() == []
            await expect(results.locator(f".row[data-job-id='{compile_id}']")).to_have_attribute(
                "data-state", "cancelled"
            )

            # 3. "Install all outdated" queues exactly the configurations with an update.
            site.bump(first)  # installed above, changed now: outdated
            await _rescan_until_outdated(ws, site, first)
            expected = await _outdated(ws, site.entry_id)
            assert first in expected
            install_all = card.locator("button.install-all")
            await expect(install_all).to_contain_text(f"({len(expected)})")
            await page.set_viewport_size({"width": 390, "height": 844})
            await page.screenshot(path=str(SCREENSHOTS / "card-phone.png"), full_page=True)
            await page.set_viewport_size({"width": 1280, "height": 1000})
            seen = len(jobs.events)
            await install_all.click()
            await jobs.wait_for(
                lambda: {
                    event["configuration"]
                    for event in jobs.events[seen:]
                    if event["job_type"] == "compile"
                }
                >= expected
            )
            queued = [
                event
                for event in jobs.events[seen:]
                if event["status"] == "queued" and event["job_type"] == "compile"
            ]
            assert sorted(event["configuration"] for event in queued) == sorted(expected)
            await jobs.wait_finished(
                [
                    event["job_id"]
                    for event in jobs.events[seen:]
                    if event["status"] == "queued" and event["job_type"] in ("compile", "upload")
                ]
            )
            await expect(card.locator("section.updates .row.update")).to_have_count(0)
        finally:
            await browser.close()

    for name in ("card-light.png", "card-dark.png", "card-phone.png"):
        assert (SCREENSHOTS / name).stat().st_size > 0


async def _rescan_until_outdated(
    ws: HomeAssistantWebSocket, site: Site, configuration: str
) -> None:
    """Have the folder rescanned, then wait until the firmware entity offers the update."""
    firmware = (await entity_ids(ws, site.entry_id, configuration))["firmware"]
    states = await StateTracker.subscribe(ws)
    await ws.get_jobs(configuration=[configuration])  # names a configuration: a fresh scan
    await states.wait_for(firmware, lambda state: state["state"] == "on")
