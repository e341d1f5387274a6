"""Where a compile may run: this machine, build peers, or both, and which peers qualify.

Owns the routing rule, as pure functions of the job, the slot and a `Routing` value the Home
Assistant layer keeps current (the `build_on` option, the peers that qualify now, the jobs
that fell back to a local compile), plus the ESPHome version policy that decides whether a
peer qualifies. `state.next_job` applies `slot_may_take`; the engine shows `wait_reason` in
the log of a compile that nothing qualifies for.

The rule, in words:
- Only compiles are routed; cleans, resets and uploads always run on this machine.
- A peer's slot takes a compile only when `build_on` is not "local only", its peer is in
  `Routing.peers` (connected, and its ESPHome version compatible under the policy), and the
  job has not fallen back to this machine.
- This machine's compile slots take no compile when `build_on` is "peers only".
- A compile nothing qualifies for waits in the queue; its log says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
import re
from typing import Final

from .models import Job, JobType


class BuildOn(StrEnum):
    """Option `build_on`: where compiles may run."""

    LOCAL_AND_PEERS = "local_and_peers"
    PEERS_ONLY = "peers_only"
    LOCAL_ONLY = "local_only"


class VersionPolicy(StrEnum):
    """Option `esphome_version_policy`: which peer ESPHome versions may build."""

    ANY = "any"
    SAME_RELEASE = "same_release"
    """Same year.month release as this machine's ESPHome (patch versions may differ)."""
    EXACT = "exact"


MAX_REMOTE_ATTEMPTS: Final = 3
"""How many times a compile whose peer was lost mid-build is sent again."""

_RELEASE_RE: Final = re.compile(r"^(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True)
class Routing:
    """What the routing rule needs to know right now."""

    build_on: BuildOn = BuildOn.LOCAL_AND_PEERS
    peers: frozenset[str] | None = None
    """Labels of the peers that qualify now (connected and compatible); None: every peer."""
    local_only: frozenset[str] = field(default_factory=frozenset)
    """Job ids that fell back to a local compile: no peer takes them again."""


def version_compatible(local: str | None, peer: str | None, policy: VersionPolicy) -> bool:
    """Return True when a peer running ESPHome `peer` may build under `policy`."""
    if policy is VersionPolicy.ANY:
        return True
    if not local or not peer:
        return False
    if policy is VersionPolicy.EXACT:
        return local == peer
    ours, theirs = _RELEASE_RE.match(local), _RELEASE_RE.match(peer)
    return ours is not None and theirs is not None and ours.groups() == theirs.groups()


def slot_may_take(job: Job, peer: str | None, routing: Routing) -> bool:
    """Return True when the slot of `peer` (None: this machine) may run `job` under `routing`."""
    if job.job_type is not JobType.COMPILE:
        return peer is None
    if peer is None:
        return routing.build_on is not BuildOn.PEERS_ONLY or job.job_id in routing.local_only
    return (
        routing.build_on is not BuildOn.LOCAL_ONLY
        and (routing.peers is None or peer in routing.peers)
        and job.job_id not in routing.local_only
    )


def wait_reason(job: Job, routing: Routing) -> str | None:
    """Return why no slot can take the compile `job` now (None: some slot may)."""
    if job.job_type is not JobType.COMPILE or job.job_id in routing.local_only:
        return None
    if routing.build_on is BuildOn.PEERS_ONLY and routing.peers is not None and not routing.peers:
        return (
            "Waiting for a build peer: builds run on peers only, and no connected build peer "
            "with a compatible ESPHome version is available"
        )
    return None
