"""New jobs: validated request names, fresh jobs on their lanes, and install chains.

Owns: turning a request's arguments into jobs that are ready to be placed. Validation happens
here, before anything is placed, so an invalid request queues nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import InvalidRequestError
from .esphome_cli import validate_configuration_name
from .models import Job, JobType
from .state import lane_for


@dataclass(frozen=True, slots=True)
class InstallChain:
    """The two jobs of one install: the compile and the upload that depends on it."""

    compile: Job
    upload: Job


def validated_names(configurations: Sequence[str]) -> list[str]:
    """Validate every name before anything is queued; drop repeats, keep the order."""
    if isinstance(configurations, str):
        raise InvalidRequestError("configurations must be a list of names, not one string")
    names = [validate_configuration_name(name) for name in configurations]
    if not names:
        raise InvalidRequestError("No configuration given")
    return list(dict.fromkeys(names))


def new_job(
    configuration: str,
    job_type: JobType,
    *,
    port: str | None = None,
    depends_on: str | None = None,
    held: bool = False,
    force: bool = False,
    fingerprint: str | None = None,
) -> Job:
    """Return a queued job on the lane its type routes to."""
    return Job(
        configuration=configuration,
        job_type=job_type,
        lane=lane_for(job_type),
        port=port,
        depends_on=depends_on,
        held=held,
        force=force,
        fingerprint=fingerprint,
    )


def install_chains(
    names: Sequence[str], *, port: str, force: bool, fingerprints: Mapping[str, str]
) -> list[InstallChain]:
    """Return a compile and a held upload that depends on it, per configuration."""
    chains: list[InstallChain] = []
    for name in names:
        label = fingerprints.get(name)
        compile_job = new_job(name, JobType.COMPILE, force=force, fingerprint=label)
        upload_job = new_job(
            name,
            JobType.UPLOAD,
            port=port,
            depends_on=compile_job.job_id,
            held=True,
            force=force,
            fingerprint=label,
        )
        chains.append(InstallChain(compile_job, upload_job))
    return chains
