"""Uploads held "device offline": noticing that their device answers again.

Owns `OfflineWatch`: while at least one upload waits for its device (`Job.waiting_for_device`,
set when `upload_proof.ProvenUpload` found the device silent), a task probes each such
device every `poll_interval` seconds (a TCP connect to its native API port, a few at a time,
each bounded) and releases the uploads whose device answered; the task ends when none waits
any more. `device_seen(configuration)` releases a configuration's uploads at once, for a
caller that learns it sooner (Home Assistant's zeroconf seeing the device announce itself).

The watch never writes the job table: it reads the waiting uploads and asks the engine to
release them through two hooks; the engine settles the table (`held` drops, a worker claims
the upload, which checks presence again before the ESPHome upload starts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
import contextlib
import logging
from pathlib import Path
from typing import Final

from .models import Job
from .upload_proof import NetworkUploads, UploadTarget, locate_in_executor

_LOGGER = logging.getLogger(__name__)

PROBES_AT_ONCE: Final = 8
"""How many devices one round probes at the same time."""


class OfflineWatch:
    """Probes the devices that held uploads wait for, and releases those that answer."""

    def __init__(
        self,
        config_dir: Path,
        settings: NetworkUploads,
        waiting: Callable[[], list[Job]],
        release: Callable[[Collection[str]], list[str]],
    ) -> None:
        """`waiting` lists the uploads held offline; `release(job_ids)` lets them run."""
        self._data_dir = settings.data_folder(config_dir)
        self._waiting = waiting
        self._release = release
        self._presence = settings.presence
        self._interval = settings.poll_interval
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def watch(self) -> None:
        """Make sure the devices of the waiting uploads are being probed."""
        if self._stopped or (self._task is not None and not self._task.done()):
            return
        self._task = asyncio.get_running_loop().create_task(
            self._poll(), name="esphome_pipeline offline devices"
        )

    def device_seen(self, configuration: str) -> list[str]:
        """The configuration's device announced itself: release its waiting uploads now."""
        return self._release(
            [job.job_id for job in self._waiting() if job.configuration == configuration]
        )

    async def stop(self) -> None:
        """Stop probing (the engine stops); the uploads stay queued and held."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll(self) -> None:
        # Bounded polling: one round per interval, a few probes at a time, each bounded.
        limit = asyncio.Semaphore(PROBES_AT_ONCE)
        while self._waiting():
            await asyncio.sleep(self._interval)
            jobs = self._waiting()
            answers = await asyncio.gather(*(self._answers(job, limit) for job in jobs))
            back = [job.job_id for job, answered in zip(jobs, answers, strict=True) if answered]
            if back:
                _LOGGER.debug("Devices answer again; released uploads %s", back)
                self._release(back)

    async def _answers(self, job: Job, limit: asyncio.Semaphore) -> bool:
        async with limit:
            target = await locate_in_executor(self._data_dir, job)
            if not isinstance(target, UploadTarget):
                # Nothing to ask any more (its build is gone): let the upload run and say why.
                return True
            return await self._presence(target.endpoint)
