"""What follows a remote compile that did not finish on its peer: again, local, or failed.

Owns `RemoteAttempts` (shared by every peer of an entry: how often each compile was sent
again, which compiles fell back to this machine, which peers lost a job since their last
session) and `RetryingRemoteExecutor`, the `Executor` a peer slot runs: it runs the compile
through `RemoteExecutor.run_remote` and turns the kind of end into the job's next step:

- the peer was lost mid-build: the compile goes back to the queue, for any qualifying peer,
  at most `MAX_REMOTE_ATTEMPTS` times; after that it falls back as below;
- the peer could not finish it in a way a local compile may fix (refused, protocol broken,
  artifacts missing or refused), or the retries are used up: under `build_on` "local and
  peers" it goes back to the queue marked for this machine; otherwise it fails with the
  peer's error;
- anything else (completed, cancelled, the compile itself failed, the bundle failed) is the
  job's outcome as it is.

Every decision is a line in the job's log.
"""

from __future__ import annotations

from collections.abc import Callable

from ..executors import JobSink
from ..lanes import Outcome, RunningJob
from ..models import Job, JobStatus
from ..routing import MAX_REMOTE_ATTEMPTS, BuildOn
from .executor import RemoteExecutor, RemoteRunResult


class RemoteAttempts:
    """The retry book of one entry's peers; `on_change` runs when routing must be recomputed."""

    def __init__(
        self, *, build_on: BuildOn = BuildOn.LOCAL_AND_PEERS, on_change: Callable[[], None]
    ) -> None:
        """Start with nothing sent again."""
        self.build_on = build_on
        self._on_change = on_change
        self._resent: dict[str, int] = {}
        self.local_only: set[str] = set()
        """Job ids that fell back to a local compile."""
        self.lost_peers: set[str] = set()
        """Peers that lost a job; they qualify again once a new session is open."""

    def forget(self, keep: set[str]) -> None:
        """Drop what is kept about jobs whose ids are not in `keep` (they ended)."""
        self._resent = {job_id: n for job_id, n in self._resent.items() if job_id in keep}
        self.local_only &= keep

    def after(self, peer: str, job: Job, result: RemoteRunResult, sink: JobSink) -> Outcome:
        """Return the job's outcome after `result` on `peer`, and log the decision."""
        outcome = result.outcome
        if outcome.status is not JobStatus.FAILED or not result.local_fallback:
            return outcome
        error = outcome.error or f"The compile on peer {peer} did not finish"
        if result.retryable:
            self.lost_peers.add(peer)
            sent_again = self._resent.get(job.job_id, 0) + 1
            if sent_again <= MAX_REMOTE_ATTEMPTS:
                self._resent[job.job_id] = sent_again
                sink.output(
                    job,
                    f"{error}; sending the compile again ({sent_again} of {MAX_REMOTE_ATTEMPTS})",
                    False,
                )
                self._on_change()
                return Outcome(status=JobStatus.QUEUED)
            error = f"{error} (sent again {MAX_REMOTE_ATTEMPTS} times)"
        if self.build_on is BuildOn.LOCAL_AND_PEERS:
            self.local_only.add(job.job_id)
            sink.output(job, f"{error}; compiling on this machine instead", False)
            self._on_change()
            return Outcome(status=JobStatus.QUEUED)
        return Outcome(status=JobStatus.FAILED, exit_code=outcome.exit_code, error=error)


class RetryingRemoteExecutor:
    """A peer slot's executor: the remote compile, then the book's decision."""

    def __init__(self, remote: RemoteExecutor, attempts: RemoteAttempts) -> None:
        """Run compiles with `remote`; `attempts` decides what follows an unfinished one."""
        self.remote = remote
        self._attempts = attempts

    async def run(self, running: RunningJob, sink: JobSink) -> Outcome:
        """Run the compile on the peer and return the job's next step."""
        result = await self.remote.run_remote(running, sink)
        return self._attempts.after(self.remote.link.label, running.job, result, sink)
