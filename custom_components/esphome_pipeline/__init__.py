"""ESPHome Pipeline: a two-lane firmware job queue for the ESPHome CLI in Home Assistant.

Setup and unload only. Setup checks the folder and the ESPHome CLI (`ConfigEntryNotReady`
while either is missing, with a repair issue for the CLI), builds the engine on the entry's
store with the warm path's skip checks (`skip_wiring.py`; one `Fingerprinter` per entry, shared
with the folder scan), and hands it to the coordinator, which runs the lanes as a background
task of the entry.
An empty `esphome_command` option means "detect it now", at every setup.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .configurations import configuration_of_device
from .const import (
    CONF_AUTO_INSTALL_ON_CHANGE,
    CONF_COMPILE_WORKERS,
    CONF_CONFIG_DIR,
    CONF_ESPHOME_COMMAND,
    CONF_PROOF_TIMEOUT,
    CONF_UPLOAD_SLOTS,
    DEFAULT_AUTO_INSTALL_ON_CHANGE,
    DEFAULT_COMPILE_WORKERS,
    DEFAULT_PROOF_TIMEOUT,
    DEFAULT_UPLOAD_SLOTS,
    DOMAIN,
)
from .coordinator import (
    EsphomePipelineConfigEntry,
    EsphomePipelineRuntimeData,
    PipelineCoordinator,
)
from .engine.fingerprint import Fingerprinter
from .engine.firmware import FirmwareEngine
from .entity import hub_device_info
from .frontend import async_register_card
from .issues import (
    async_clear_cli_unavailable,
    async_clear_dropped_jobs,
    async_report_cli_unavailable,
)
from .peers import PeerManager, async_entry_identity, async_remove_identity
from .preflight import (
    CliFailedError,
    ManagedEsphomeBrokenError,
    PreflightError,
    async_check_config_dir,
    async_check_entry_cli,
)
from .provision.manager import async_remove_unused_environments
from .repairs import async_clear_managed_esphome_broken
from .services import async_setup_services
from .skip_wiring import device_asker, network_uploads, skip_checks
from .static import async_register_static_paths
from .store import EntryStore
from .websocket_api import async_setup_websocket_api

PLATFORMS = [Platform.BINARY_SENSOR, Platform.BUTTON, Platform.SENSOR, Platform.UPDATE]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions, the WebSocket API, the card and the integration's own files."""
    async_setup_services(hass)
    async_setup_websocket_api(hass)
    await async_register_card(hass)
    await async_register_static_paths(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: EsphomePipelineConfigEntry) -> bool:
    """Check the folder and the CLI, then start the engine and the entities."""
    config_dir = entry.data[CONF_CONFIG_DIR]
    try:
        folder = await async_check_config_dir(hass, config_dir)
    except PreflightError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="folder_missing",
            translation_placeholders={"config_dir": config_dir},
        ) from err
    command = entry.options.get(CONF_ESPHOME_COMMAND, "")
    try:
        checked = await async_check_entry_cli(hass, entry)
    except PreflightError as err:
        error = err.detail if isinstance(err, CliFailedError) else err.reason
        if not isinstance(err, ManagedEsphomeBrokenError):
            # A broken ESPHome we installed raised its own, fixable issue ("Reinstall").
            async_report_cli_unavailable(hass, entry.entry_id, command, error)
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="cli_unavailable",
            translation_placeholders={"error": error},
        ) from err
    async_clear_cli_unavailable(hass, entry.entry_id)

    store = EntryStore(hass, entry.entry_id)
    fingerprinter = await hass.async_add_executor_job(
        partial(Fingerprinter, Path(folder), esphome_version=checked.version)
    )
    engine = FirmwareEngine(
        config_dir=Path(folder),
        cli=checked.cli,
        store=store,
        compile_workers=entry.options.get(CONF_COMPILE_WORKERS, DEFAULT_COMPILE_WORKERS),
        upload_slots=entry.options.get(CONF_UPLOAD_SLOTS, DEFAULT_UPLOAD_SLOTS),
        skip_checks=skip_checks(Path(folder), fingerprinter, device_asker(hass)),
        network_uploads=network_uploads(
            hass, entry.options.get(CONF_PROOF_TIMEOUT, DEFAULT_PROOF_TIMEOUT)
        ),
    )
    coordinator = PipelineCoordinator(
        hass,
        entry,
        engine=engine,
        store=store,
        esphome_version=checked.version,
        auto_install=entry.options.get(CONF_AUTO_INSTALL_ON_CHANGE, DEFAULT_AUTO_INSTALL_ON_CHANGE),
        fingerprinter=fingerprinter,
    )
    await coordinator.async_start()
    identity = await async_entry_identity(hass, entry.entry_id)
    peers = PeerManager(hass, entry, coordinator, cli=checked.cli, identity=identity)
    entry.runtime_data = EsphomePipelineRuntimeData(coordinator=coordinator, peers=peers)
    # The hub exists before any configuration device names it as `via_device`.
    dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, **hub_device_info(coordinator)
    )
    entry.async_on_unload(entry.add_update_listener(_async_reload_on_change))

    async def _async_stop_engine(_event: Event) -> None:
        # Home Assistant does not unload entries when it stops: stop the processes here, so
        # running jobs are stored as queued and run again after the restart.
        await coordinator.async_stop()
        await peers.async_stop()

    entry.async_on_unload(hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, _async_stop_engine))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    await peers.async_sync()
    return True


async def async_unload_entry(hass: HomeAssistant, entry: EsphomePipelineConfigEntry) -> bool:
    """Remove the entities, then stop the engine (running jobs come back queued next start)."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.coordinator.async_stop()
        await entry.runtime_data.peers.async_stop()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: EsphomePipelineConfigEntry) -> None:
    """Delete the entry's stored jobs and fingerprints."""
    await EntryStore(hass, entry.entry_id).async_remove()
    async_clear_cli_unavailable(hass, entry.entry_id)
    async_clear_dropped_jobs(hass, entry.entry_id)
    async_clear_managed_esphome_broken(hass, entry.entry_id)
    await async_remove_unused_environments(hass)
    await async_remove_identity(hass, entry.entry_id)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: EsphomePipelineConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Allow removing a configuration device only once its file is gone (never the hub)."""
    if (DOMAIN, entry.entry_id) in device.identifiers:
        return False
    configuration = configuration_of_device(entry.entry_id, device)
    return configuration is None or configuration not in entry.runtime_data.coordinator.nodes


async def _async_reload_on_change(hass: HomeAssistant, entry: EsphomePipelineConfigEntry) -> None:
    """Apply new options or a new folder (Home Assistant 2025.4 has no OptionsFlowWithReload).

    A build peer added or removed (a subentry) needs no reload: the peer manager applies it.
    """
    peers = entry.runtime_data.peers
    if peers.settings_unchanged(entry):
        await peers.async_sync()
        return
    await hass.config_entries.async_reload(entry.entry_id)
