"""What every configuration's device runs, asked at once (bounded): for start-up and reconnects.

Owns the fleet-wide question behind "know what each device runs": for each configuration with a
recorded build and a native API, ask its device (a few at a time) and compare the answer with
the build. A configuration without a build record or without `api:` gets no entry: there is
nothing to compare with or no way to ask. Serial devices are not asked (a serial connection
resets the chip).

Each answer is handed to `on_answer` as soon as it arrives (with the build it was compared
with), so one slow or offline device does not hold back what the others said.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .build_records import ApiEndpoint, BuildIdentity, read_api_endpoint, read_build_identity
from .native_api import DeviceTruth, device_truth

SURVEY_CONCURRENCY: Final = 8
"""Devices asked at the same time: enough for a fleet, gentle on a small host."""

DeviceAsker = Callable[[ApiEndpoint, BuildIdentity], Awaitable[DeviceTruth]]


@dataclass(frozen=True, kw_only=True, slots=True)
class SurveyAnswer:
    """One configuration's device asked: the build it was compared with and the verdict."""

    configuration: str
    build: BuildIdentity
    truth: DeviceTruth


async def survey(
    data_dir: Path,
    configurations: Iterable[str],
    *,
    ask_device: DeviceAsker = device_truth,
    addresses: Mapping[str, str] | None = None,
    concurrency: int = SURVEY_CONCURRENCY,
    on_answer: Callable[[SurveyAnswer], None] | None = None,
) -> dict[str, DeviceTruth]:
    """Ask each configuration's device what it runs; return the verdicts by configuration.

    `addresses` overrides a configuration's address (for example a host device on 127.0.0.1).
    `on_answer` hears each answer as it arrives.
    """
    limit = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    known = addresses or {}

    async def ask(configuration: str) -> tuple[str, DeviceTruth | None]:
        build = await loop.run_in_executor(None, read_build_identity, data_dir, configuration)
        if build is None:
            return configuration, None
        endpoint = await loop.run_in_executor(
            None, _endpoint, data_dir, configuration, build.name, known.get(configuration)
        )
        if endpoint is None:
            return configuration, None
        async with limit:
            truth = await ask_device(endpoint, build)
        if on_answer is not None:
            on_answer(SurveyAnswer(configuration=configuration, build=build, truth=truth))
        return configuration, truth

    answers = await asyncio.gather(*(ask(name) for name in dict.fromkeys(configurations)))
    return {name: truth for name, truth in answers if truth is not None}


def _endpoint(
    data_dir: Path, configuration: str, name: str, address: str | None
) -> ApiEndpoint | None:
    return read_api_endpoint(data_dir, configuration, name, address=address)
