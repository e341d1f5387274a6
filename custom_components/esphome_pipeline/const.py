"""Constants of the Home Assistant layer: the domain, option names, defaults and timings."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from .engine.input_rules import OTA_PORT

DOMAIN: Final = "esphome_pipeline"
TITLE: Final = "ESPHome Pipeline"

CONF_CONFIG_DIR: Final = "config_dir"
CONF_ESPHOME_COMMAND: Final = "esphome_command"
CONF_COMPILE_WORKERS: Final = "compile_workers"
CONF_UPLOAD_SLOTS: Final = "upload_slots"
CONF_AUTO_INSTALL_ON_CHANGE: Final = "auto_install_on_change"
CONF_BUILD_ON: Final = "build_on"
CONF_ESPHOME_VERSION_POLICY: Final = "esphome_version_policy"
CONF_PROOF_TIMEOUT: Final = "proof_timeout"
CONF_MANAGED_ESPHOME: Final = "managed_esphome"
"""Entry data: the ESPHome version the integration installed for the entry (absent: none)."""
CONF_ESPHOME_VERSION: Final = "esphome_version"
"""Config flow field (advanced): the ESPHome version to install."""

DEFAULT_CONFIG_SUBDIR: Final = "esphome"
DEFAULT_COMPILE_WORKERS: Final = 1
DEFAULT_UPLOAD_SLOTS: Final = 4
DEFAULT_AUTO_INSTALL_ON_CHANGE: Final = False
DEFAULT_BUILD_ON: Final = "local_and_peers"
DEFAULT_ESPHOME_VERSION_POLICY: Final = "any"
DEFAULT_PROOF_TIMEOUT: Final = 60
MAX_PROOF_TIMEOUT: Final = 600
MAX_COMPILE_WORKERS: Final = 16
MAX_UPLOAD_SLOTS: Final = 32

MANAGED_ESPHOME_VERSION: Final = "2026.10.0"
"""The ESPHome release the config flow installs by default: the tested one (`script/setup`)."""

EVENT_JOB: Final = "esphome_pipeline_job"

PROBE_TIMEOUT: Final = 15.0
"""Seconds the ESPHome CLI gets to answer `version` in the flows and at setup."""

RESCAN_INTERVAL: Final = timedelta(seconds=60)
"""How often the configuration folder is scanned for added, removed and edited files."""

AUTO_INSTALL_SETTLE: Final = 10.0
"""Seconds a changed fingerprint must stay unchanged before auto-install queues it."""

PORT_OTA: Final = OTA_PORT
"""The default upload port, the OTA keyword; its one home is the engine's port rules."""

ATTR_CONFIGURATION: Final = "configuration"
ATTR_DEVICE_ID: Final = "device_id"
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_PORT: Final = "port"
ATTR_FORCE: Final = "force"
ATTR_JOB_ID: Final = "job_id"
ATTR_STATUS: Final = "status"
