"""The WebSocket API of the dashboard card: live jobs, a job's live log, and the commands.

Owns the commands `esphome_pipeline/subscribe_jobs`, `subscribe_log`, `install`, `cancel` and
`install_outdated`, and the messages they send. Subscriptions follow Home Assistant's own
pattern: the result, then the snapshot as the first event, then every change as an
`event_message`, with the unsubscriber kept in `connection.subscriptions`.

A slow browser never slows a lane: each subscription reads the engine through a job stream of
its own (`engine/streams.py`), whose appends are all the engine's step pays. A forwarding task
sends what the stream gathered at most every `SEND_PACE` seconds, so status changes are never
dropped and keep their order, progress is coalesced, and log lines beyond the stream's bound
are dropped and counted (`dropped`) instead of piling up in the connection.

The commands that change anything are admin-only, like the actions; the subscriptions are
open to every user, like `get_jobs`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from homeassistant.components.websocket_api import async_register_command
from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.const import ERR_NOT_FOUND
from homeassistant.components.websocket_api.decorators import (
    async_response,
    require_admin,
    websocket_command,
)
from homeassistant.components.websocket_api.messages import event_message
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import config_validation as cv
import voluptuous as vol

from .const import DOMAIN
from .coordinator import EsphomePipelineConfigEntry, PipelineCoordinator
from .engine.errors import shown
from .engine.events import EventKind
from .engine.models import TERMINAL_STATUSES, Job
from .engine.streams import JobStream, StreamUpdate
from .helpers import engine_errors, invalid_input
from .peer_entities import peer_state
from .snapshot import PipelineSnapshot

SEND_PACE: Final = 0.1
"""Seconds between two messages of one subscription: what arrives meanwhile goes in one."""
LOG_MAX_LINES: Final = 1000
"""Log lines a log subscription holds for a lagging browser before dropping the oldest."""

TERMINAL: Final = frozenset(str(status) for status in TERMINAL_STATUSES)

type Message = dict[str, Any]


@callback
def async_setup_websocket_api(hass: HomeAssistant) -> None:
    """Register every command (once, whatever the number of entries)."""
    for command in (
        ws_subscribe_jobs,
        ws_subscribe_log,
        ws_install,
        ws_cancel,
        ws_install_outdated,
    ):
        async_register_command(hass, command)


# ----------------------------------------------------------------------- payloads


def configurations_payload(data: PipelineSnapshot | None) -> list[Message]:
    """Every configuration with its versions; `update_available` as the update entity says."""
    if data is None:
        return []
    return [
        {
            "configuration": name,
            "name": state.node.display_name,
            "installed": state.installed,
            "latest": state.node.fingerprint,
            # As the firmware entity: another build, or none installed yet, is an update.
            "update_available": state.installed != state.node.fingerprint,
        }
        for name, state in sorted(data.configurations.items())
    ]


def outdated(data: PipelineSnapshot | None) -> list[str]:
    """The configurations with an update available."""
    return [
        item["configuration"] for item in configurations_payload(data) if item["update_available"]
    ]


def peers_payload(entry: EsphomePipelineConfigEntry) -> list[dict[str, Any]]:
    """Each build peer of the entry: its label (as jobs name it), state and ESPHome version."""
    return [
        {
            "label": peer.label,
            "state": peer_state(peer.link.status),
            "esphome_version": peer.link.status.esphome_version,
        }
        for peer in entry.runtime_data.peers.peers.values()
    ]


def jobs_snapshot(coordinator: PipelineCoordinator) -> Message:
    """The first event of `subscribe_jobs`: jobs, lanes, peers and configurations."""
    entry = coordinator.config_entry
    return {
        "event": "snapshot",
        "entry_id": entry.entry_id,
        "title": entry.title,
        "running": coordinator.engine_running,
        "lanes": {
            "compile": {"workers": coordinator.compile_workers},
            "upload": {"slots": coordinator.upload_slots},
        },
        "peers": peers_payload(entry),
        "jobs": [job.public_dict() for job in coordinator.jobs()],
        "configurations": configurations_payload(coordinator.data),
    }


# -------------------------------------------------------------------- subscriptions


@websocket_command(
    {
        vol.Required("type"): f"{DOMAIN}/subscribe_jobs",
        vol.Optional("entry_id"): str,
    }
)
@callback
def ws_subscribe_jobs(hass: HomeAssistant, connection: ActiveConnection, msg: Message) -> None:
    """Send the snapshot, then every job change and every change of the configurations."""
    coordinator = _coordinator(hass, msg.get("entry_id"))
    msg_id: int = msg["id"]
    # Opened before the snapshot is taken, in the same step: no change falls in between.
    # Output lines are the log subscription's business: this stream keeps none.
    stream = coordinator.open_stream(max_lines=0)
    snapshot = jobs_snapshot(coordinator)
    sent_configurations = snapshot["configurations"]

    @callback
    def on_coordinator_update() -> None:
        nonlocal sent_configurations
        current = configurations_payload(coordinator.data)
        if current != sent_configurations:
            sent_configurations = current
            connection.send_message(
                event_message(msg_id, {"event": "configurations", "configurations": current})
            )

    def send(batch: list[StreamUpdate]) -> bool:
        jobs = [update.job for update in batch if update.job is not None]
        if jobs:
            connection.send_message(event_message(msg_id, {"event": "jobs", "jobs": jobs}))
        return True

    connection.send_result(msg_id)
    connection.send_message(event_message(msg_id, snapshot))
    remove_listener = coordinator.listeners.add_change_listener(on_coordinator_update)
    _forward(hass, connection, coordinator, msg_id, stream, send, cleanup=remove_listener)


@websocket_command(
    {
        vol.Required("type"): f"{DOMAIN}/subscribe_log",
        vol.Required("job_id"): str,
        vol.Optional("entry_id"): str,
    }
)
@callback
def ws_subscribe_log(hass: HomeAssistant, connection: ActiveConnection, msg: Message) -> None:
    """Send the job's kept output, then its live lines and changes, then its result."""
    if (found := _find_job(hass, connection, msg)) is None:
        return
    coordinator, job = found
    msg_id: int = msg["id"]
    stream = coordinator.open_stream(job_id=job.job_id, max_lines=LOG_MAX_LINES)
    connection.send_result(msg_id)
    connection.send_message(
        event_message(
            msg_id,
            {
                "event": "log",
                "job": job.public_dict(),
                "lines": list(job.output.lines),
                "elided": job.output.elided,
            },
        )
    )
    if job.is_terminal:
        stream.close()
        connection.send_message(_result_event(msg_id, job.public_dict()))
        connection.subscriptions[msg_id] = lambda: None
        return

    def send(batch: list[StreamUpdate]) -> bool:
        for update in batch:
            if update.kind is EventKind.OUTPUT:
                connection.send_message(
                    event_message(
                        msg_id,
                        {"event": "lines", "lines": update.lines, "dropped": update.dropped},
                    )
                )
            elif update.job is not None and update.job["status"] in TERMINAL:
                connection.send_message(_result_event(msg_id, update.job))
                return False
            elif update.job is not None:
                connection.send_message(event_message(msg_id, {"event": "job", "job": update.job}))
        return True

    _forward(hass, connection, coordinator, msg_id, stream, send)


def _result_event(msg_id: int, job: Message) -> dict[str, Any]:
    return event_message(msg_id, {"event": "result", "job": job})


def _forward(
    hass: HomeAssistant,
    connection: ActiveConnection,
    coordinator: PipelineCoordinator,
    msg_id: int,
    stream: JobStream,
    send: Callable[[list[StreamUpdate]], bool],
    *,
    cleanup: Callable[[], None] | None = None,
) -> None:
    """Send the stream's batches with `send` (False: the subscription is complete).

    The task belongs to the entry: when the entry unloads, the subscriber gets an `ended`
    event (a reloaded entry is a new subscription) and the stream closes.
    """
    unsubscribed = False

    async def forward() -> None:
        try:
            async for batch in stream:
                if not send(batch):
                    return
                # Let changes gather: one message per pace for a busy job, not one per line.
                await asyncio.sleep(SEND_PACE)
        except asyncio.CancelledError:
            if not unsubscribed:
                connection.send_message(event_message(msg_id, {"event": "ended"}))
            raise
        finally:
            stream.close()
            if cleanup is not None:
                cleanup()

    task = coordinator.config_entry.async_create_background_task(
        hass, forward(), f"{DOMAIN} websocket subscription {msg_id}"
    )

    @callback
    def unsubscribe() -> None:
        nonlocal unsubscribed
        unsubscribed = True
        task.cancel()

    connection.subscriptions[msg_id] = unsubscribe


# ------------------------------------------------------------------------- commands


@require_admin
@websocket_command(
    {
        vol.Required("type"): f"{DOMAIN}/install",
        vol.Required("configuration"): vol.All(cv.ensure_list, [str]),
        vol.Optional("force", default=False): bool,
        vol.Optional("entry_id"): str,
    }
)
@async_response
async def ws_install(hass: HomeAssistant, connection: ActiveConnection, msg: Message) -> None:
    """Queue an install chain per configuration (over the air), as the `install` action."""
    coordinator = _coordinator(hass, msg.get("entry_id"))
    await _install(connection, msg["id"], coordinator, msg["configuration"], force=msg["force"])


@require_admin
@websocket_command(
    {
        vol.Required("type"): f"{DOMAIN}/install_outdated",
        vol.Optional("entry_id"): str,
    }
)
@async_response
async def ws_install_outdated(
    hass: HomeAssistant, connection: ActiveConnection, msg: Message
) -> None:
    """Queue an install chain for every configuration with an update available."""
    coordinator = _coordinator(hass, msg.get("entry_id"))
    await _install(connection, msg["id"], coordinator, outdated(coordinator.data), force=False)


async def _install(
    connection: ActiveConnection,
    msg_id: int,
    coordinator: PipelineCoordinator,
    configurations: list[str],
    *,
    force: bool,
) -> None:
    chains = []
    if configurations:
        with engine_errors():
            chains = await coordinator.async_install(configurations, force=force)
    connection.send_result(
        msg_id,
        {
            "jobs": [
                {
                    "configuration": chain.compile.configuration,
                    "compile_job_id": chain.compile.job_id,
                    "upload_job_id": chain.upload.job_id,
                }
                for chain in chains
            ]
        },
    )


@require_admin
@websocket_command(
    {
        vol.Required("type"): f"{DOMAIN}/cancel",
        vol.Required("job_id"): str,
        vol.Optional("entry_id"): str,
    }
)
@async_response
async def ws_cancel(hass: HomeAssistant, connection: ActiveConnection, msg: Message) -> None:
    """Cancel a job and the jobs that depend on it, as the `cancel` action."""
    if (found := _find_job(hass, connection, msg)) is None:
        return
    coordinator, job = found
    with engine_errors():
        cancelled = await coordinator.async_cancel(job.job_id)
    connection.send_result(msg["id"], {"cancelled": cancelled})


# ------------------------------------------------------------------------ resolution


def _loaded(hass: HomeAssistant) -> list[PipelineCoordinator]:
    entries: list[EsphomePipelineConfigEntry] = hass.config_entries.async_entries(DOMAIN)
    return [
        entry.runtime_data.coordinator
        for entry in entries
        if entry.state is ConfigEntryState.LOADED
    ]


def _coordinator(hass: HomeAssistant, entry_id: str | None) -> PipelineCoordinator:
    """The entry's coordinator; without an id, the one loaded entry's."""
    if entry_id is not None:
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN:
            raise invalid_input("entry_not_found", config_entry_id=entry_id)
        if entry.state is not ConfigEntryState.LOADED:
            raise invalid_input("entry_not_loaded", config_entry_id=entry_id)
        typed: EsphomePipelineConfigEntry = entry
        return typed.runtime_data.coordinator
    loaded = _loaded(hass)
    if not loaded:
        raise invalid_input("no_loaded_entries")
    if len(loaded) > 1:
        raise invalid_input("entry_id_required")
    return loaded[0]


def _find_job(
    hass: HomeAssistant, connection: ActiveConnection, msg: Message
) -> tuple[PipelineCoordinator, Job] | None:
    """The job `msg` names and its entry's coordinator (any loaded entry without an id).

    An unknown job is answered here with a `not_found` error; the caller then returns.
    """
    job_id: str = msg["job_id"]
    entry_id: str | None = msg.get("entry_id")
    coordinators = [_coordinator(hass, entry_id)] if entry_id is not None else _loaded(hass)
    for coordinator in coordinators:
        if (job := coordinator.get_job(job_id)) is not None:
            return coordinator, job
    connection.send_error(
        msg["id"],
        ERR_NOT_FOUND,
        f"No job has the id '{shown(job_id)}'",
        translation_key="unknown_job_id",
        translation_domain=DOMAIN,
        translation_placeholders={"job_id": shown(job_id)},
    )
    return None
