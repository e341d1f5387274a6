"""The "Add build peer" flow: a config subentry (`build_peer`) of the entry.

Step `user` offers the receivers found on the network (`peer_discovery`: their name, address,
ESPHome version and announced fingerprint) for one click, receivers already paired left out,
and always the host and port to type (default 6055). It previews the chosen receiver: its
identity comes back without anything being asked of it; a found receiver whose previewed key
differs from the pin it announced is refused before its fingerprint is shown. Step `pair`
shows the fingerprint (emoji, their names and the pin in hex) and the receiver's ESPHome
version, to compare with what the receiver printed, and asks for the one-time pairing key;
the pairing request travels only to the key that was previewed. Every failure is a form error
and nothing is stored: unreachable host, not a receiver, wrong key or closed pairing window, a
pin that changed since the preview, a refusal. The subentry keeps host, port and the pinned
key; its unique id is the pin, so a receiver is paired once per entry, and pairing ends that
receiver's "Discovered" card. `PairAttempt`, `peer_subentry` and `pair_placeholders` are
shared with the card's steps (`peer_discovery_flow`).
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.config_entries import ConfigEntry, ConfigSubentryFlow, SubentryFlowResult
from homeassistant.core import HomeAssistant
from homeassistant.helpers import selector
import voluptuous as vol

from .const import DOMAIN
from .engine.peer.client import PairingError, PeerPreview, pair, preview
from .engine.peer.identity import emoji_fingerprint
from .peer_discovery import FoundReceiver, async_found_receivers
from .peers import (
    CONF_HOST,
    CONF_PIN,
    CONF_PORT,
    DEFAULT_PEER_PORT,
    async_entry_identity,
    our_label,
)

CONF_PAIRING_KEY: Final = "pairing_key"
CONF_RECEIVER: Final = "receiver"
MANUAL: Final = "manual"

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
        self._found: dict[str, FoundReceiver] = {}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Offer the receivers found on the network or ask for an address; preview it."""
        errors: dict[str, str] = {}
        placeholders = {"error": ""}
        if user_input is None:
            paired = {subentry.unique_id for subentry in self._get_entry().subentries.values()}
            self._found = {
                found.service: found
                for found in await async_found_receivers(self.hass)
                if not (found.pin and found.pin in paired)
            }
        elif (target := self._target(user_input)) is None:
            errors[CONF_HOST] = "host_required"
        else:
            host, port, announced_pin = target
            identity = await async_entry_identity(self.hass, self._entry_id)
            try:
                seen = await preview(host, port, identity)
            except PairingError as err:
                errors["base"] = _ERROR_BY_KIND.get(err.kind, "pairing_rejected")
                placeholders["error"] = str(err)
            else:
                if announced_pin and seen.pin != announced_pin:
                    # Whoever answers is not the receiver that announced itself: show nothing
                    # of it, so nobody is tempted to compare the wrong fingerprint.
                    errors["base"] = "announced_pin_differs"
                else:
                    for subentry in self._get_entry().subentries.values():
                        if subentry.unique_id == seen.pin:
                            return self.async_abort(reason="already_configured")
                    self._preview = seen
                    return await self.async_step_pair()
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(self._user_schema(), user_input or {}),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _target(self, user_input: dict[str, Any]) -> tuple[str, int, str] | None:
        """Host, port and announced pin ("" when typed) of what was chosen; None when nothing."""
        found = self._found.get(str(user_input.get(CONF_RECEIVER, MANUAL)))
        if found is not None:
            return found.host, found.port, found.pin
        host = str(user_input.get(CONF_HOST, "")).strip()
        if not host:
            return None
        return host, int(user_input.get(CONF_PORT, DEFAULT_PEER_PORT)), ""

    def _user_schema(self) -> vol.Schema:
        """Host and port; above them, when receivers were found, a one-click choice."""
        port = selector.NumberSelector(
            selector.NumberSelectorConfig(
                min=1, max=65535, step=1, mode=selector.NumberSelectorMode.BOX
            )
        )
        if not self._found:
            return vol.Schema(
                {
                    vol.Required(CONF_HOST): selector.TextSelector(),
                    vol.Required(CONF_PORT, default=DEFAULT_PEER_PORT): port,
                }
            )
        options = [
            selector.SelectOptionDict(value=found.service, label=_label(found))
            for found in self._found.values()
        ]
        options.append(selector.SelectOptionDict(value=MANUAL, label=MANUAL))
        receivers = selector.SelectSelector(
            selector.SelectSelectorConfig(
                options=options,
                translation_key=CONF_RECEIVER,
                mode=selector.SelectSelectorMode.LIST,
            )
        )
        return vol.Schema(
            {
                vol.Optional(CONF_RECEIVER): receivers,
                vol.Optional(CONF_HOST): selector.TextSelector(),
                vol.Required(CONF_PORT, default=DEFAULT_PEER_PORT): port,
            }
        )

    async def async_step_pair(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Show the fingerprint, ask for the pairing key, and pair with the previewed key."""
        seen = self._preview
        if seen is None:
            raise AssertionError("the pair step always follows a preview")
        attempt = PairAttempt()
        if user_input is not None:
            await attempt.async_pair(self.hass, self._get_entry(), seen, user_input)
            if attempt.pin is not None:
                # The receiver's "Discovered" card, if any, has nothing left to offer.
                flows = self.hass.config_entries.flow
                for flow in flows.async_progress_by_handler(
                    DOMAIN, match_context={"unique_id": attempt.pin}
                ):
                    flows.async_abort(flow["flow_id"])
                return self.async_create_entry(**peer_subentry(seen, attempt.pin))
        return self.async_show_form(
            step_id="pair",
            data_schema=vol.Schema({vol.Required(CONF_PAIRING_KEY): selector.TextSelector()}),
            errors=attempt.errors,
            description_placeholders=pair_placeholders(seen, attempt.error_text),
        )


class PairAttempt:
    """One submission of the pairing key: the pin on success, else the form's error."""

    def __init__(self) -> None:
        """Nothing tried yet."""
        self.pin: str | None = None
        self.errors: dict[str, str] = {}
        self.error_text = ""

    async def async_pair(
        self, hass: HomeAssistant, entry: ConfigEntry, seen: PeerPreview, user_input: dict[str, Any]
    ) -> None:
        """Pair `entry` with the previewed receiver, sending the key only to the previewed pin."""
        identity = await async_entry_identity(hass, entry.entry_id)
        try:
            result = await pair(
                seen.host,
                seen.port,
                identity,
                pairing_key=str(user_input[CONF_PAIRING_KEY]),
                expected_pin=seen.pin,
                label=our_label(entry),
            )
        except PairingError as err:
            self.errors["base"] = _ERROR_BY_KIND.get(err.kind, "pairing_rejected")
            self.error_text = str(err)
            return
        if result.approved:
            self.pin = result.pin
        else:
            self.errors["base"] = "approval_pending"


def peer_subentry(seen: PeerPreview, pin: str) -> dict[str, Any]:
    """Title, data and unique id of the build peer subentry for a paired receiver."""
    return {
        "title": seen.friendly_name or f"{seen.host}:{seen.port}",
        "data": {CONF_HOST: seen.host, CONF_PORT: seen.port, CONF_PIN: pin},
        "unique_id": pin,
    }


def pair_placeholders(seen: PeerPreview, error_text: str) -> dict[str, str]:
    """What the pairing form shows: who answered, its fingerprint and its ESPHome."""
    return {
        "name": seen.friendly_name or f"{seen.host}:{seen.port}",
        "address": f"{seen.host}:{seen.port}",
        "emoji": seen.emoji,
        "emoji_names": seen.emoji_names,
        "pin": seen.formatted_pin,
        "esphome_version": seen.esphome_version or "unknown",
        "error": error_text,
    }


def _label(found: FoundReceiver) -> str:
    """How a found receiver reads in the list: name, address, ESPHome, announced fingerprint."""
    parts = [f"{found.friendly_name} ({found.address})"]
    if found.esphome_version:
        parts.append(f"ESPHome {found.esphome_version}")
    if found.pin:
        parts.append(emoji_fingerprint(found.pin))
    return " · ".join(parts)
