"""Diagnostics for an entry and for one configuration device, with secrets redacted.

Included: the entry's folder and options (the ESPHome command is kept: it is a path, and it is
the first thing to check when builds fail), the ESPHome version, the queue, each
configuration's name, platform and fingerprints, parse errors, and the jobs with the tail of
their output. Every value found in the folder's `secrets.yaml` is replaced by
`**REDACTED**` wherever it appears (output lines and parse errors can echo YAML).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
import yaml

from .configurations import configuration_of_device
from .coordinator import EsphomePipelineConfigEntry, PipelineCoordinator
from .engine.fingerprint import SECRETS_FILES, load_yaml_text
from .engine.models import Job

REDACTED: Final = "**REDACTED**"
OUTPUT_TAIL: Final = 50
MIN_SECRET_LENGTH: Final = 3
"""Shorter values (`on`, `1`) would blank out unrelated text; they are not worth hiding."""


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: EsphomePipelineConfigEntry
) -> dict[str, Any]:
    """Return the diagnostics of the whole entry."""
    coordinator = entry.runtime_data.coordinator
    secrets = await hass.async_add_executor_job(read_secret_values, coordinator.config_dir)
    data = {
        "entry": {"title": entry.title, "data": dict(entry.data), "options": dict(entry.options)},
        "esphome_version": coordinator.esphome_version,
        "engine_running": coordinator.engine_running,
        "queue": asdict(coordinator.queue_status()),
        "configurations": {
            name: _configuration(coordinator, name) for name in sorted(coordinator.nodes)
        },
        "unreadable": dict(coordinator.unreadable),
        "jobs": [_job(job) for job in coordinator.jobs()],
    }
    return {key: _redact(item, secrets) for key, item in data.items()}


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: EsphomePipelineConfigEntry, device: dr.DeviceEntry
) -> dict[str, Any]:
    """Return the diagnostics of one configuration (or of the hub: the queue)."""
    coordinator = entry.runtime_data.coordinator
    secrets = await hass.async_add_executor_job(read_secret_values, coordinator.config_dir)
    configuration = configuration_of_device(entry.entry_id, device)
    if configuration is None or configuration not in coordinator.nodes:
        data: dict[str, Any] = {"queue": asdict(coordinator.queue_status())}
    else:
        data = {
            "configuration": configuration,
            **_configuration(coordinator, configuration),
            "jobs": [_job(job) for job in coordinator.jobs(configurations={configuration})],
        }
    return {key: _redact(item, secrets) for key, item in data.items()}


def read_secret_values(config_dir: Path) -> list[str]:
    """Return the secret values of the folder's secrets file, longest first (blocking)."""
    values: set[str] = set()
    for file_name in SECRETS_FILES:
        path = config_dir / file_name
        try:
            content = load_yaml_text(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(content, dict):
            values.update(
                str(value) for value in content.values() if len(str(value)) >= MIN_SECRET_LENGTH
            )
    # Longest first, so a secret containing another is replaced whole.
    return sorted(values, key=len, reverse=True)


def _configuration(coordinator: PipelineCoordinator, name: str) -> dict[str, Any]:
    node = coordinator.nodes[name]
    return {
        "name": node.name,
        "friendly_name": node.friendly_name,
        "platform": node.platform,
        "fingerprint": node.fingerprint,
        "installed_fingerprint": coordinator.store.installed.get(name),
    }


def _job(job: Job) -> dict[str, Any]:
    """Return a job's public form (the one serializer) plus what helps to debug it."""
    lines = list(job.output.lines)
    return {
        **job.public_dict(),
        "fingerprint": job.fingerprint,
        "output_tail": lines[-OUTPUT_TAIL:],
        "output_lines_elided": job.output.elided + max(len(lines) - OUTPUT_TAIL, 0),
    }


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {key: _redact(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, secrets) for item in value]
    return value
