"""Network uploads, proven: the device must answer first, a network failure gets one retry, and
the job ends only once the device runs the new build.

Owns `ProvenUpload`, the executor of the upload slots, wrapped around the executor that runs
the ESPHome CLI (`LocalExecutor`). Uploads to a serial target go straight to that executor.
For an upload over the network (`OTA`, a host or an IP), in this order:

1. Presence. The device's native API port must accept a TCP connection
   (`device/presence.py`). When it does not, no process starts: the upload goes back to the
   queue held "device offline" (`Outcome.device_offline`, `state.hold_reason`), and
   `offline_watch.py` lets it run when the device answers again.
2. The ESPHome upload. When it fails with a network failure (ESPHome gave up connecting, or
   the connection was refused, reset or timed out) it runs once more after `RETRY_DELAY`
   seconds, and the job's log says so. A failure the device reported (authentication, MD5
   mismatch, ...) or one after the device committed the image is never retried.
3. Proof. The job stays running until the device answers on its native API with the new
   build (name, ESPHome version and compilation time equal the build's `build_info.json`),
   at most `proof_timeout` seconds (0: no proof). Otherwise it fails with "the device did not
   come back with the new firmware" and what the device reported. The upload's exit record is
   removed before the proof waits: if Home Assistant dies meanwhile, the restart finds an
   upload of unknown outcome, asks the device before anything else (`recovery.py`) and so
   never records an unproven flash as done.

A configuration whose device cannot be asked (no native API in its configuration, no build
record) uploads as before, unproven, and its log says why. Every wait honours stop requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from .device.build_records import (
    ApiEndpoint,
    BuildIdentity,
    read_api_endpoint,
    read_build_identity,
)
from .device.native_api import (
    PROOF_INTERVAL,
    QUERY_TIMEOUT,
    DeviceTruth,
    device_truth,
)
from .device.presence import device_answers
from .executors import Executor, JobSink
from .exit_record import exit_record_path
from .fingerprint_inputs import ESPHOME_DATA_DIR
from .input_rules import OTA_PORT
from .lanes import Outcome, RunningJob
from .models import Job, JobStatus, JobType
from .skip_checks import is_serial_port

RETRY_DELAY: Final = 5.0
"""Seconds between a network failure of an OTA upload and its one retry."""
DEFAULT_PROOF_TIMEOUT: Final = 60.0
"""Seconds a device gets to come back with the new build (the `proof_timeout` option)."""
OFFLINE_POLL_INTERVAL: Final = 10.0
"""Seconds between two presence probes of a device an upload waits for."""

_NETWORK_FAILURES: Final = (
    "upload failed after",  # ESPHome's own connection retries ran out
    "connection refused",
    "connection reset",
    "timed out",
    "timeout",
    "broken pipe",
    "no route to host",
    "network is unreachable",
)
_FINAL_FAILURES: Final = (
    "authentication",
    "password",
    "md5",
    "committed the update",  # the device may run the new image already: never send it twice
)


def retry_worthy(lines: Iterable[str]) -> bool:
    """True when a failed upload's output shows a network failure and no final one.

    Rule: a network failure (refused, reset, timeout, ESPHome giving up connecting) is worth
    one more try; an authentication or MD5 failure, or a failure after the device committed
    the image, is not, even when the output also shows a network failure.
    """
    text = "\n".join(lines).lower()
    if any(marker in text for marker in _FINAL_FAILURES):
        return False
    return any(marker in text for marker in _NETWORK_FAILURES)


def is_network_upload(job: Job) -> bool:
    """True for an upload over the network (`OTA`, a host or an IP), not over a serial line."""
    return job.job_type is JobType.UPLOAD and not is_serial_port(job.port)


@dataclass(frozen=True, kw_only=True, slots=True)
class UploadTarget:
    """The device an upload writes to (its native API) and the build it should then run."""

    endpoint: ApiEndpoint
    build: BuildIdentity


def locate(data_dir: Path, job: Job) -> UploadTarget | str:
    """Blocking: the upload's target, or why the device cannot be asked."""
    build = read_build_identity(data_dir, job.configuration)
    if build is None:
        return "ESPHome recorded no build of this configuration"
    address = None if job.port in (None, OTA_PORT) else job.port
    endpoint = read_api_endpoint(data_dir, job.configuration, build.name, address=address)
    if endpoint is None:
        return "the configuration has no native API"
    return UploadTarget(endpoint=endpoint, build=build)


async def locate_in_executor(data_dir: Path, job: Job) -> UploadTarget | str:
    """`locate` in an executor (it reads files)."""
    return await asyncio.get_running_loop().run_in_executor(None, locate, data_dir, job)


Presence = Callable[[ApiEndpoint], Awaitable[bool]]
DeviceAsker = Callable[[ApiEndpoint, BuildIdentity, float], Awaitable[DeviceTruth]]
"""Asks the device (within the given seconds) whether it runs the build."""


async def _ask(endpoint: ApiEndpoint, build: BuildIdentity, within: float) -> DeviceTruth:
    return await device_truth(endpoint, build, wait_seconds=within)


@dataclass(frozen=True, kw_only=True, slots=True)
class NetworkUploads:
    """The engine's settings of network uploads (its `network_uploads` argument)."""

    proof_timeout: float = DEFAULT_PROOF_TIMEOUT
    """Seconds the device gets to come back with the new build; 0 turns the proof off."""
    retry_delay: float = RETRY_DELAY
    poll_interval: float = OFFLINE_POLL_INTERVAL
    """Seconds between two presence probes of the devices uploads wait for."""
    data_dir: Path | None = None
    """ESPHome's data folder (build records); None: `<config_dir>/.esphome`."""
    presence: Presence = device_answers
    ask: DeviceAsker = _ask

    def data_folder(self, config_dir: Path) -> Path:
        """ESPHome's data folder for the configurations in `config_dir`."""
        return self.data_dir or config_dir / ESPHOME_DATA_DIR


class ProvenUpload:
    """The upload slots' executor: presence, one retry on a network failure, proof."""

    def __init__(
        self,
        inner: Executor,
        config_dir: Path,
        settings: NetworkUploads,
        *,
        exit_dir: Path | None = None,
    ) -> None:
        """Wrap `inner` (the ESPHome CLI) for the configurations in `config_dir`; `inner`
        writes its exit records to `exit_dir` (None: none to remove before a proof)."""
        self._inner = inner
        self._exit_dir = exit_dir
        self._data_dir = settings.data_folder(config_dir)
        self._proof_timeout = settings.proof_timeout
        self._retry_delay = settings.retry_delay
        self._presence = settings.presence
        self._ask = settings.ask

    async def run(self, running: RunningJob, sink: JobSink) -> Outcome:
        """Run an upload as the module docstring says; anything else as `inner` does."""
        job = running.job
        if not is_network_upload(job):
            return await self._inner.run(running, sink)
        target = await locate_in_executor(self._data_dir, job)
        if isinstance(target, UploadTarget):
            answers = await _unless_stopped(running, self._presence(target.endpoint))
            if running.stop_requested():
                running.spawned(None)
                return running.stopped_outcome()
            if not answers:
                running.spawned(None)
                endpoint = target.endpoint
                _say(sink, job, f"— {endpoint.host}:{endpoint.port} does not answer —")
                return Outcome(status=JobStatus.QUEUED, device_offline=True)
        outcome = await self._upload(running, sink)
        if outcome.status is not JobStatus.COMPLETED or running.stop_requested():
            return outcome
        if not isinstance(target, UploadTarget):
            _say(sink, job, f"— not proven: the device cannot be asked ({target}) —")
            return outcome
        return await self._proof(running, sink, target, outcome)

    async def _upload(self, running: RunningJob, sink: JobSink) -> Outcome:
        """The ESPHome upload, run once more after a network failure."""
        job = running.job
        first_line = _lines_so_far(job)
        outcome = await self._inner.run(running, sink)
        if (
            outcome.status is not JobStatus.FAILED
            or running.stop_requested()
            or not retry_worthy(_lines_since(job, first_line))
        ):
            return outcome
        _say(
            sink,
            job,
            f"— network failure during the upload: retrying once in {self._retry_delay:g} s —",
        )
        await _unless_stopped(running, asyncio.sleep(self._retry_delay))
        if running.stop_requested():
            return running.stopped_outcome()
        running.prepare_retry()
        retried = await self._inner.run(running, sink)
        if retried.status is JobStatus.FAILED and retried.error is not None:
            return replace(retried, error=f"{retried.error} (retried once)")
        return retried

    async def _proof(
        self, running: RunningJob, sink: JobSink, target: UploadTarget, uploaded: Outcome
    ) -> Outcome:
        """Wait until the device runs the new build (bounded), else fail clearly."""
        job = running.job
        if self._proof_timeout <= 0:
            return uploaded
        if target.build.build_time_str is None:
            _say(sink, job, "— not proven: the build records no build time to compare —")
            return uploaded
        if self._exit_dir is not None:
            # "Exited 0" alone would let a restart record this flash as done, proven or not.
            record = exit_record_path(self._exit_dir, job.job_id)
            await asyncio.get_running_loop().run_in_executor(None, _forget_record, record)
        _say(
            sink,
            job,
            f"— waiting for the device to come back with {target.build.describe()} "
            f"(at most {self._proof_timeout:g} s) —",
        )
        # The proof loop of `native_api.wait_for_build`, asking whether to stop between tries:
        # the native API client turns a cancellation into its own error, so cancelling a
        # question does not stop a loop around it.
        loop = asyncio.get_running_loop()
        end = loop.time() + self._proof_timeout
        while True:
            within = min(QUERY_TIMEOUT, max(end - loop.time(), 0.1))
            truth = await _unless_stopped(running, self._ask(target.endpoint, target.build, within))
            if truth is None or running.stop_requested():
                return running.stopped_outcome(exit_code=uploaded.exit_code)
            if truth.runs_build:
                _say(sink, job, f"— proven: the device runs {target.build.describe()} —")
                return uploaded
            if loop.time() + PROOF_INTERVAL >= end:
                error = (
                    "the device did not come back with the new firmware within "
                    f"{self._proof_timeout:g} s ({truth.summary})"
                )
                _say(sink, job, f"— {error} —")
                return Outcome(status=JobStatus.FAILED, exit_code=uploaded.exit_code, error=error)
            await _unless_stopped(running, asyncio.sleep(PROOF_INTERVAL))


async def _unless_stopped[T](running: RunningJob, work: Awaitable[T]) -> T | None:
    """Await `work` unless the job is asked to stop first (then None, `work` cancelled)."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(running.stop_request())
    try:
        await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()  # the worker itself is cancelled: leave nothing behind
        raise
    finally:
        stop.cancel()
    if task.done():
        return task.result()
    # Not awaited: a library that swallows the cancellation must not keep the job running.
    task.cancel()
    task.add_done_callback(_forget)
    return None


def _forget_record(record: Path) -> None:
    record.unlink(missing_ok=True)


def _forget(task: asyncio.Future[Any]) -> None:
    """Retrieve a cancelled helper's end, so nothing is reported as never retrieved."""
    if not task.cancelled():
        task.exception()


def _say(sink: JobSink, job: Job, line: str) -> None:
    sink.output(job, line, False)


def _lines_so_far(job: Job) -> int:
    return job.output.elided + len(job.output.lines)


def _lines_since(job: Job, first: int) -> list[str]:
    """The job's output lines written since line number `first` (those still kept)."""
    new = _lines_so_far(job) - first
    return list(job.output.lines)[-new:] if new > 0 else []
