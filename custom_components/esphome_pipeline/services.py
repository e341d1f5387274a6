"""Actions: schemas, target resolution, validation, engine calls and responses.

Every action is registered once in `async_setup`. Targets are `configuration` (a name or a
list) and/or `device_id` (configuration devices); `config_entry_id` is needed only when more
than one entry is loaded (or inferred when every targeted device belongs to one entry).
Everything is validated before anything is queued: the entry, each device, each name (after a
fresh folder scan, so a file saved a moment ago is known) and the port. Invalid input raises a
translated `ServiceValidationError`; a failing engine a translated `HomeAssistantError`.

Device ids are resolved with the device registry directly: the service extract helpers have no
signature that works on both Home Assistant 2025.4 and 2026.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.util.json import JsonValueType
import voluptuous as vol

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
from .coordinator import EsphomePipelineConfigEntry, PipelineCoordinator, device_identifier
from .engine.errors import EngineError, InvalidRequestError
from .engine.esphome_cli import validate_port
from .engine.models import JobStatus

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
UPLOAD_SCHEMA: Final = vol.Schema({**_TARGETS, **_PORT})
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


@contextmanager
def engine_errors() -> Iterator[None]:
    """Turn engine errors into translated Home Assistant errors."""
    try:
        yield
    except InvalidRequestError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key=err.translation_key,
            translation_placeholders={**err.placeholders, "message": str(err)},
        ) from err
    except EngineError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key=err.translation_key,
            translation_placeholders={**err.placeholders, "message": str(err)},
        ) from err


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register every action of the integration."""
    handlers = [
        (SERVICE_INSTALL, _install, INSTALL_SCHEMA, SupportsResponse.OPTIONAL),
        (SERVICE_COMPILE, _compile, COMPILE_SCHEMA, SupportsResponse.OPTIONAL),
        (SERVICE_UPLOAD, _upload, UPLOAD_SCHEMA, SupportsResponse.OPTIONAL),
        (SERVICE_CLEAN, _clean, CLEAN_SCHEMA, SupportsResponse.OPTIONAL),
        (SERVICE_RESET_BUILD_ENV, _reset_build_env, RESET_SCHEMA, SupportsResponse.OPTIONAL),
        (SERVICE_CANCEL, _cancel, CANCEL_SCHEMA, SupportsResponse.OPTIONAL),
        (SERVICE_GET_JOBS, _get_jobs, GET_JOBS_SCHEMA, SupportsResponse.ONLY),
    ]
    for name, handler, schema, supports_response in handlers:
        hass.services.async_register(
            DOMAIN, name, handler, schema=schema, supports_response=supports_response
        )


# --------------------------------------------------------------------------- handlers


async def _install(call: ServiceCall) -> ServiceResponse:
    coordinator, names = await _resolve(call, required=True)
    port = _port(call)
    with engine_errors():
        chains = await coordinator.async_install(names, port=port, force=call.data[ATTR_FORCE])
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


async def _compile(call: ServiceCall) -> ServiceResponse:
    coordinator, names = await _resolve(call, required=True)
    with engine_errors():
        jobs = await coordinator.async_compile(names, force=call.data[ATTR_FORCE])
    return {"jobs": [{"configuration": job.configuration, "job_id": job.job_id} for job in jobs]}


async def _upload(call: ServiceCall) -> ServiceResponse:
    coordinator, names = await _resolve(call, required=True)
    port = _port(call)
    with engine_errors():
        jobs = await coordinator.async_upload(names, port=port)
    return {"jobs": [{"configuration": job.configuration, "job_id": job.job_id} for job in jobs]}


async def _clean(call: ServiceCall) -> ServiceResponse:
    coordinator, names = await _resolve(call, required=True)
    with engine_errors():
        jobs = await coordinator.engine.clean(names)
    return {"jobs": [{"configuration": job.configuration, "job_id": job.job_id} for job in jobs]}


async def _reset_build_env(call: ServiceCall) -> ServiceResponse:
    coordinator = _coordinator(call.hass, call.data.get(ATTR_CONFIG_ENTRY_ID), [])
    with engine_errors():
        job = await coordinator.engine.reset_build_env()
    return {"job_id": job.job_id}


async def _cancel(call: ServiceCall) -> ServiceResponse:
    job_id: str | None = call.data.get(ATTR_JOB_ID)
    coordinator, names = await _resolve(call, required=job_id is None)
    with engine_errors():
        cancelled = await coordinator.engine.cancel(job_id) if job_id is not None else []
        if names:
            cancelled += await coordinator.engine.cancel_configurations(names)
    return {"cancelled": list[JsonValueType](cancelled)}


async def _get_jobs(call: ServiceCall) -> ServiceResponse:
    coordinator, names = await _resolve(call, required=False)
    statuses = call.data.get(ATTR_STATUS)
    jobs = coordinator.engine.jobs(
        statuses=None if statuses is None else {JobStatus(status) for status in statuses},
        configurations=names or None,
    )
    return {"jobs": [job.public_dict() for job in jobs]}


# ------------------------------------------------------------------------- resolution


async def _resolve(call: ServiceCall, *, required: bool) -> tuple[PipelineCoordinator, list[str]]:
    """Return the entry's coordinator and the targeted names (validated, in call order)."""
    device_ids: list[str] = call.data.get(ATTR_DEVICE_ID, [])
    coordinator = _coordinator(call.hass, call.data.get(ATTR_CONFIG_ENTRY_ID), device_ids)
    names: list[str] = list(call.data.get(ATTR_CONFIGURATION, []))
    names += _device_configurations(call.hass, coordinator, device_ids)
    if not names:
        if required:
            raise _invalid("no_targets")
        return coordinator, []
    # A cheap rescan, so a file saved a moment ago can be targeted at once.
    await coordinator.async_rescan()
    for name in names:
        if name not in coordinator.nodes:
            raise _invalid("unknown_configuration", configuration=name)
    return coordinator, list(dict.fromkeys(names))


def _coordinator(
    hass: HomeAssistant, entry_id: str | None, device_ids: list[str]
) -> PipelineCoordinator:
    entries: list[EsphomePipelineConfigEntry] = hass.config_entries.async_entries(DOMAIN)
    if entry_id is not None:
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN:
            raise _invalid("entry_not_found", config_entry_id=entry_id)
        if entry.state is not ConfigEntryState.LOADED:
            raise _invalid("entry_not_loaded", config_entry_id=entry_id)
        typed: EsphomePipelineConfigEntry = entry
        return typed.runtime_data.coordinator
    loaded = [entry for entry in entries if entry.state is ConfigEntryState.LOADED]
    if not loaded:
        raise _invalid("no_loaded_entries")
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
    raise _invalid("entry_required")


def _device_configurations(
    hass: HomeAssistant, coordinator: PipelineCoordinator, device_ids: list[str]
) -> list[str]:
    registry = dr.async_get(hass)
    entry_id = coordinator.config_entry.entry_id
    prefix = device_identifier(entry_id, "")[1]
    names: list[str] = []
    for device_id in device_ids:
        device = registry.async_get(device_id)
        configuration = None
        if device is not None:
            configuration = next(
                (
                    value.removeprefix(prefix)
                    for domain, value in device.identifiers
                    if domain == DOMAIN and value.startswith(prefix) and value != prefix
                ),
                None,
            )
        if configuration is None:
            raise _invalid("unknown_device", device_id=device_id)
        names.append(configuration)
    return names


def _port(call: ServiceCall) -> str:
    with engine_errors():
        return validate_port(call.data[ATTR_PORT])


def _invalid(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )
