"""The entry's build peers: its identity, one link per paired peer, and their routing.

Owns `PeerManager`: the entry's own peer-link identity (an X25519 key created once, mode 0600,
under `.storage/esphome_pipeline/`; it is never shown and never in diagnostics), one
`PeerLink` per `build_peer` subentry, each registered with the engine through the
coordinator as a build peer (a `RetryingRemoteExecutor`), and the routing the engine applies
(`build_on`, the peers that qualify now under the ESPHome version policy, the compiles that
fell back to this machine). A subentry added or removed is picked up by `async_sync` without
a reload: a removed peer's link is closed at once and its compile goes back to the queue.
Every reconnect checks the pinned key; a mismatch opens a repair issue and the link sends
nothing more. Peer entities register with `async_add_peer_entities`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import (
    CONF_BUILD_ON,
    CONF_ESPHOME_VERSION_POLICY,
    DEFAULT_BUILD_ON,
    DEFAULT_ESPHOME_VERSION_POLICY,
    DOMAIN,
)
from .coordinator import PipelineCoordinator
from .engine.esphome_cli import EsphomeCli
from .engine.peer.bundle_ahead import BundleAhead
from .engine.peer.client import PeerLink, dashboard_id_for
from .engine.peer.executor import RemoteExecutor
from .engine.peer.identity import PeerIdentity, async_load_or_create_identity
from .engine.peer.retries import RemoteAttempts, RetryingRemoteExecutor
from .engine.peer.status import LinkState, PeerStatus
from .engine.routing import BuildOn, Routing, VersionPolicy, version_compatible

SUBENTRY_BUILD_PEER: Final = "build_peer"
CONF_HOST: Final = "host"
CONF_PORT: Final = "port"
CONF_PIN: Final = "pin"
DEFAULT_PEER_PORT: Final = 6055
IDENTITY_FOLDER: Final = (".storage", DOMAIN)


def identity_path(hass: HomeAssistant, entry_id: str) -> Path:
    """Return where the entry's peer-link key lives (inside HA's private storage)."""
    return Path(hass.config.path(*IDENTITY_FOLDER, f"{entry_id}.peer_key"))


async def async_entry_identity(hass: HomeAssistant, entry_id: str) -> PeerIdentity:
    """Return the entry's peer-link identity, creating it (0600) the first time."""
    return await async_load_or_create_identity(identity_path(hass, entry_id))


async def async_remove_identity(hass: HomeAssistant, entry_id: str) -> None:
    """Delete the entry's key (the entry is gone; its pairings mean nothing any more)."""
    await hass.async_add_executor_job(lambda: identity_path(hass, entry_id).unlink(missing_ok=True))


def our_label(entry: ConfigEntry) -> str:
    """Return the name receivers show for us."""
    return f"Home Assistant: {entry.title}"[:64]


def pin_issue_id(entry_id: str, subentry_id: str) -> str:
    """Return the id of a peer's "identity changed" repair issue."""
    return f"peer_pin_changed_{entry_id}_{subentry_id}"


@dataclass(slots=True)
class BuildPeer:
    """One paired peer: its subentry, its engine label, its link."""

    subentry_id: str
    label: str
    link: PeerLink
    unsubscribe: Callable[[], None]


type PeerEntityFactory = Callable[[BuildPeer], Iterable[Entity]]


class PeerManager:
    """The build peers of one entry."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        coordinator: PipelineCoordinator,
        *,
        cli: EsphomeCli,
        identity: PeerIdentity,
    ) -> None:
        """Manage the peers of `entry`; nothing connects before `async_sync`."""
        self.hass = hass
        self.entry = entry
        self._coordinator = coordinator
        self._cli = cli
        self._identity = identity
        self._settings = (dict(entry.data), dict(entry.options))
        self.build_on = BuildOn(entry.options.get(CONF_BUILD_ON, DEFAULT_BUILD_ON))
        self.version_policy = VersionPolicy(
            entry.options.get(CONF_ESPHOME_VERSION_POLICY, DEFAULT_ESPHOME_VERSION_POLICY)
        )
        self._attempts = RemoteAttempts(build_on=self.build_on, on_change=self._update_routing)
        self._lost_at: dict[str, int] = {}
        self.peers: dict[str, BuildPeer] = {}
        self._entity_adders: list[tuple[AddConfigEntryEntitiesCallback, PeerEntityFactory]] = []
        self._stopped = False
        self._routing = Routing()
        # The next compiles' bundles are made while the peers build (bundle_ahead.py).
        self._ahead = BundleAhead(
            cli,
            coordinator.config_dir,
            jobs=coordinator.jobs,
            routing=lambda: self._routing,
            peers=lambda: [peer.label for peer in self.peers.values()],
        )
        self._unsubscribe_ahead = coordinator.subscribe(self._ahead.on_event)

    def settings_unchanged(self, entry: ConfigEntry) -> bool:
        """Return True when only subentries changed since setup (no reload needed)."""
        return (dict(entry.data), dict(entry.options)) == self._settings

    # ---------------------------------------------------------------------- life cycle

    async def async_sync(self) -> None:
        """Open links for new peer subentries and close those of removed ones."""
        if self._stopped:
            return
        wanted = {
            subentry_id: subentry
            for subentry_id, subentry in self.entry.subentries.items()
            if subentry.subentry_type == SUBENTRY_BUILD_PEER
        }
        gone = [peer for subentry_id, peer in self.peers.items() if subentry_id not in wanted]
        await asyncio.gather(*(self._async_remove(peer) for peer in gone))
        for subentry_id, subentry in wanted.items():
            if subentry_id not in self.peers:
                self._add(subentry)
        self._update_routing()

    async def async_stop(self) -> None:
        """Close every link (the engine stops separately)."""
        self._stopped = True
        self._unsubscribe_ahead()
        peers, self.peers = list(self.peers.values()), {}
        for peer in peers:
            peer.unsubscribe()
        await asyncio.gather(self._ahead.close(), *(peer.link.close() for peer in peers))

    def _label_for(self, subentry: ConfigSubentry) -> str:
        taken = {peer.label for peer in self.peers.values()}
        label = subentry.title or f"{subentry.data[CONF_HOST]}:{subentry.data[CONF_PORT]}"
        return label if label not in taken else f"{label} ({subentry.subentry_id[-6:]})"

    def _add(self, subentry: ConfigSubentry) -> None:
        data = subentry.data
        label = self._label_for(subentry)
        link = PeerLink(
            host=data[CONF_HOST],
            port=int(data[CONF_PORT]),
            identity=self._identity,
            pin=data[CONF_PIN],
            dashboard_id=dashboard_id_for(self._identity),
            label=our_label(self.entry),
        )
        # The link introduced itself with our name; in job logs it names the peer.
        link.label = label
        peer = BuildPeer(subentry.subentry_id, label, link, lambda: None)
        peer.unsubscribe = link.subscribe(lambda status: self._on_status(peer, status))
        self.peers[subentry.subentry_id] = peer
        remote = RemoteExecutor(
            link, self._cli, self._coordinator.config_dir, bundle_ahead=self._ahead
        )
        executor = RetryingRemoteExecutor(remote, self._attempts)
        self._coordinator.async_add_build_peer(label, executor)
        link.start()
        for async_add_entities, factory in self._entity_adders:
            self._add_entities(peer, async_add_entities, factory)

    async def _async_remove(self, peer: BuildPeer) -> None:
        self.peers.pop(peer.subentry_id, None)
        peer.unsubscribe()
        issue = pin_issue_id(self.entry.entry_id, peer.subentry_id)
        ir.async_delete_issue(self.hass, DOMAIN, issue)
        # The link first: the receiver hears at once, and the running compile ends as lost.
        await peer.link.close()
        await self._coordinator.async_remove_build_peer(peer.label)
        # A peer paired later may get the same label: it must not inherit this one's loss.
        self._attempts.lost_peers.discard(peer.label)
        self._lost_at.pop(peer.label, None)

    # ------------------------------------------------------------------------ entities

    @callback
    def async_add_peer_entities(
        self, async_add_entities: AddConfigEntryEntitiesCallback, factory: PeerEntityFactory
    ) -> None:
        """Add `factory`'s entities for every peer now and for each peer added later."""
        self._entity_adders.append((async_add_entities, factory))
        for peer in self.peers.values():
            self._add_entities(peer, async_add_entities, factory)

    @staticmethod
    def _add_entities(
        peer: BuildPeer, async_add_entities: AddConfigEntryEntitiesCallback, factory: Any
    ) -> None:
        async_add_entities(list(factory(peer)), config_subentry_id=peer.subentry_id)

    # ------------------------------------------------------------------------- routing

    @callback
    def _on_status(self, peer: BuildPeer, status: PeerStatus) -> None:
        issue = pin_issue_id(self.entry.entry_id, peer.subentry_id)
        if status.state is LinkState.PIN_MISMATCH:
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                issue,
                is_fixable=False,
                severity=ir.IssueSeverity.ERROR,
                translation_key="peer_pin_changed",
                translation_placeholders={
                    "peer": peer.label,
                    "address": f"{peer.link.host}:{peer.link.port}",
                },
            )
        elif status.connected:
            ir.async_delete_issue(self.hass, DOMAIN, issue)
        self._update_routing()

    def compatible(self, status: PeerStatus) -> bool:
        """Return True when a peer with this status runs an ESPHome the policy accepts."""
        return version_compatible(
            self._coordinator.esphome_version, status.esphome_version, self.version_policy
        )

    def qualifies(self, peer: BuildPeer) -> bool:
        """Return True when the peer may take a compile now (connected, compatible, not lost)."""
        status = peer.link.status
        if peer.label in self._attempts.lost_peers:
            lost_at = self._lost_at.setdefault(peer.label, status.sessions)
            if status.sessions <= lost_at or not status.connected:
                return False
            # A new session opened since the peer lost a job: it may build again.
            self._attempts.lost_peers.discard(peer.label)
            self._lost_at.pop(peer.label, None)
        return status.connected and self.compatible(status)

    @callback
    def _update_routing(self) -> None:
        if self._stopped:
            return
        active = {job.job_id for job in self._coordinator.jobs() if not job.is_terminal}
        self._attempts.forget(active)
        self._routing = Routing(
            build_on=self.build_on,
            peers=frozenset(peer.label for peer in self.peers.values() if self.qualifies(peer)),
            local_only=frozenset(self._attempts.local_only),
        )
        self._coordinator.set_build_routing(self._routing)
