"""Executors: how a claimed job's work is done, behind one interface.

Owns: `JobSink` (where a running job reports output, progress and its process), the
`Executor` protocol (`run(running, sink) -> Outcome`), and `LocalExecutor`, which runs the
ESPHome CLI on this machine under the exit-record wrapper and turns its exit into an outcome.
A build peer's executor (remote compile) plugs in as another `Executor`; the lane workers and
the dispatcher do not change for it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from .esphome_cli import EsphomeCli
from .exit_record import COMMAND_NOT_STARTED, exit_record_path, with_exit_record
from .lanes import Outcome, RunningJob
from .models import Job, JobStatus, ProcessRecord
from .output import ProgressTracker, failure_summary, indicates_failure
from .runner import JobProcess


class JobSink(Protocol):
    """Where a running job reports; the engine records and announces what it is told."""

    def output(self, job: Job, line: str, replaces_previous: bool) -> None:
        """Add a line to the job's log (`replaces_previous`: a `\\r` redraw)."""

    def progress(self, job: Job, value: int) -> None:
        """Record the job's new, higher progress (0-100)."""

    def process_started(self, job: Job, record: ProcessRecord) -> None:
        """Record the process session of a running job (for crash safety)."""


class Executor(Protocol):
    """Does a claimed job's work and says how it ended."""

    async def run(self, running: RunningJob, sink: JobSink) -> Outcome:
        """Run `running.job` to its end, honouring stop requests; return the outcome."""


class LocalExecutor:
    """Runs the ESPHome CLI on this machine, one process session per job."""

    def __init__(self, *, cli: EsphomeCli, config_dir: Path, exit_dir: Path) -> None:
        """Run `cli` in `config_dir`; jobs leave their exit records in `exit_dir`."""
        self._cli = cli
        self._config_dir = config_dir
        self._exit_dir = exit_dir
        self._environment: dict[str, str] | None = None

    def argv(self, job: Job) -> list[str]:
        """Return the command line of `job`, wrapped to leave an exit record."""
        return with_exit_record(
            self._cli.argv(job, self._config_dir), exit_record_path(self._exit_dir, job.job_id)
        )

    def environment(self) -> dict[str, str]:
        """Return the child environment (computed once)."""
        if self._environment is None:
            self._environment = self._cli.environment()
        return self._environment

    async def run(self, running: RunningJob, sink: JobSink) -> Outcome:
        """Spawn the job's process, stream its output and progress, decide the outcome."""
        job = running.job
        if running.stop_requested():
            running.spawned(None)
            return running.stopped_outcome()
        try:
            process = await JobProcess.start(
                self.argv(job), cwd=self._config_dir, env=self.environment()
            )
        except OSError as err:
            running.spawned(None)
            if running.stop_requested():
                return running.stopped_outcome()
            return Outcome(
                status=JobStatus.FAILED, error=f"Could not start the ESPHome command: {err}"
            )
        running.spawned(process)
        sink.process_started(job, process.record)
        tracker = ProgressTracker()

        def on_line(line: str, replaces_previous: bool) -> None:
            sink.output(job, line, replaces_previous)
            value = tracker.feed(line)
            if value is not None:
                sink.progress(job, value)

        try:
            exit_code = await process.stream(on_line)
        except BaseException:
            # The worker itself is being cancelled: never leave the tree running behind it.
            await asyncio.shield(process.terminate())
            raise
        tree_dead = await running.tree_dead()
        if not tree_dead:
            # The process ended after all: check again whether anything of its session is left.
            tree_dead = await process.terminate()
        if running.stop_requested():
            # A stop request wins over whatever the process reported while dying.
            return running.stopped_outcome(tree_dead=tree_dead, exit_code=exit_code)
        return process_outcome(job, exit_code)


def process_outcome(job: Job, exit_code: int) -> Outcome:
    """Return the outcome of a CLI process that ended by itself with `exit_code`."""
    if exit_code in COMMAND_NOT_STARTED:
        reason = job.output.lines[-1] if job.output.lines else f"exit code {exit_code}"
        return Outcome(
            status=JobStatus.FAILED,
            exit_code=exit_code,
            error=f"Could not start the ESPHome command: {reason}",
        )
    if exit_code != 0:
        error = f"ESPHome {job.job_type} failed with exit code {exit_code}"
        summary = failure_summary(job.output.lines)
        return Outcome(
            status=JobStatus.FAILED,
            exit_code=exit_code,
            error=error if summary is None else f"{error}: {summary}",
        )
    if indicates_failure(job.output.lines):
        return Outcome(
            status=JobStatus.FAILED,
            exit_code=exit_code,
            error=f"ESPHome {job.job_type} exited with 0 but its output shows an error",
        )
    return Outcome(status=JobStatus.COMPLETED, exit_code=exit_code)
