"""The "Add build peer" flow: a config subentry (`build_peer`) of the entry.

Step `user` asks for the receiver's host and port (default 6055) and previews it: the
receiver's identity comes back without anything being asked of it. Step `pair` shows the
fingerprint (emoji, their names and the pin in hex) and the receiver's ESPHome version, to
compare with what the receiver printed, and asks for the one-time pairing key; the pairing
request travels only to the key that was previewed. Every failure is a form error and
nothing is stored: unreachable host, not a receiver, wrong key or closed pairing window, a
pin that changed since the preview, a refusal. The subentry keeps host, port and the pinned
key; its unique id is the pin, so a receiver is paired once per entry.
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.config_entries import ConfigSubentryFlow, SubentryFlowResult
from homeassistant.helpers import selector
import voluptuous as vol

from .engine.peer.client import PairingError, PeerPreview, pair, preview
from .peers import (
    CONF_HOST,
    CONF_PIN,
    CONF_PORT,
    DEFAULT_PEER_PORT,
    async_entry_identity,
    our_label,
)

CONF_PAIRING_KEY: Final = "pairing_key"

_ERROR_BY_KIND: Final = {
    "unreachable": "cannot_connect",
    "protocol": "not_a_receiver",
    "pin_changed": "pin_changed",
    "no_pairing_window": "no_pairing_window",
    "rejected": "pairing_rejected",
}


class BuildPeerSubentryFlow(ConfigSubentryFlow):
    """Pair an ESPHome Device Builder receiver as a build peer."""

    def __init__(self) -> None:
        """Start with nothing previewed."""
        self._preview: PeerPreview | None = None

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Ask for the receiver's address and preview who answers there."""
        errors: dict[str, str] = {}
        placeholders = {"error": ""}
        if user_input is not None:
            host = str(user_input[CONF_HOST]).strip()
            port = int(user_input[CONF_PORT])
            identity = await async_entry_identity(self.hass, self._entry_id)
            try:
                self._preview = await preview(host, port, identity)
            except PairingError as err:
                errors["base"] = _ERROR_BY_KIND.get(err.kind, "pairing_rejected")
                placeholders["error"] = str(err)
            else:
                for subentry in self._get_entry().subentries.values():
                    if subentry.unique_id == self._preview.pin:
                        return self.async_abort(reason="already_configured")
                return await self.async_step_pair()
        schema = vol.Schema(
            {
                vol.Required(CONF_HOST): selector.TextSelector(),
                vol.Required(CONF_PORT, default=DEFAULT_PEER_PORT): selector.NumberSelector(
                    selector.NumberSelectorConfig(
                        min=1, max=65535, step=1, mode=selector.NumberSelectorMode.BOX
                    )
                ),
            }
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_pair(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Show the fingerprint, ask for the pairing key, and pair with the previewed key."""
        seen = self._preview
        if seen is None:
            raise AssertionError("the pair step always follows a preview")
        errors: dict[str, str] = {}
        error_text = ""
        if user_input is not None:
            identity = await async_entry_identity(self.hass, self._entry_id)
            try:
                result = await pair(
                    seen.host,
                    seen.port,
                    identity,
                    pairing_key=str(user_input[CONF_PAIRING_KEY]),
                    expected_pin=seen.pin,
                    label=our_label(self._get_entry()),
                )
            except PairingError as err:
                errors["base"] = _ERROR_BY_KIND.get(err.kind, "pairing_rejected")
                error_text = str(err)
            else:
                if result.approved:
                    return self.async_create_entry(
                        title=seen.friendly_name or f"{seen.host}:{seen.port}",
                        data={CONF_HOST: seen.host, CONF_PORT: seen.port, CONF_PIN: result.pin},
                        unique_id=result.pin,
                    )
                errors["base"] = "approval_pending"
        return self.async_show_form(
            step_id="pair",
            data_schema=vol.Schema({vol.Required(CONF_PAIRING_KEY): selector.TextSelector()}),
            errors=errors,
            description_placeholders={
                "name": seen.friendly_name or f"{seen.host}:{seen.port}",
                "address": f"{seen.host}:{seen.port}",
                "emoji": seen.emoji,
                "emoji_names": seen.emoji_names,
                "pin": seen.formatted_pin,
                "esphome_version": seen.esphome_version or "unknown",
                "error": error_text,
            },
        )
