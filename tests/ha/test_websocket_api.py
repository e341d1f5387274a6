"""The card's WebSocket API through Home Assistant's WebSocket test client.

Snapshot then updates, a job's log (kept output, live lines, result), unsubscribing, unknown
jobs and entries, admin-only commands, and a job printing 1,000 lines a second to a browser
that does not read until the job is over. Everything waits on messages, never on time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.components.frontend import DATA_EXTRA_MODULE_URL
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import (
    ClientSessionGenerator,
    WebSocketGenerator,
)

from custom_components.esphome_pipeline.const import CONF_CONFIG_DIR, CONF_ESPHOME_COMMAND, DOMAIN
from custom_components.esphome_pipeline.engine.events import EventKind, JobEvent
from custom_components.esphome_pipeline.frontend import CARD_DIR, CARD_FILE, URL_BASE
from custom_components.esphome_pipeline.websocket_api import LOG_MAX_LINES
from tests.fakes import FakeEsphome

from .conftest import coordinator_of, engine_of, setup_entry, wait_for_status

TERMINAL = {"completed", "failed", "cancelled"}
MESSAGE_TIMEOUT = 60.0
"""Failure guard for one message (the fake's jobs take well under a second)."""

type Client = Any


@pytest.fixture
async def loaded(hass: HomeAssistant, fake: FakeEsphome, entry: MockConfigEntry) -> MockConfigEntry:
    """A loaded entry with two configurations; compiles wait until `go` is released."""
    fake.add_config("kitchen")
    fake.add_config("garage")
    fake.behave("default", "compile", wait_for_file="go")
    await setup_entry(hass, entry)
    return entry


async def _receive(client: Client) -> dict[str, Any]:
    async with asyncio.timeout(MESSAGE_TIMEOUT):
        message: dict[str, Any] = await client.receive_json()
    return message


async def _command(client: Client, **payload: Any) -> dict[str, Any]:
    """Send a command; return its answer (the result or the error message)."""
    await client.send_json_auto_id(payload)
    return await _receive(client)


async def _subscribe(client: Client, **payload: Any) -> tuple[int, dict[str, Any]]:
    """Subscribe; return the subscription id and its first event."""
    answer = await _command(client, **payload)
    assert answer["success"], answer
    first = await _receive(client)
    assert first["type"] == "event"
    assert first["id"] == answer["id"]
    return answer["id"], first["event"]


async def _events_until(client: Client, done: Any) -> list[dict[str, Any]]:
    """Read events until `done(event)` holds for one; return them all."""
    events: list[dict[str, Any]] = []
    while True:
        message = await _receive(client)
        assert message["type"] == "event", message
        events.append(message["event"])
        if done(message["event"]):
            return events


def _statuses(events: list[dict[str, Any]], job_id: str) -> list[str]:
    """The statuses a job went through in `jobs` events, repeats (progress) collapsed."""
    seen: list[str] = []
    for event in events:
        for job in event.get("jobs", []):
            if job["job_id"] == job_id and (not seen or seen[-1] != job["status"]):
                seen.append(job["status"])
    return seen


def _has_status(job_id: str, status: str) -> Any:
    def check(event: dict[str, Any]) -> bool:
        return any(
            job["job_id"] == job_id and job["status"] == status for job in event.get("jobs", [])
        )

    return check


async def test_card_is_served_and_loaded_by_the_frontend(
    hass: HomeAssistant, loaded: MockConfigEntry, hass_client: ClientSessionGenerator
) -> None:
    """The bundle is served at the static path and added as a versioned frontend module."""
    urls = [url for url in hass.data[DATA_EXTRA_MODULE_URL].urls if url.startswith(URL_BASE)]
    assert len(urls) == 1
    assert urls[0].startswith(f"{URL_BASE}/{CARD_FILE}?v=")
    client = await hass_client()
    response = await client.get(urls[0])
    assert response.status == 200
    assert await response.read() == (CARD_DIR / CARD_FILE).read_bytes()


async def test_snapshot_then_updates(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    fake: FakeEsphome,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """The snapshot, then every status change of an install in order, then update changes."""
    client = await hass_ws_client(hass)
    _, snapshot = await _subscribe(client, type=f"{DOMAIN}/subscribe_jobs")
    assert snapshot["event"] == "snapshot"
    assert snapshot["entry_id"] == loaded.entry_id
    assert snapshot["jobs"] == []
    assert snapshot["peers"] == []
    assert snapshot["lanes"] == {"compile": {"workers": 1}, "upload": {"slots": 4}}
    assert [item["configuration"] for item in snapshot["configurations"]] == [
        "garage.yaml",
        "kitchen.yaml",
    ]
    # Never installed through the pipeline: both need an install (as their firmware entities say).
    assert all(item["update_available"] for item in snapshot["configurations"])

    # A second connection gives the commands, so the subscription's messages stay apart.
    commands = await hass_ws_client(hass)
    answer = await _command(
        commands, type=f"{DOMAIN}/install", configuration=["kitchen.yaml"], entry_id=loaded.entry_id
    )
    assert answer["success"], answer
    chain = answer["result"]["jobs"][0]
    assert chain["configuration"] == "kitchen.yaml"
    compile_id, upload_id = chain["compile_job_id"], chain["upload_job_id"]
    await wait_for_status(hass, loaded, compile_id, "running")
    fake.release("go")
    events = await _events_until(client, _has_status(upload_id, "completed"))
    assert _statuses(events, compile_id) == ["queued", "running", "completed"]
    assert _statuses(events, upload_id) == ["queued", "running", "completed"]
    # Every job event carries the job's public form.
    job = next(job for event in events for job in event.get("jobs", []))
    assert set(job) == set(engine_of(loaded).jobs()[0].public_dict())

    # The file changes after the install: kitchen has an update available again, garage
    # still has never been installed.
    fake.add_config("kitchen", extra="logger:\n")
    await coordinator_of(loaded).async_rescan()

    def kitchen_outdated(event: dict[str, Any]) -> bool:
        return event["event"] == "configurations" and any(
            item["update_available"] and item["configuration"] == "kitchen.yaml"
            for item in event["configurations"]
        )

    events = await _events_until(client, kitchen_outdated)
    outdated = [
        item["configuration"] for item in events[-1]["configurations"] if item["update_available"]
    ]
    assert outdated == ["garage.yaml", "kitchen.yaml"]

    # "Install all outdated" queues exactly the outdated configurations.
    answer = await _command(commands, type=f"{DOMAIN}/install_outdated")
    assert answer["success"], answer
    chains = answer["result"]["jobs"]
    assert [chain["configuration"] for chain in chains] == ["garage.yaml", "kitchen.yaml"]
    for chain in chains:
        await wait_for_status(hass, loaded, chain["upload_job_id"], "completed")
    events = await _events_until(client, _has_status(chains[-1]["upload_job_id"], "completed"))

    # Installed again: nothing is outdated (that event may come before or after the upload's
    # last status: two channels), and "install all outdated" queues nothing.
    def current(event: dict[str, Any]) -> bool:
        return event["event"] == "configurations" and not any(
            item["update_available"] for item in event["configurations"]
        )

    if not any(current(event) for event in events):
        await _events_until(client, current)
    answer = await _command(commands, type=f"{DOMAIN}/install_outdated")
    assert answer["result"] == {"jobs": []}


async def test_log_sends_kept_output_then_live_lines_then_the_result(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    fake: FakeEsphome,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """A subscriber that joins mid-way gets every line exactly once, then the result."""
    lines = [f"line {number}" for number in range(40)]
    fake.behave("garage.yaml", "compile", wait_for_file=None, lines=lines, duration=1.0)
    engine = engine_of(loaded)
    enough: asyncio.Future[None] = hass.loop.create_future()

    def listener(event: JobEvent) -> None:
        if event.kind is EventKind.OUTPUT and event.line == "line 5" and not enough.done():
            enough.set_result(None)

    unsubscribe = engine.subscribe(listener)
    job = (await coordinator_of(loaded).async_compile(["garage.yaml"]))[0]
    async with asyncio.timeout(MESSAGE_TIMEOUT):
        await enough
    unsubscribe()

    client = await hass_ws_client(hass)
    _, first = await _subscribe(client, type=f"{DOMAIN}/subscribe_log", job_id=job.job_id)
    assert first["event"] == "log"
    assert first["job"]["job_id"] == job.job_id
    assert first["lines"][:6] == lines[:6]
    assert first["elided"] == 0
    events = await _events_until(client, lambda event: event["event"] == "result")
    live = [line for event in events if event["event"] == "lines" for line in event["lines"]]
    assert first["lines"] + live == lines
    assert all(event.get("dropped", 0) == 0 for event in events)
    assert events[-1]["job"]["status"] == "completed"

    # A finished job: the kept output, then the result at once.
    _, first = await _subscribe(client, type=f"{DOMAIN}/subscribe_log", job_id=job.job_id)
    assert first["lines"] == lines
    assert (await _receive(client))["event"] == {"event": "result", "job": first["job"]}


async def test_unsubscribe_closes_the_streams(
    hass: HomeAssistant, loaded: MockConfigEntry, hass_ws_client: WebSocketGenerator
) -> None:
    """After unsubscribe_events the engine has no listener of the subscription left."""
    engine = engine_of(loaded)
    before = len(engine._hub._listeners)
    job = (await coordinator_of(loaded).async_compile(["kitchen.yaml"]))[0]
    client = await hass_ws_client(hass)
    jobs_id, _ = await _subscribe(client, type=f"{DOMAIN}/subscribe_jobs")
    log_id, _ = await _subscribe(client, type=f"{DOMAIN}/subscribe_log", job_id=job.job_id)
    assert len(engine._hub._listeners) == before + 2
    for subscription in (jobs_id, log_id):
        answer = await _command(client, type="unsubscribe_events", subscription=subscription)
        assert answer["success"], answer
    await hass.async_block_till_done()
    assert len(engine._hub._listeners) == before


async def test_unknown_job_and_entry(
    hass: HomeAssistant, loaded: MockConfigEntry, hass_ws_client: WebSocketGenerator
) -> None:
    """An unknown job is a clear not_found error; an unknown entry a translated error."""
    client = await hass_ws_client(hass)
    for command in ("subscribe_log", "cancel"):
        answer = await _command(client, type=f"{DOMAIN}/{command}", job_id="no-such-job")
        assert not answer["success"]
        assert answer["error"]["code"] == "not_found"
        assert answer["error"]["message"] == "No job has the id 'no-such-job'"
        assert answer["error"]["translation_key"] == "unknown_job_id"
    answer = await _command(client, type=f"{DOMAIN}/subscribe_jobs", entry_id="nope")
    assert not answer["success"]
    assert answer["error"]["translation_key"] == "entry_not_found"


async def test_an_unloaded_entry_is_refused(
    hass: HomeAssistant, loaded: MockConfigEntry, hass_ws_client: WebSocketGenerator
) -> None:
    """Named or not, an entry that is not loaded gives a translated error."""
    assert await hass.config_entries.async_unload(loaded.entry_id)
    client = await hass_ws_client(hass)
    answer = await _command(client, type=f"{DOMAIN}/subscribe_jobs", entry_id=loaded.entry_id)
    assert answer["error"]["translation_key"] == "entry_not_loaded"
    answer = await _command(client, type=f"{DOMAIN}/subscribe_jobs")
    assert answer["error"]["translation_key"] == "no_loaded_entries"


async def test_several_entries_need_an_entry_id(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    esphome_command: str,
    tmp_path: Any,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """With two entries loaded, subscribe_jobs without entry_id is refused; with it, served."""
    other_dir = tmp_path / "other"
    FakeEsphome(other_dir).add_config("attic")
    other = MockConfigEntry(
        domain=DOMAIN,
        title="other",
        unique_id=str(other_dir),
        data={CONF_CONFIG_DIR: str(other_dir)},
        options={CONF_ESPHOME_COMMAND: esphome_command},
    )
    await setup_entry(hass, other)
    client = await hass_ws_client(hass)
    answer = await _command(client, type=f"{DOMAIN}/subscribe_jobs")
    assert answer["error"]["translation_key"] == "entry_id_required"
    _, snapshot = await _subscribe(client, type=f"{DOMAIN}/subscribe_jobs", entry_id=other.entry_id)
    assert [item["configuration"] for item in snapshot["configurations"]] == ["attic.yaml"]


@pytest.mark.parametrize(
    ("command", "payload"),
    [
        ("install", {"configuration": ["kitchen.yaml"]}),
        ("install_outdated", {}),
        ("cancel", {"job_id": "PLACEHOLDER"}),
    ],
)
async def test_changing_commands_are_admin_only(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    hass_read_only_access_token: str,
    command: str,
    payload: dict[str, Any],
) -> None:
    """A user who is not an administrator changes nothing; subscribing stays open to them."""
    job = (await coordinator_of(loaded).async_compile(["garage.yaml"]))[0]
    if "job_id" in payload:
        payload = {"job_id": job.job_id}
    client = await hass_ws_client(hass, hass_read_only_access_token)
    answer = await _command(client, type=f"{DOMAIN}/{command}", **payload)
    assert not answer["success"]
    assert answer["error"]["code"] == "unauthorized"
    assert [job.job_id for job in coordinator_of(loaded).jobs()] == [job.job_id]
    assert job.status.is_active
    _, snapshot = await _subscribe(client, type=f"{DOMAIN}/subscribe_jobs")
    assert [item["job_id"] for item in snapshot["jobs"]] == [job.job_id]


async def test_admin_cancel_ends_the_job_and_its_log(
    hass: HomeAssistant, loaded: MockConfigEntry, hass_ws_client: WebSocketGenerator
) -> None:
    """Cancel answers with the ids cancelled (the held upload too); the log ends with it."""
    chain = (await coordinator_of(loaded).async_install(["kitchen.yaml"]))[0]
    await wait_for_status(hass, loaded, chain.compile.job_id, "running")
    client = await hass_ws_client(hass)
    await _subscribe(client, type=f"{DOMAIN}/subscribe_log", job_id=chain.compile.job_id)
    commands = await hass_ws_client(hass)
    answer = await _command(commands, type=f"{DOMAIN}/cancel", job_id=chain.compile.job_id)
    assert answer["success"], answer
    assert sorted(answer["result"]["cancelled"]) == sorted(
        [chain.compile.job_id, chain.upload.job_id]
    )
    events = await _events_until(client, lambda event: event["event"] == "result")
    assert events[-1]["job"]["status"] == "cancelled"


async def test_unloading_the_entry_ends_subscriptions(
    hass: HomeAssistant, loaded: MockConfigEntry, hass_ws_client: WebSocketGenerator
) -> None:
    """A reload is a new subscription: the subscriber is told its subscription ended."""
    client = await hass_ws_client(hass)
    await _subscribe(client, type=f"{DOMAIN}/subscribe_jobs")
    assert await hass.config_entries.async_unload(loaded.entry_id)
    events = await _events_until(client, lambda event: event["event"] == "ended")
    assert events[-1] == {"event": "ended"}


async def test_a_thousand_lines_a_second_to_a_browser_that_lags(
    hass: HomeAssistant,
    loaded: MockConfigEntry,
    fake: FakeEsphome,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """A job printing 1,000 lines a second while the browser reads nothing until it ended.

    What may not be lost is not: every status change arrives, in order; every line is
    either delivered or counted as dropped; no message holds more lines than the bound.
    """
    total = 3000
    lines = [f"[{number}/{total}] Compiling src/file_{number}.cpp.o" for number in range(total)]
    fake.behave("kitchen.yaml", "compile", wait_for_file=None, lines=lines, duration=3.0)
    jobs_client = await hass_ws_client(hass)
    await _subscribe(jobs_client, type=f"{DOMAIN}/subscribe_jobs")
    chain = (await coordinator_of(loaded).async_install(["kitchen.yaml"]))[0]
    log_client = await hass_ws_client(hass)
    _, first = await _subscribe(
        log_client, type=f"{DOMAIN}/subscribe_log", job_id=chain.compile.job_id
    )
    # The browser lags: it reads nothing until both jobs are over.
    await wait_for_status(hass, loaded, chain.upload.job_id, "completed")

    jobs_events = await _events_until(jobs_client, _has_status(chain.upload.job_id, "completed"))
    log_events = await _events_until(log_client, lambda event: event["event"] == "result")
    assert _statuses(jobs_events, chain.compile.job_id) == ["queued", "running", "completed"]
    assert _statuses(jobs_events, chain.upload.job_id) == ["queued", "running", "completed"]
    live = log_events
    assert first["event"] == "log"
    delivered = list(first["lines"]) + [
        line for event in live if event["event"] == "lines" for line in event["lines"]
    ]
    dropped = sum(event.get("dropped", 0) for event in live)
    assert all(len(event["lines"]) <= LOG_MAX_LINES for event in live if event["event"] == "lines")
    assert len(delivered) + dropped == total
    # What arrives is in order and belongs to the job: the newest lines are never dropped.
    numbers = [int(line[1:].split("/")[0]) for line in delivered]
    assert numbers == sorted(numbers)
    assert numbers[-1] == total - 1
    assert live[-1] == {"event": "result", "job": live[-1]["job"]}
    assert live[-1]["job"]["status"] == "completed"
