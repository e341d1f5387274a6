"""Config, options and reconfigure flows: one entry per ESPHome configuration folder.

The user step asks for the folder and, optionally, the command that runs the ESPHome CLI. Both
are checked before the entry exists: the folder must be readable and the command must answer
`version`. What the user typed is stored (an empty command means "detect at every setup"), so a
later ESPHome install in another place is picked up without editing the entry.

When the command is left empty and no working ESPHome is found, the flow offers to install one
(`install` step: the tested version, or another in advanced mode) into
`<config>/.esphome_pipeline/`, shows progress while it installs (`installing`), and creates the
entry once `esphome version` answers; the entry's data then names the installed version
(`managed_esphome`). A failed install returns to the offer with the installer's last lines.

A Device Builder receiver that Home Assistant's zeroconf discovers is paired by the discovery
steps mixed in from `peer_discovery_flow` (it joins an existing entry as a build peer).

The folder check and the CLI check are each written once (`_async_check_folder`,
`_async_check_command`) and shared by the user, options and reconfigure steps.

Reconfigure moves the entry to another folder. The unique id is the resolved folder, so it
changes with it: the flow refuses a folder that another entry already owns and otherwise
updates both the data and the unique id. The update listener set up in `__init__` reloads the
entry after any change to data or options (Home Assistant 2025.4 has no OptionsFlowWithReload).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, override

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import selector
import voluptuous as vol

from .const import (
    CONF_AUTO_INSTALL_ON_CHANGE,
    CONF_BUILD_ON,
    CONF_COMPILE_WORKERS,
    CONF_CONFIG_DIR,
    CONF_ESPHOME_COMMAND,
    CONF_ESPHOME_VERSION,
    CONF_ESPHOME_VERSION_POLICY,
    CONF_MANAGED_ESPHOME,
    CONF_PROOF_TIMEOUT,
    CONF_UPLOAD_SLOTS,
    DEFAULT_AUTO_INSTALL_ON_CHANGE,
    DEFAULT_BUILD_ON,
    DEFAULT_COMPILE_WORKERS,
    DEFAULT_CONFIG_SUBDIR,
    DEFAULT_ESPHOME_VERSION_POLICY,
    DEFAULT_PROOF_TIMEOUT,
    DEFAULT_UPLOAD_SLOTS,
    DOMAIN,
    MANAGED_ESPHOME_VERSION,
    MAX_COMPILE_WORKERS,
    MAX_PROOF_TIMEOUT,
    MAX_UPLOAD_SLOTS,
    TITLE,
)
from .engine.routing import BuildOn, VersionPolicy
from .peer_discovery_flow import ReceiverDiscoverySteps
from .peer_flow import BuildPeerSubentryFlow
from .peers import SUBENTRY_BUILD_PEER
from .preflight import (
    CheckedCli,
    CliFailedError,
    CliNotFoundError,
    ManagedEsphomeBrokenError,
    PreflightError,
    async_check_cli,
    async_check_config_dir,
)
from .provision.installer import InstallError
from .provision.layout import ManagedEnvironment, is_valid_version
from .provision.manager import async_get_provisioner

_TEXT = selector.TextSelector()


@dataclass(slots=True)
class _Form:
    """What a step shows again after a failed check."""

    errors: dict[str, str] = field(default_factory=dict)
    placeholders: dict[str, str] = field(default_factory=lambda: {"error": ""})
    cli_error: PreflightError | None = None


async def _async_check_folder(hass: HomeAssistant, value: str, form: _Form) -> Path | None:
    """The folder check of every step: the resolved folder, or None with the field's error."""
    try:
        return await async_check_config_dir(hass, value)
    except PreflightError as err:
        form.errors[CONF_CONFIG_DIR] = err.reason
        return None


async def _async_check_command(
    hass: HomeAssistant, command: str, form: _Form, *, managed: str | None = None
) -> CheckedCli | None:
    """The CLI check of every step: the working CLI, or None with the error on the form."""
    try:
        return await async_check_cli(hass, command, managed=managed)
    except PreflightError as err:
        form.errors[_cli_error_field(err)] = err.reason
        form.placeholders["error"] = err.detail
        form.cli_error = err
        return None


class EsphomePipelineConfigFlow(ReceiverDiscoverySteps, domain=DOMAIN):
    """Set up one ESPHome configuration folder."""

    VERSION = 1
    MINOR_VERSION = 1

    def __init__(self) -> None:
        """Start with nothing chosen."""
        self._title = TITLE
        self._data: dict[str, Any] = {}
        self._problem = ""
        self._version = MANAGED_ESPHOME_VERSION
        self._install_task: asyncio.Task[ManagedEnvironment] | None = None
        self._install_error = ""

    @staticmethod
    @callback
    @override
    def async_get_options_flow(config_entry: ConfigEntry) -> EsphomePipelineOptionsFlow:
        """Return the options flow."""
        return EsphomePipelineOptionsFlow()

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Build peers are subentries of the entry."""
        return {SUBENTRY_BUILD_PEER: BuildPeerSubentryFlow}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the folder and the command, check both, create the entry (or offer an
        install when the command is empty and no working ESPHome is found)."""
        form = _Form()
        if user_input is not None:
            command = user_input.get(CONF_ESPHOME_COMMAND, "").strip()
            folder = await _async_check_folder(self.hass, user_input[CONF_CONFIG_DIR], form)
            if folder is not None:
                await self.async_set_unique_id(str(folder))
                self._abort_if_unique_id_configured()
                checked = await _async_check_command(self.hass, command, form)
                if checked is not None:
                    return self.async_create_entry(
                        title=f"{TITLE} ({folder.name})",
                        data={CONF_CONFIG_DIR: str(folder)},
                        options={CONF_ESPHOME_COMMAND: command},
                    )
                if not command and isinstance(form.cli_error, CliNotFoundError | CliFailedError):
                    # Nothing usable was found: installing one is the way forward.
                    self._title = f"{TITLE} ({folder.name})"
                    self._data = {CONF_CONFIG_DIR: str(folder)}
                    detail = form.cli_error.detail
                    self._problem = f" ({detail})" if detail else ""
                    return await self.async_step_install()
        suggested = user_input or {CONF_CONFIG_DIR: self.hass.config.path(DEFAULT_CONFIG_SUBDIR)}
        schema = vol.Schema(
            {
                vol.Required(CONF_CONFIG_DIR): _TEXT,
                vol.Optional(CONF_ESPHOME_COMMAND): _TEXT,
            }
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=form.errors,
            description_placeholders=form.placeholders,
        )

    async def async_step_install(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Offer to install ESPHome (advanced mode may pick the version), then install it."""
        errors: dict[str, str] = {}
        if user_input is not None:
            version = str(user_input.get(CONF_ESPHOME_VERSION, MANAGED_ESPHOME_VERSION)).strip()
            if is_valid_version(version):
                self._version = version
                self._install_error = ""
                return await self.async_step_installing()
            errors[CONF_ESPHOME_VERSION] = "version_invalid"
        return self._install_form(errors)

    async def async_step_installing(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Install in the background while the dialog shows progress."""
        if self._install_task is None:
            self._install_task = self.hass.async_create_task(
                async_get_provisioner(self.hass).async_install(self._version),
                f"{DOMAIN} install ESPHome {self._version}",
            )
        if not self._install_task.done():
            return self.async_show_progress(
                step_id="installing",
                progress_action="install_esphome",
                description_placeholders={"version": self._version},
                progress_task=self._install_task,
            )
        task, self._install_task = self._install_task, None
        try:
            task.result()
        except InstallError as err:
            self._install_error = err.markdown
            return self.async_show_progress_done(next_step_id="install_failed")
        return self.async_show_progress_done(next_step_id="finish")

    async def async_step_install_failed(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Back to the offer, with the installer's last lines; submitting tries again."""
        return self._install_form({"base": "install_failed"})

    async def async_step_finish(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Create the entry that runs the installed ESPHome."""
        # Another flow may have taken the folder while this one installed.
        self._abort_if_unique_id_configured()
        return self.async_create_entry(
            title=self._title,
            data={**self._data, CONF_MANAGED_ESPHOME: self._version},
            options={CONF_ESPHOME_COMMAND: ""},
        )

    def _install_form(self, errors: dict[str, str]) -> ConfigFlowResult:
        fields: dict[Any, Any] = {}
        if self.show_advanced_options:
            fields[vol.Optional(CONF_ESPHOME_VERSION, default=self._version)] = _TEXT
        provisioner = async_get_provisioner(self.hass)
        return self.async_show_form(
            step_id="install",
            data_schema=vol.Schema(fields),
            errors=errors,
            description_placeholders={
                "version": self._version,
                "path": str(provisioner.root),
                "problem": self._problem,
                "error": self._install_error,
            },
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Move the entry to another folder; the unique id follows the folder."""
        entry = self._get_reconfigure_entry()
        form = _Form()
        if user_input is not None:
            folder = await _async_check_folder(self.hass, user_input[CONF_CONFIG_DIR], form)
            if folder is not None:
                if str(folder) != entry.unique_id:
                    await self.async_set_unique_id(str(folder))
                    self._abort_if_unique_id_configured()
                # The update listener reloads the entry; no reload here, so it happens once.
                self.hass.config_entries.async_update_entry(
                    entry,
                    unique_id=str(folder),
                    title=f"{TITLE} ({folder.name})",
                    data={**entry.data, CONF_CONFIG_DIR: str(folder)},
                )
                return self.async_abort(reason="reconfigure_successful")
        schema = vol.Schema({vol.Required(CONF_CONFIG_DIR): _TEXT})
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                schema, user_input or {CONF_CONFIG_DIR: entry.data[CONF_CONFIG_DIR]}
            ),
            errors=form.errors,
        )


class EsphomePipelineOptionsFlow(OptionsFlow):
    """Edit the command, the lane sizes and auto-install."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show the options; check the CLI the entry would run before saving."""
        form = _Form()
        if user_input is not None:
            command = user_input.get(CONF_ESPHOME_COMMAND, "").strip()
            managed = self.config_entry.data.get(CONF_MANAGED_ESPHOME)
            if await _async_check_command(self.hass, command, form, managed=managed):
                return self.async_create_entry(
                    data={
                        CONF_ESPHOME_COMMAND: command,
                        CONF_COMPILE_WORKERS: int(user_input[CONF_COMPILE_WORKERS]),
                        CONF_UPLOAD_SLOTS: int(user_input[CONF_UPLOAD_SLOTS]),
                        CONF_AUTO_INSTALL_ON_CHANGE: bool(user_input[CONF_AUTO_INSTALL_ON_CHANGE]),
                        CONF_PROOF_TIMEOUT: int(
                            user_input.get(CONF_PROOF_TIMEOUT, DEFAULT_PROOF_TIMEOUT)
                        ),
                        CONF_BUILD_ON: user_input.get(CONF_BUILD_ON, DEFAULT_BUILD_ON),
                        CONF_ESPHOME_VERSION_POLICY: user_input.get(
                            CONF_ESPHOME_VERSION_POLICY, DEFAULT_ESPHOME_VERSION_POLICY
                        ),
                    },
                )
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                _options_schema(), user_input or _current_options(self.config_entry.options)
            ),
            errors=form.errors,
            description_placeholders=form.placeholders,
        )


def _options_schema() -> vol.Schema:
    return vol.Schema(
        {
            vol.Optional(CONF_ESPHOME_COMMAND): _TEXT,
            vol.Required(CONF_COMPILE_WORKERS): selector.NumberSelector(
                selector.NumberSelectorConfig(
                    min=1, max=MAX_COMPILE_WORKERS, step=1, mode=selector.NumberSelectorMode.BOX
                )
            ),
            vol.Required(CONF_UPLOAD_SLOTS): selector.NumberSelector(
                selector.NumberSelectorConfig(
                    min=1, max=MAX_UPLOAD_SLOTS, step=1, mode=selector.NumberSelectorMode.BOX
                )
            ),
            vol.Required(CONF_AUTO_INSTALL_ON_CHANGE): selector.BooleanSelector(),
            vol.Optional(CONF_PROOF_TIMEOUT): selector.NumberSelector(
                selector.NumberSelectorConfig(
                    min=0,
                    max=MAX_PROOF_TIMEOUT,
                    step=1,
                    unit_of_measurement="s",
                    mode=selector.NumberSelectorMode.BOX,
                )
            ),
            vol.Optional(CONF_BUILD_ON): _choice(CONF_BUILD_ON, [str(item) for item in BuildOn]),
            vol.Optional(CONF_ESPHOME_VERSION_POLICY): _choice(
                CONF_ESPHOME_VERSION_POLICY, [str(item) for item in VersionPolicy]
            ),
        }
    )


def _current_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {
        CONF_ESPHOME_COMMAND: options.get(CONF_ESPHOME_COMMAND, ""),
        CONF_COMPILE_WORKERS: options.get(CONF_COMPILE_WORKERS, DEFAULT_COMPILE_WORKERS),
        CONF_UPLOAD_SLOTS: options.get(CONF_UPLOAD_SLOTS, DEFAULT_UPLOAD_SLOTS),
        CONF_AUTO_INSTALL_ON_CHANGE: options.get(
            CONF_AUTO_INSTALL_ON_CHANGE, DEFAULT_AUTO_INSTALL_ON_CHANGE
        ),
        CONF_PROOF_TIMEOUT: options.get(CONF_PROOF_TIMEOUT, DEFAULT_PROOF_TIMEOUT),
        CONF_BUILD_ON: options.get(CONF_BUILD_ON, DEFAULT_BUILD_ON),
        CONF_ESPHOME_VERSION_POLICY: options.get(
            CONF_ESPHOME_VERSION_POLICY, DEFAULT_ESPHOME_VERSION_POLICY
        ),
    }


def _choice(key: str, options: list[str]) -> selector.SelectSelector:
    return selector.SelectSelector(
        selector.SelectSelectorConfig(
            options=options, translation_key=key, mode=selector.SelectSelectorMode.DROPDOWN
        )
    )


def _cli_error_field(err: PreflightError) -> str:
    # A command the user gave that fails is that field's fault; "nothing detected" and the
    # installed ESPHome failing concern the form.
    if isinstance(err, CliNotFoundError | ManagedEsphomeBrokenError):
        return "base"
    return CONF_ESPHOME_COMMAND
