"""Run one compile on a build peer, shaped like the engine's executors.

Owns `RemoteExecutor.run(running, sink) -> Outcome`: `esphome bundle` runs here (a real
process of the job, so a cancel during it stops it like any compile), the bundle goes to the
peer, the peer's output and progress stream into the job's log, a cancel reaches the peer,
and after a completed compile the artifacts are downloaded, checked and put into the
configuration's build folder, so the upload lane flashes them exactly as after a local
compile. `run_remote` returns the same outcome plus a `kind` that tells a scheduler whether
sending the compile again (to this or another peer) or falling back to a local compile makes
sense. Each job works in its own staging folder under ESPHome's data folder, removed at the end.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
import shutil
from typing import Final

from ..esphome_cli import EsphomeCli
from ..executors import JobSink
from ..fingerprint_inputs import ESPHOME_DATA_DIR
from ..lanes import Outcome, RunningJob, StopReason
from ..models import JobStatus
from ..runner import JobProcess
from .artifacts import ArtifactError, async_materialise
from .bundle_ahead import BUNDLE_NAME, BundleAhead, PreparedBundle, staging_for
from .link import PeerLink
from .remote_jobs import ArtifactsUnavailableError, RemoteJobRefusedError
from .wire import PeerError, PeerProtocolError, RemoteJobState

STOP_POLL: Final = 0.1
"""Seconds between checks for a stop request while the peer builds."""
CANCEL_CONFIRM_TIMEOUT: Final = 30.0
"""Seconds to wait for the peer to confirm a cancel before the job ends anyway."""


@dataclass(frozen=True, slots=True)
class RemoteRunResult:
    """How a remote compile ended, and what kind of end it was.

    `kind` is one of: completed, cancelled, failed (the compile itself failed on the peer),
    bundle_failed, peer_lost (the link ended mid-job), refused (the peer did not take the
    job), protocol (the peer broke the protocol), artifacts_unavailable (the peer could not
    send them; Device Builder 1.26.0 for a `host:` build), artifacts_invalid (they failed
    our checks).
    """

    outcome: Outcome
    kind: str

    @property
    def retryable(self) -> bool:
        """True when sending the compile again may well work (the peer went away)."""
        return self.kind == "peer_lost"

    @property
    def local_fallback(self) -> bool:
        """True when a local compile may succeed where the peer did not."""
        return self.kind in {
            "peer_lost",
            "refused",
            "protocol",
            "artifacts_unavailable",
            "artifacts_invalid",
        }


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class RemoteExecutor:
    """Compiles on one peer: one job at a time per peer, as the receiver's lane does."""

    def __init__(
        self,
        link: PeerLink,
        cli: EsphomeCli,
        config_dir: Path,
        *,
        data_dir: Path | None = None,
        esphome_version: str | None = None,
        bundle_ahead: BundleAhead | None = None,
        stop_poll: float = STOP_POLL,
        cancel_confirm_timeout: float = CANCEL_CONFIRM_TIMEOUT,
    ) -> None:
        """Build on `link`'s peer for configurations in `config_dir`.

        `data_dir` is ESPHome's data folder (default `<config_dir>/.esphome`);
        `esphome_version`, when set, asks the receiver to build with that release;
        `bundle_ahead`, when given, may hold the job's bundle already made.
        """
        self.link = link
        self._cli = cli
        self._config_dir = config_dir
        self._data_dir = data_dir if data_dir is not None else config_dir / ESPHOME_DATA_DIR
        self._esphome_version = esphome_version
        self._bundle_ahead = bundle_ahead
        self._stop_poll = stop_poll
        self._cancel_confirm_timeout = cancel_confirm_timeout

    async def run(self, running: RunningJob, sink: JobSink) -> Outcome:
        """Run the job on the peer and return its outcome (the engine's Executor shape)."""
        return (await self.run_remote(running, sink)).outcome

    async def run_remote(self, running: RunningJob, sink: JobSink) -> RemoteRunResult:
        """Run the job on the peer; the result also says what kind of end it was."""
        if running.stop_requested():
            running.spawned(None)
            return self._stopped(running)
        staging = staging_for(self._data_dir, running.job.job_id)
        loop = asyncio.get_running_loop()
        try:
            prepared = None
            if self._bundle_ahead is not None:
                prepared = await self._bundle_ahead.take(running.job)
            if prepared is None:
                await loop.run_in_executor(None, _remove, staging)
                await loop.run_in_executor(None, lambda: staging.mkdir(parents=True))
            return await self._run_in(staging, running, sink, prepared)
        finally:
            await loop.run_in_executor(None, _remove, staging)

    @staticmethod
    def _stopped(running: RunningJob) -> RemoteRunResult:
        if running.stop_reason is StopReason.SHUTDOWN:
            return RemoteRunResult(Outcome(status=JobStatus.QUEUED), "cancelled")
        return RemoteRunResult(
            Outcome(status=JobStatus.CANCELLED, error=running.cancel_error), "cancelled"
        )

    @staticmethod
    def _failed(kind: str, error: str) -> RemoteRunResult:
        return RemoteRunResult(Outcome(status=JobStatus.FAILED, error=error), kind)

    async def _bundle(self, running: RunningJob, sink: JobSink, bundle: Path) -> str | None:
        """Run `esphome bundle`; return an error, or None when the bundle is there."""
        job = running.job
        argv = [
            *self._cli.command,
            "bundle",
            str(self._config_dir / job.configuration),
            "-o",
            str(bundle),
        ]
        try:
            process = await JobProcess.start(
                argv, cwd=self._config_dir, env=self._cli.environment()
            )
        except OSError as err:
            running.spawned(None)
            return f"Could not start the ESPHome command: {err}"
        running.spawned(process)
        sink.process_started(job, process.record)
        exit_code = await process.stream(lambda line, again: sink.output(job, line, again))
        if exit_code != 0 and not running.stop_requested():
            return f"esphome bundle failed with exit code {exit_code}"
        return None

    async def _run_in(
        self,
        staging: Path,
        running: RunningJob,
        sink: JobSink,
        prepared: PreparedBundle | None,
    ) -> RemoteRunResult:
        job = running.job
        link = self.link
        bundle = staging / BUNDLE_NAME
        if prepared is None:
            error = await self._bundle(running, sink, bundle)
        else:
            # Made while the peers were busy; its output goes into the log as if run now.
            running.spawned(None)
            for line in prepared.lines:
                sink.output(job, line, False)
            sink.output(job, "Bundle prepared ahead while the build peers were busy", False)
            error = None
        if running.stop_requested():
            return self._stopped(running)
        if error is not None:
            return self._failed("bundle_failed", error)
        version = link.status.esphome_version or "unknown"
        sink.output(
            job,
            f"Building on peer {link.label} ({link.host}:{link.port}), ESPHome {version}",
            False,
        )
        best = [-1]

        def on_progress(value: int) -> None:
            if value > best[0]:
                best[0] = value
                sink.progress(job, value)

        submit = asyncio.ensure_future(
            link.submit_compile(
                job.configuration,
                bundle,
                on_output=lambda line, again: sink.output(job, line, again),
                on_progress=on_progress,
                job_id=job.job_id,
                esphome_version=self._esphome_version,
            )
        )
        watch = asyncio.ensure_future(self._wait_stop(running))
        await asyncio.wait({submit, watch}, return_when=asyncio.FIRST_COMPLETED)
        watch.cancel()
        if not submit.done():
            await link.cancel(job.job_id)
            try:
                async with asyncio.timeout(self._cancel_confirm_timeout):
                    await asyncio.shield(submit)
            except (TimeoutError, PeerError):
                submit.cancel()
            return self._stopped(running)
        try:
            result = submit.result()
        except RemoteJobRefusedError as err:
            return self._failed("refused", f"Peer {link.label}: {err}")
        except PeerProtocolError as err:
            return self._failed("protocol", f"Peer {link.label} broke the protocol: {err}")
        except PeerError as err:
            return self._failed("peer_lost", f"Lost peer {link.label} mid-build: {err}")
        if running.stop_requested():
            # A cancel beats a compile the peer finished meanwhile.
            return self._stopped(running)
        if result.state is RemoteJobState.FAILED:
            detail = result.error or "no reason given"
            return self._failed("failed", f"Compile on peer {link.label} failed: {detail}")
        if result.state is RemoteJobState.CANCELLED:
            return self._failed("failed", f"Peer {link.label} cancelled the compile")
        return await self._fetch(staging, running, sink)

    async def _fetch(self, staging: Path, running: RunningJob, sink: JobSink) -> RemoteRunResult:
        job = running.job
        link = self.link
        try:
            downloaded = await link.download_artifacts(job.job_id, staging / "artifacts.tar.gz")
            build = await async_materialise(
                downloaded.path,
                configuration=job.configuration,
                data_dir=self._data_dir,
                staging=staging / "unpack",
            )
        except ArtifactsUnavailableError as err:
            return self._failed("artifacts_unavailable", f"Peer {link.label}: {err}")
        except ArtifactError as err:
            return self._failed(
                "artifacts_invalid", f"Artifacts from peer {link.label} refused: {err}"
            )
        except PeerProtocolError as err:
            return self._failed("protocol", f"Peer {link.label} broke the protocol: {err}")
        except PeerError as err:
            return self._failed("peer_lost", f"Lost peer {link.label} during download: {err}")
        sink.output(
            job,
            f"Firmware from peer {link.label} in place: {build.firmware_path} "
            f"({build.files} files, {build.size} bytes)",
            False,
        )
        if running.stop_requested():
            return self._stopped(running)
        return RemoteRunResult(Outcome(status=JobStatus.COMPLETED, exit_code=0), "completed")

    async def _wait_stop(self, running: RunningJob) -> None:
        # RunningJob offers no awaitable stop signal (a stop terminates its process, and the
        # peer's build is no local process): a short poll until the engine grows one.
        while not running.stop_requested():  # noqa: ASYNC110
            await asyncio.sleep(self._stop_poll)
