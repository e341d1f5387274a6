"""Engine errors. Each carries a translation key and placeholders so a UI can translate it."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: `translation_key` names the message, `placeholders` fill it in."""

    translation_key = "engine_error"

    def __init__(self, message: str, **placeholders: str) -> None:
        """Keep the English message for logs and the placeholders for translation."""
        super().__init__(message)
        self.placeholders = placeholders


class InvalidRequestError(EngineError):
    """The caller asked for something that cannot be queued (bad name, bad port, ...).

    Nothing was queued. Subclasses narrow the translation key.
    """

    translation_key = "invalid_request"


class InvalidConfigurationError(InvalidRequestError):
    """A configuration name is not a YAML file name inside the config folder."""

    translation_key = "invalid_configuration"


class InvalidPortError(InvalidRequestError):
    """An upload port is neither OTA, a host name/IP, nor a serial device path."""

    translation_key = "invalid_port"


class UnknownJobError(InvalidRequestError):
    """No job has this id."""

    translation_key = "unknown_job"


class ResetFailedError(EngineError):
    """A running job could not be confirmed dead, so the reset was not queued."""

    translation_key = "reset_failed"


class EngineStoppedError(EngineError):
    """The engine is stopped and takes no work."""

    translation_key = "engine_stopped"
