"""Config, options and reconfigure flows: one entry per ESPHome configuration folder.

The user step asks for the folder and, optionally, the command that runs the ESPHome CLI. Both
are checked before the entry exists: the folder must be readable and the command must answer
`version`. What the user typed is stored (an empty command means "detect at every setup"), so a
later ESPHome install in another place is picked up without editing the entry.

Reconfigure moves the entry to another folder. The unique id is the resolved folder, so it
changes with it: the flow refuses a folder that another entry already owns and otherwise
updates both the data and the unique id. The update listener set up in `__init__` reloads the
entry after any change to data or options (Home Assistant 2025.4 has no OptionsFlowWithReload).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, override

from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult, OptionsFlow
from homeassistant.core import callback
from homeassistant.helpers import selector
import voluptuous as vol

from .const import (
    CONF_AUTO_INSTALL_ON_CHANGE,
    CONF_COMPILE_WORKERS,
    CONF_CONFIG_DIR,
    CONF_ESPHOME_COMMAND,
    CONF_UPLOAD_SLOTS,
    DEFAULT_AUTO_INSTALL_ON_CHANGE,
    DEFAULT_COMPILE_WORKERS,
    DEFAULT_CONFIG_SUBDIR,
    DEFAULT_UPLOAD_SLOTS,
    DOMAIN,
    MAX_COMPILE_WORKERS,
    MAX_UPLOAD_SLOTS,
    TITLE,
)
from .preflight import (
    CliNotFoundError,
    PreflightError,
    async_check_cli,
    async_check_config_dir,
)

_TEXT = selector.TextSelector()


class EsphomePipelineConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up one ESPHome configuration folder."""

    VERSION = 1
    MINOR_VERSION = 1

    @staticmethod
    @callback
    @override
    def async_get_options_flow(config_entry: ConfigEntry) -> EsphomePipelineOptionsFlow:
        """Return the options flow."""
        return EsphomePipelineOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the folder and the command, check both, create the entry."""
        errors: dict[str, str] = {}
        placeholders = {"error": ""}
        if user_input is not None:
            command = user_input.get(CONF_ESPHOME_COMMAND, "").strip()
            try:
                folder = await async_check_config_dir(self.hass, user_input[CONF_CONFIG_DIR])
            except PreflightError as err:
                errors[CONF_CONFIG_DIR] = err.reason
            else:
                await self.async_set_unique_id(str(folder))
                self._abort_if_unique_id_configured()
                try:
                    await async_check_cli(self.hass, command)
                except PreflightError as err:
                    errors[_cli_error_field(err)] = err.reason
                    placeholders["error"] = err.detail
                else:
                    return self.async_create_entry(
                        title=f"{TITLE} ({folder.name})",
                        data={CONF_CONFIG_DIR: str(folder)},
                        options={CONF_ESPHOME_COMMAND: command},
                    )
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
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Move the entry to another folder; the unique id follows the folder."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                folder = await async_check_config_dir(self.hass, user_input[CONF_CONFIG_DIR])
            except PreflightError as err:
                errors[CONF_CONFIG_DIR] = err.reason
            else:
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
            errors=errors,
        )


class EsphomePipelineOptionsFlow(OptionsFlow):
    """Edit the command, the lane sizes and auto-install."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show the options; check a changed command before saving."""
        errors: dict[str, str] = {}
        placeholders = {"error": ""}
        if user_input is not None:
            command = user_input.get(CONF_ESPHOME_COMMAND, "").strip()
            try:
                await async_check_cli(self.hass, command)
            except PreflightError as err:
                errors[_cli_error_field(err)] = err.reason
                placeholders["error"] = err.detail
            else:
                return self.async_create_entry(
                    data={
                        CONF_ESPHOME_COMMAND: command,
                        CONF_COMPILE_WORKERS: int(user_input[CONF_COMPILE_WORKERS]),
                        CONF_UPLOAD_SLOTS: int(user_input[CONF_UPLOAD_SLOTS]),
                        CONF_AUTO_INSTALL_ON_CHANGE: bool(user_input[CONF_AUTO_INSTALL_ON_CHANGE]),
                    },
                )
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                _options_schema(), user_input or _current_options(self.config_entry.options)
            ),
            errors=errors,
            description_placeholders=placeholders,
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
    }


def _cli_error_field(err: PreflightError) -> str:
    # A given command that fails is that field's fault; "nothing detected" concerns the form.
    return "base" if isinstance(err, CliNotFoundError) else CONF_ESPHOME_COMMAND
