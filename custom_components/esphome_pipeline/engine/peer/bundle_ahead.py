"""Bundles prepared ahead for the compiles likely to go to a build peer next.

Owns `BundleAhead`. A remote compile starts with `esphome bundle` on this machine, a process
of a few tenths of a second during which the peer sits idle. While the peers build, this
module runs `esphome bundle` for the next queued compiles a peer may take (at most one per
peer), so a peer that finishes gets its next bundle at once. The rules:

- Only queued compiles a peer may take under the routing are prepared, in queue order, and
  never more than the number of peers; nothing behind a queued reset (the barrier).
- A prepared bundle lives in its job's own staging folder (the one `RemoteExecutor` uses),
  and nowhere else.
- A job that leaves the queue other than to a peer (cancelled, superseded, taken by this
  machine's compile lane) loses its bundle: the process is stopped, the folder removed.
- A clean invalidates the prepared bundles of its configuration, a reset all of them.
- A bundle is taken only when no file it holds changed after it was prepared; otherwise the
  executor bundles again, as without this module.
- Bundles a peer already waits for come first: while one of those is still being made, no
  bundle for a later compile starts. `esphome bundle` is CPU work, and on a small machine
  six of them at once (the peers' first jobs and their next ones) slowed the first three down.

`RemoteExecutor` calls `take(job)`; the engine's events drive the rest (`on_event`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable
import contextlib
from dataclasses import dataclass
from functools import partial
import logging
import os
from pathlib import Path
import shutil
import signal
import tarfile
import time
from typing import Final

from ..esphome_cli import EsphomeCli
from ..events import EventKind, JobEvent
from ..fingerprint_inputs import ESPHOME_DATA_DIR
from ..models import Job, JobStatus, JobType, Lane
from ..routing import Routing, slot_may_take

_LOGGER = logging.getLogger(__name__)

STAGING_FOLDER: Final = ".pipeline-remote"
BUNDLE_NAME: Final = "bundle.tar.gz"
_CLOCK_SLACK_NS: Final = 50_000_000
"""File times may lag the clock by a tick: a file this close to the start counts as changed."""


@dataclass(frozen=True, slots=True)
class PreparedBundle:
    """A finished `esphome bundle` of one job: the file and what the process printed."""

    path: Path
    lines: tuple[str, ...]
    started_ns: int


def staging_for(data_dir: Path, job_id: str) -> Path:
    """Return the staging folder of a remote job."""
    return data_dir / STAGING_FOLDER / job_id


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _bundle_is_current(prepared: PreparedBundle, config_dir: Path) -> bool:
    """True when no file of the bundle changed since its preparation began (blocking)."""
    try:
        with tarfile.open(prepared.path, "r:*") as archive:
            names = [member.name for member in archive.getmembers() if member.isfile()]
    except (OSError, tarfile.TarError):
        return False
    limit = prepared.started_ns - _CLOCK_SLACK_NS
    for name in names:
        try:
            stamp = (config_dir / name).stat().st_mtime_ns
        except (OSError, ValueError):
            continue
        if stamp >= limit:
            return False
    return True


class BundleAhead:
    """The bundles prepared ahead, one preparation task per job."""

    def __init__(
        self,
        cli: EsphomeCli,
        config_dir: Path,
        *,
        data_dir: Path | None = None,
        jobs: Callable[[], Iterable[Job]],
        routing: Callable[[], Routing],
        peers: Callable[[], Collection[str]],
    ) -> None:
        """Prepare bundles of `jobs()` (oldest first) for `peers()` under `routing()`."""
        self._cli = cli
        self._config_dir = config_dir
        self._data_dir = data_dir if data_dir is not None else config_dir / ESPHOME_DATA_DIR
        self._jobs = jobs
        self._routing = routing
        self._peers = peers
        self._preparing: dict[str, tuple[Job, asyncio.Task[PreparedBundle | None]]] = {}
        self._discarding: dict[str, asyncio.Task[None]] = {}
        self._awaited: set[asyncio.Task[PreparedBundle | None]] = set()
        """Preparations an executor is waiting for in `take`."""
        self._deferred = False
        """A look at the queue held back later bundles: the next preparation's end looks again."""
        self._refresh_due = False
        self._closed = False

    @property
    def prepared(self) -> frozenset[str]:
        """The job ids with a bundle prepared or on the way."""
        return frozenset(self._preparing)

    # --- what the engine tells us -------------------------------------------------------

    def on_event(self, event: JobEvent) -> None:
        """Look at the queue again soon (an engine listener: it must not wait)."""
        if event.kind is not EventKind.STATUS:
            return
        job = event.job
        if job.status is JobStatus.RUNNING and job.job_type is JobType.RESET_BUILD_ENV:
            self._discard_where(lambda _job: True)
        elif job.status is JobStatus.RUNNING and job.job_type is JobType.CLEAN:
            self._discard_where(lambda prepared: prepared.configuration == job.configuration)
        self._refresh_soon()

    def _refresh_soon(self) -> None:
        if not self._refresh_due and not self._closed:
            self._refresh_due = True
            asyncio.get_running_loop().call_soon(self.refresh)

    def refresh(self) -> None:
        """Prepare the next compiles a peer may take; drop bundles nobody will take."""
        self._refresh_due = False
        if self._closed:
            return
        routing = self._routing()
        # Only peers that may build now count: an offline peer gets no bundle made for it.
        peers = [peer for peer in self._peers() if routing.peers is None or peer in routing.peers]
        wanted: list[Job] = []
        on_peer: set[str] = set()
        for job in self._jobs():
            if job.status is JobStatus.RUNNING and job.lane is Lane.REMOTE:
                on_peer.add(job.job_id)
            if job.status is not JobStatus.QUEUED or job.lane is not Lane.COMPILE:
                continue
            if job.job_type is JobType.RESET_BUILD_ENV:
                break
            if (
                len(wanted) < len(peers)
                and job.job_type is JobType.COMPILE
                and not job.held
                and any(slot_may_take(job, peer, routing) for peer in peers)
            ):
                wanted.append(job)
        keep = {job.job_id for job in wanted} | on_peer
        self._discard_where(lambda job: job.job_id not in keep)
        self._deferred = self._peer_waits(on_peer)
        if self._deferred:
            return
        for job in wanted:
            if job.job_id not in self._preparing and job.job_id not in self._discarding:
                task = asyncio.get_running_loop().create_task(
                    self._prepare(job), name=f"bundle ahead {job.configuration}"
                )
                task.add_done_callback(self._after_preparation)
                self._preparing[job.job_id] = (job, task)

    def _after_preparation(self, _task: asyncio.Task[PreparedBundle | None]) -> None:
        if self._deferred:
            self._refresh_soon()

    def _peer_waits(self, on_peer: Collection[str]) -> bool:
        """True while a bundle is still being made for a compile a peer has taken."""
        if any(not task.done() for task in self._awaited):
            return True
        return any(
            job_id in on_peer and not task.done()
            for job_id, (_job, task) in self._preparing.items()
        )

    def _discard_where(self, condition: Callable[[Job], bool]) -> None:
        for job_id, (job, task) in list(self._preparing.items()):
            if condition(job):
                del self._preparing[job_id]
                drop = asyncio.get_running_loop().create_task(self._drop(job_id, task))
                self._discarding[job_id] = drop
                drop.add_done_callback(partial(self._forget, job_id))

    async def _drop(self, job_id: str, task: asyncio.Task[PreparedBundle | None]) -> None:
        """Stop a preparation (or let go of its result) and remove its staging folder."""
        task.cancel()
        # Whatever it ended with (a result, a failure, the cancel) is of no use any more.
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(
            None, _remove, staging_for(self._data_dir, job_id)
        )

    def _forget(self, job_id: str, drop: asyncio.Task[None]) -> None:
        if self._discarding.get(job_id) is drop:
            del self._discarding[job_id]

    # --- the executor's side ------------------------------------------------------------

    async def take(self, job: Job) -> PreparedBundle | None:
        """Return the job's prepared bundle (waiting for one on the way), or None.

        None also when a file of the bundle changed since; the staging folder is then the
        executor's to clear. After this call nothing here touches the job's staging.
        """
        discarding = self._discarding.get(job.job_id)
        if discarding is not None:
            # Its folder is being removed: the executor's own bundle must come after that.
            await asyncio.wait({discarding})
        entry = self._preparing.pop(job.job_id, None)
        if entry is None:
            return None
        task = entry[1]
        self._awaited.add(task)
        try:
            prepared = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait({task})
            raise
        except Exception:
            _LOGGER.exception("Preparing the bundle of %s failed", job.configuration)
            return None
        finally:
            self._awaited.discard(task)
        if prepared is None:
            return None
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, _bundle_is_current, prepared, self._config_dir):
            return None
        return prepared

    async def close(self) -> None:
        """Stop every preparation and remove what it left."""
        self._closed = True
        self._discard_where(lambda _job: True)
        pending = list(self._discarding.values())
        if pending:
            await asyncio.wait(pending)

    # --- one preparation ----------------------------------------------------------------

    async def _prepare(self, job: Job) -> PreparedBundle | None:
        staging = staging_for(self._data_dir, job.job_id)
        bundle = staging / BUNDLE_NAME
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, _remove, staging)
            await loop.run_in_executor(None, partial(staging.mkdir, parents=True))
            started = time.time_ns()
            lines = await self._run_bundle(job, bundle)
        except asyncio.CancelledError:
            # Discarded, or the taker was cancelled: nothing of it may stay behind.
            await loop.run_in_executor(None, _remove, staging)
            raise
        if lines is None:
            return None
        return PreparedBundle(bundle, tuple(lines), started)

    async def _run_bundle(self, job: Job, bundle: Path) -> list[str] | None:
        """Run `esphome bundle`; return its output lines, or None when it failed."""
        argv = [
            *self._cli.command,
            "bundle",
            str(self._config_dir / job.configuration),
            "-o",
            str(bundle),
        ]
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self._config_dir,
            env=self._cli.environment(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            output, _ = await process.communicate()
        except asyncio.CancelledError:
            # Its own session: the bundle process and anything it started stop together.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise
        if process.returncode != 0:
            return None
        return output.decode(errors="replace").splitlines()
