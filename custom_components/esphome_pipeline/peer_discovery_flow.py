"""A receiver discovered on the network, paired from the integrations page.

Home Assistant's zeroconf starts this flow for every `_esphomebuilder._tcp` announcement
(manifest `zeroconf`), so a Device Builder receiver shows as a "Discovered" card on the
integrations page. Home Assistant 2025.4 lets a discovery start only the main config flow,
and a build peer is a subentry of an existing entry; so these steps pair the receiver and add
the `build_peer` subentry to the entry the user picks (the same subentry "Add build peer"
creates), then end with a message instead of a new entry.

The flow's unique id is the announced pin: one card per receiver, and "Ignore" keeps that
receiver ignored. Announcements that are no build receiver (no peer-link port or no pin), a
receiver already paired with an entry, and Home Assistant without any ESPHome Pipeline entry
end the flow silently. The receiver is previewed before the form appears, and one whose key
differs from the announced pin is refused, so the fingerprint shown is what answers.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult, ConfigSubentry
from homeassistant.helpers import selector
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
import voluptuous as vol

from .const import DOMAIN
from .engine.peer.client import PairingError, PeerPreview, preview
from .peer_discovery import FoundReceiver, receiver_from_discovery
from .peer_flow import CONF_PAIRING_KEY, PairAttempt, pair_placeholders, peer_subentry
from .peers import SUBENTRY_BUILD_PEER, async_entry_identity

CONF_ENTRY: Final = "entry"


class ReceiverDiscoverySteps(ConfigFlow):
    """The discovery steps of the main config flow (mixed into it)."""

    _receiver: FoundReceiver | None = None
    _receiver_preview: PeerPreview | None = None

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """A receiver announced itself: offer to pair it when it is new to every entry."""
        found = receiver_from_discovery(discovery_info)
        if found is None or not found.pin:
            return self.async_abort(reason="not_a_build_receiver")
        await self.async_set_unique_id(found.pin)
        self._abort_if_unique_id_configured()
        entries = self._pipeline_entries()
        if not entries:
            return self.async_abort(reason="no_pipeline_entry")
        paired = {sub.unique_id for entry in entries for sub in entry.subentries.values()}
        if found.pin in paired:
            return self.async_abort(reason="peer_already_paired")
        self._receiver = found
        self.context["title_placeholders"] = {"name": found.friendly_name}
        return await self.async_step_pair_receiver()

    async def async_step_pair_receiver(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the fingerprint that answers, ask for the key and the entry, and pair."""
        found = self._receiver
        if found is None:
            raise AssertionError("pair_receiver always follows a discovery")
        entries = self._pipeline_entries()
        if not entries:
            return self.async_abort(reason="no_pipeline_entry")
        seen = self._receiver_preview
        if seen is None:
            identity = await async_entry_identity(self.hass, entries[0].entry_id)
            try:
                seen = await preview(found.host, found.port, identity)
            except PairingError:
                return self.async_abort(reason="receiver_unreachable")
            if seen.pin != found.pin:
                return self.async_abort(reason="announced_pin_differs")
            self._receiver_preview = seen
        attempt = PairAttempt()
        if user_input is not None:
            chosen = str(user_input.get(CONF_ENTRY, entries[0].entry_id))
            entry = next((entry for entry in entries if entry.entry_id == chosen), entries[0])
            await attempt.async_pair(self.hass, entry, seen, user_input)
            if attempt.pin is not None:
                return self._add_peer(entry, seen, attempt.pin)
        schema: dict[Any, Any] = {vol.Required(CONF_PAIRING_KEY): selector.TextSelector()}
        if len(entries) > 1:
            options = [
                selector.SelectOptionDict(value=entry.entry_id, label=entry.title)
                for entry in entries
            ]
            schema[vol.Required(CONF_ENTRY, default=entries[0].entry_id)] = selector.SelectSelector(
                selector.SelectSelectorConfig(options=options)
            )
        return self.async_show_form(
            step_id="pair_receiver",
            data_schema=vol.Schema(schema),
            errors=attempt.errors,
            description_placeholders=pair_placeholders(seen, attempt.error_text),
        )

    def _add_peer(self, entry: ConfigEntry, seen: PeerPreview, pin: str) -> ConfigFlowResult:
        subentry = peer_subentry(seen, pin)
        self.hass.config_entries.async_add_subentry(
            entry,
            ConfigSubentry(
                data=MappingProxyType(subentry["data"]),
                subentry_type=SUBENTRY_BUILD_PEER,
                title=subentry["title"],
                unique_id=pin,
            ),
        )
        return self.async_abort(
            reason="peer_paired",
            description_placeholders={"name": subentry["title"], "entry": entry.title},
        )

    def _pipeline_entries(self) -> list[ConfigEntry]:
        """The entries a peer can join (ignored and disabled ones cannot)."""
        return self.hass.config_entries.async_entries(
            DOMAIN, include_ignore=False, include_disabled=False
        )
