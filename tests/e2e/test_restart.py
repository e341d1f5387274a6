"""Home Assistant stops in the middle of a bulk install (SIGTERM, or SIGKILL as in a crash).

After the next start every job is still there under its id, a completed job stays completed,
the rest run (again) and finish; each device is flashed exactly once, with the build of its
own completed compile, and no ESPHome process of the old run is left behind.

And the worst moment: Home Assistant is SIGKILLed after the device took the image but before
the ESPHome CLI heard so (and could print "OTA successful"): the upload still completes, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import signal

import pytest

from custom_components.esphome_pipeline.engine.exit_record import (
    exit_record_path,
    read_exit_record,
    read_job_log,
)
from custom_components.esphome_pipeline.engine.firmware import EXIT_RECORD_DIR
from script.devkit.api import DOMAIN, connect
from script.devkit.demo import read_compilation_time
from script.devkit.site import Site

from .harness import (
    E2E_TIMEOUT,
    EVENT_TIMEOUT,
    TERMINAL,
    JobTracker,
    chain_ids,
    install,
    wait_jobs_finished,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(E2E_TIMEOUT)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_restart_mid_bulk_install(
    e2e_site: Site, socket_enabled: None, sig: signal.Signals
) -> None:
    """Every job is restored and the queue finishes; nothing is flashed twice."""
    site = e2e_site
    configurations = site.configurations()[:3]
    receptions_before = {c: site.devices[c].ota_receptions() for c in configurations}
    for configuration in configurations:
        site.bump(configuration)

    async with connect(site.base_url, site.token) as ws:
        jobs = await JobTracker.subscribe(ws)
        chains = await install(ws, configurations)
        ids = chain_ids(chains)
        compile_ids = [chain["compile_job_id"] for chain in chains.values()]
        # Mid-way: one compile is done and the next one is running.
        await jobs.wait_for(
            lambda: any(jobs.status(i) == "completed" for i in compile_ids)
            and any(jobs.status(i) == "running" for i in compile_ids)
        )
        before = {job_id: jobs.status(job_id) for job_id in ids}

    await site.restart(sig)

    async with connect(site.base_url, site.token) as ws:
        tracker = await JobTracker.subscribe(ws)
        restored = {job["job_id"]: job for job in await ws.get_jobs()}
        assert set(ids) <= restored.keys(), "every job keeps its id across the restart"
        for job_id, status in before.items():
            if status in TERMINAL:
                assert restored[job_id]["status"] == status, "a finished job stays finished"
        final = await wait_jobs_finished(ws, tracker, ids)

    assert {final[job_id]["status"] for job_id in ids} == {"completed"}
    for chain in chains.values():
        compiled = final[chain["compile_job_id"]]
        uploaded = final[chain["upload_job_id"]]
        assert uploaded["depends_on"] == compiled["job_id"]
        assert uploaded["started_at"] >= compiled["finished_at"], "no upload before its compile"
    for configuration in configurations:
        device = site.devices[configuration]
        flashed = device.ota_receptions() - receptions_before[configuration]
        assert flashed == 1, (
            f"{configuration} flashed {flashed} times; statuses at {sig.name}: {before}"
        )
        assert await read_compilation_time(device.device.api_port) == site.build_time(configuration)
    assert site.esphome_processes() == [], "no ESPHome process outlives the queue"


RESPONSE_FEATURE_FLAGS = 0x48
RESPONSE_UPDATE_END_OK = 0x45
"""ESPHome OTA: the device's last answer, sent once it has committed the new image."""


class OtaHold:
    """A relay in front of a host device's OTA port that holds the device's last answer.

    It listens on [::1] at the device's OTA port (a demo device listens on IPv4 only, so the
    port is free there) and relays the ESPHome OTA protocol to 127.0.0.1 in both directions,
    except that the device's "update end OK" is held until `release()`. While it is held, the
    device has committed the image (`OTA staged`) and the CLI does not know yet: the moment
    to kill Home Assistant. The device's answers are single bytes after a 3-4 byte preamble
    (OK, version, features [, feature flags]); with no OTA password none can be mistaken.
    """

    def __init__(self, port: int, api_port: int) -> None:
        """Relay to 127.0.0.1:`port` (and the native API at `api_port`, which the upload asks
        whether the device is there); call `start()`."""
        self.port = port
        self.api_port = api_port
        self.held: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._released = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._api_server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on [::1]."""
        self._server = await asyncio.start_server(self._accept, "::1", self.port)
        self._api_server = await asyncio.start_server(self._accept_api, "::1", self.api_port)

    async def _accept_api(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        device_reader, device = await asyncio.open_connection("127.0.0.1", self.api_port)
        try:
            await asyncio.gather(
                self._pipe(client_reader, device), self._pipe(device_reader, client)
            )
        finally:
            for writer in (client, device):
                writer.close()

    def release(self) -> None:
        """Let the held answer (and everything after it) through."""
        self._released.set()

    async def close(self) -> None:
        """Stop listening and drop open relays."""
        for server in (self._server, self._api_server):
            if server is not None:
                server.close()
        for relay in self._relays:
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    async def _accept(self, cli_reader: asyncio.StreamReader, cli: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        device_reader, device = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            await asyncio.gather(self._pipe(cli_reader, device), self._answers(device_reader, cli))
        finally:
            for writer in (cli, device):
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65_536):
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    async def _answers(self, device: asyncio.StreamReader, cli: asyncio.StreamWriter) -> None:
        position = 0
        flags_follow = False
        while answer := await device.read(1):
            # 0: OK, 1: the version, 2: the features (0x48: a byte of flags follows).
            flags_follow = flags_follow or (position == 2 and answer[0] == RESPONSE_FEATURE_FLAGS)
            preamble = position <= 2 or (position == 3 and flags_follow)
            if not preamble and answer[0] == RESPONSE_UPDATE_END_OK and not self.held.done():
                self.held.set_result(None)
                await self._released.wait()
            cli.write(answer)
            await cli.drain()
            position += 1


async def until[T](probe: Callable[[], T | None], *, timeout: float = EVENT_TIMEOUT) -> T:
    """Poll what another process leaves (a log line, a file, its end), bounded."""
    async with asyncio.timeout(timeout):
        while (value := await asyncio.to_thread(probe)) is None:
            await asyncio.sleep(0.05)
    return value


async def test_sigkill_when_the_ota_completes_flashes_once(
    e2e_site: Site, socket_enabled: None
) -> None:
    """Home Assistant dies between the device's "update end OK" and the CLI hearing it: the
    CLI prints its success to a pipe nobody reads. After the restart the upload is completed
    from its exit record, and the device was flashed exactly once, with this build."""
    site = e2e_site
    configuration = site.configurations()[0]
    device = site.devices[configuration]
    receptions_before = device.ota_receptions()
    site.bump(configuration)
    hold = OtaHold(device.device.ota_port, device.device.api_port)
    await hold.start()
    try:
        async with connect(site.base_url, site.token) as ws:
            jobs = await JobTracker.subscribe(ws)
            response = await ws.call_service(
                DOMAIN,
                "install",
                {"configuration": [configuration], "port": "::1"},
                return_response=True,
            )
            [chain] = response["jobs"]
            upload_id = chain["upload_job_id"]
            # Either the device's last answer is held, or the upload ended without it (a bug).
            ended = asyncio.create_task(jobs.wait_for(lambda: jobs.status(upload_id) in TERMINAL))
            await asyncio.wait(
                {hold.held, ended}, timeout=EVENT_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            ended.cancel()
            assert hold.held.done(), f"no OTA reached its end: {jobs.latest.get(upload_id)}"
        # The device committed the image; the CLI waits for the answer that says so.
        await until(lambda: device.ota_receptions() > receptions_before or None)
        await asyncio.to_thread(site.hass.stop, signal.SIGKILL)
        hold.release()

        exit_dir = site.folder / EXIT_RECORD_DIR
        record = exit_record_path(exit_dir, upload_id)
        assert await until(lambda: read_exit_record(record)) == 0
        await until(lambda: site.esphome_processes() == [] or None)
        log = await asyncio.to_thread(read_job_log, exit_dir, upload_id, 50)
        assert any("OTA successful" in line for line in log), log
    finally:
        await hold.close()

    await asyncio.to_thread(site.start_hass)
    await site.login()
    async with connect(site.base_url, site.token) as ws:
        await ws.wait_entry_loaded(site.entry_id)
        tracker = await JobTracker.subscribe(ws)
        ids = [chain["compile_job_id"], upload_id]
        final = await wait_jobs_finished(ws, tracker, ids)
    assert {final[job_id]["status"] for job_id in ids} == {"completed"}
    assert device.ota_receptions() - receptions_before == 1, "flashed once, not again"
    assert await read_compilation_time(device.device.api_port) == site.build_time(configuration)
    assert site.esphome_processes() == []
