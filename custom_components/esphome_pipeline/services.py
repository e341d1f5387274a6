"""Actions: schemas, who may call them, target resolution and responses.

Every action is registered once in `async_setup`. Targets are `configuration` (a name or a
list) and/or `device_id` (configuration devices); `config_entry_id` is needed only when more
than one entry is loaded (or inferred when every targeted device belongs to one entry).
Everything is validated before anything is queued: the entry and each device here, each name
(after a fresh folder scan) and the port in the coordinator's requests. Invalid input raises a
translated `ServiceValidationError`; a failing engine a translated `HomeAssistantError`
(`helpers.engine_error_handler`).

Actions that change anything are admin-only; `get_jobs` is open to every user. Home
Assistant's `async_register_admin_service` cannot register an action that answers (before
2025.6 it has no `supports_response` and drops the response), and every action here answers,
so `_admin_only` makes the same check: a call from a user who is not an administrator raises
`Unauthorized`; calls without a user (automations, scripts, Home Assistant itself) pass.

Device ids are resolved with the device registry directly: the service extract helpers have no
signature that works on both Home Assistant 2025.4 and 2026.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any, Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import Unauthorized, UnknownUser
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.util.json import JsonValueType
import voluptuous as vol

from .configurations import configuration_of_device
from .const import (
    ATTR_CONFIG_ENTRY_ID,
    ATTR_CONFIGURATION,
    ATTR_DEVICE_ID,
    ATTR_FORCE,
    ATTR_JOB_ID,
    ATTR_PORT,
    ATTR_STATUS,
    DOMAIN,
    PORT_OTA,
)
from .coordinator import EsphomePipelineConfigEntry, PipelineCoordinator
from .engine.models import JobStatus
from .helpers import engine_error_handler, invalid_input

type ActionHandler = Callable[[ServiceCall], Coroutine[Any, Any, ServiceResponse]]

SERVICE_INSTALL: Final = "install"
SERVICE_COMPILE: Final = "compile"
SERVICE_UPLOAD: Final = "upload"
SERVICE_CLEAN: Final = "clean"
SERVICE_RESET_BUILD_ENV: Final = "reset_build_env"
SERVICE_CANCEL: Final = "cancel"
SERVICE_GET_JOBS: Final = "get_jobs"

_ENTRY = {vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string}
_TARGETS = {
    **_ENTRY,
    vol.Optional(ATTR_CONFIGURATION): vol.All(cv.ensure_list, [cv.string]),
    vol.Optional(ATTR_DEVICE_ID): vol.All(cv.ensure_list, [cv.string]),
}
_PORT = {vol.Optional(ATTR_PORT, default=PORT_OTA): cv.string}
_FORCE = {vol.Optional(ATTR_FORCE, default=False): cv.boolean}

INSTALL_SCHEMA: Final = vol.Schema({**_TARGETS, **_PORT, **_FORCE})
COMPILE_SCHEMA: Final = vol.Schema({**_TARGETS, **_FORCE})
UPLOAD_SCHEMA: Final = vol.Schema({**_TARGETS, **_PORT, **_FORCE})
CLEAN_SCHEMA: Final = vol.Schema(_TARGETS)
RESET_SCHEMA: Final = vol.Schema(_ENTRY)
CANCEL_SCHEMA: Final = vol.Schema({**_TARGETS, vol.Optional(ATTR_JOB_ID): cv.string})
GET_JOBS_SCHEMA: Final = vol.Schema(
    {
        **_TARGETS,
        vol.Optional(ATTR_STATUS): vol.All(
            cv.ensure_list, [vol.In([str(status) for status in JobStatus])]
        ),
    }
)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register every action of the integration."""
    admin_actions: list[tuple[str, ActionHandler, vol.Schema]] = [
        (SERVICE_INSTALL, _install, INSTALL_SCHEMA),
        (SERVICE_COMPILE, _compile, COMPILE_SCHEMA),
        (SERVICE_UPLOAD, _upload, UPLOAD_SCHEMA),
        (SERVICE_CLEAN, _clean, CLEAN_SCHEMA),
        (SERVICE_RESET_BUILD_ENV, _reset_build_env, RESET_SCHEMA),
        (SERVICE_CANCEL, _cancel, CANCEL_SCHEMA),
    ]
    for name, handler, schema in admin_actions:
        hass.services.async_register(
            DOMAIN,
            name,
            _admin_only(handler),
            schema=schema,
            supports_response=SupportsResponse.OPTIONAL,
        )
    hass.services.async_register(
        DOMAIN,
        SERVICE_GET_JOBS,
        _get_jobs,
        schema=GET_JOBS_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )


def _admin_only(handler: ActionHandler) -> ActionHandler:
    """Run `handler` only for an administrator or a call that no user made."""

    @wraps(handler)
    async def checked(call: ServiceCall) -> ServiceResponse:
        if call.context.user_id:
            user = await call.hass.auth.async_get_user(call.context.user_id)
            if user is None:
                raise UnknownUser(context=call.context, user_id=call.context.user_id)
            if not user.is_admin:
                raise Unauthorized(context=call.context, user_id=user.id)
        return await handler(call)

    return checked


# --------------------------------------------------------------------------- handlers


@engine_error_handler
async def _install(call: ServiceCall) -> ServiceResponse:
    coordinator, names = _resolve(call, required=True)
    chains = await coordinator.async_install(
        names, port=call.data[ATTR_PORT], force=call.data[ATTR_FORCE]
    )
    return {
        "jobs": [
            {
                "configuration": chain.compile.configuration,
                "compile_job_id": chain.compile.job_id,
                "upload_job_id": chain.upload.job_id,
            }
            for chain in chains
        ]
    }


@engine_error_handler
async def _compile(call: ServiceCall) -> ServiceResponse:
    coordinator, names = _resolve(call, required=True)
    jobs = await coordinator.async_compile(names, force=call.data[ATTR_FORCE])
    return {"jobs": [{"configuration": job.configuration, "job_id": job.job_id} for job in jobs]}


@engine_error_handler
async def _upload(call: ServiceCall) -> ServiceResponse:
    coordinator, names = _resolve(call, required=True)
    jobs = await coordinator.async_upload(
        names, port=call.data[ATTR_PORT], force=call.data[ATTR_FORCE]
    )
    return {"jobs": [{"configuration": job.configuration, "job_id": job.job_id} for job in jobs]}


@engine_error_handler
async def _clean(call: ServiceCall) -> ServiceResponse:
    coordinator, names = _resolve(call, required=True)
    jobs = await coordinator.async_clean(names)
    return {"jobs": [{"configuration": job.configuration, "job_id": job.job_id} for job in jobs]}


@engine_error_handler
async def _reset_build_env(call: ServiceCall) -> ServiceResponse:
    coordinator = _coordinator(call.hass, call.data.get(ATTR_CONFIG_ENTRY_ID), [])
    job = await coordinator.async_reset_build_env()
    return {"job_id": job.job_id}


@engine_error_handler
async def _cancel(call: ServiceCall) -> ServiceResponse:
    job_id: str | None = call.data.get(ATTR_JOB_ID)
    coordinator, names = _resolve(call, required=job_id is None)
    if job_id is None:
        cancelled = await coordinator.async_cancel_configurations(names)
        return {"cancelled": list[JsonValueType](cancelled)}
    # Both a job and targets: check the targets before the job is cancelled, so bad input
    # changes nothing.
    targets = await coordinator.async_targets(names) if names else []
    cancelled = await coordinator.async_cancel(job_id)
    if targets:
        cancelled += await coordinator.async_cancel_configurations(targets)
    return {"cancelled": list[JsonValueType](cancelled)}


async def _get_jobs(call: ServiceCall) -> ServiceResponse:
    coordinator, names = _resolve(call, required=False)
    statuses = call.data.get(ATTR_STATUS)
    jobs = coordinator.jobs(
        statuses=None if statuses is None else {JobStatus(status) for status in statuses},
        configurations=await coordinator.async_targets(names) if names else None,
    )
    return {"jobs": [job.public_dict() for job in jobs]}


# ------------------------------------------------------------------------- resolution


def _resolve(call: ServiceCall, *, required: bool) -> tuple[PipelineCoordinator, list[str]]:
    """Return the entry's coordinator and the targeted names, in call order.

    The names are checked against the folder by the coordinator's requests, after a rescan.
    """
    device_ids: list[str] = call.data.get(ATTR_DEVICE_ID, [])
    coordinator = _coordinator(call.hass, call.data.get(ATTR_CONFIG_ENTRY_ID), device_ids)
    names: list[str] = list(call.data.get(ATTR_CONFIGURATION, []))
    names += _device_configurations(call.hass, coordinator, device_ids)
    if not names and required:
        raise invalid_input("no_targets")
    return coordinator, names


def _coordinator(
    hass: HomeAssistant, entry_id: str | None, device_ids: list[str]
) -> PipelineCoordinator:
    entries: list[EsphomePipelineConfigEntry] = hass.config_entries.async_entries(DOMAIN)
    if entry_id is not None:
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN:
            raise invalid_input("entry_not_found", config_entry_id=entry_id)
        if entry.state is not ConfigEntryState.LOADED:
            raise invalid_input("entry_not_loaded", config_entry_id=entry_id)
        typed: EsphomePipelineConfigEntry = entry
        return typed.runtime_data.coordinator
    loaded = [entry for entry in entries if entry.state is ConfigEntryState.LOADED]
    if not loaded:
        raise invalid_input("no_loaded_entries")
    if len(loaded) == 1:
        return loaded[0].runtime_data.coordinator
    # Several entries: the targeted devices may all belong to one of them.
    registry = dr.async_get(hass)
    owners = {
        entry_id
        for device_id in device_ids
        if (device := registry.async_get(device_id)) is not None
        for entry_id in device.config_entries
    }
    candidates = [entry for entry in loaded if entry.entry_id in owners]
    if device_ids and len(candidates) == 1:
        return candidates[0].runtime_data.coordinator
    raise invalid_input("entry_required")


def _device_configurations(
    hass: HomeAssistant, coordinator: PipelineCoordinator, device_ids: list[str]
) -> list[str]:
    registry = dr.async_get(hass)
    entry_id = coordinator.config_entry.entry_id
    names: list[str] = []
    for device_id in device_ids:
        device = registry.async_get(device_id)
        configuration = None if device is None else configuration_of_device(entry_id, device)
        if configuration is None:
            raise invalid_input("unknown_device", device_id=device_id)
        names.append(configuration)
    return names
