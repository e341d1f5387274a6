"""A job's outcome in words (outcomes.py), from its public fields alone."""

from __future__ import annotations

import pytest

from custom_components.esphome_pipeline.outcomes import cancel_reason, describe, error_message


@pytest.mark.parametrize(
    ("job", "words"),
    [
        ({"job_type": "compile", "status": "queued"}, "compile queued"),
        (
            {"job_type": "upload", "status": "queued", "held": True},
            "upload waiting for its compile",
        ),
        ({"job_type": "clean", "status": "running"}, "clean started"),
        (
            {"job_type": "reset_build_env", "status": "completed"},
            "build environment reset completed",
        ),
        (
            {"job_type": "compile", "status": "completed", "skipped": "unchanged"},
            "compile skipped: the build is current",
        ),
        (
            {"job_type": "upload", "status": "completed", "skipped": "device_current"},
            "upload skipped: the device already runs this build",
        ),
        (
            {
                "job_type": "upload",
                "status": "failed",
                "error": "ESPHome upload failed with exit code 1: receiving auth result: "
                "Authentication invalid. Is the password correct?",
            },
            "upload failed: receiving auth result: Authentication invalid. "
            "Is the password correct?",
        ),
        ({"job_type": "compile", "status": "failed"}, "compile failed: failed without a message"),
        (
            {
                "job_type": "compile",
                "status": "cancelled",
                "error": "Cancelled by a reset of the build environment",
            },
            "compile cancelled: build environment reset",
        ),
        (
            {"job_type": "compile", "status": "cancelled", "error": "Reset withdrawn: x"},
            "compile cancelled: Reset withdrawn: x",
        ),
        ({"job_type": "flash", "status": "paused", "skipped": "later"}, "job paused"),
    ],
)
def test_describe(job: dict[str, object], words: str) -> None:
    """Every status and job type has its words; unknown values are shown as they are."""
    assert describe(job) == words


def test_reason_and_message_only_for_ended_jobs() -> None:
    """A running job has no cancel reason and no error."""
    assert cancel_reason("running", "Cancelled on request") is None
    assert cancel_reason("cancelled", None) == "cancelled on request"
    assert error_message("completed", "x") is None
    assert error_message("cancelled", None) == "Cancelled"
