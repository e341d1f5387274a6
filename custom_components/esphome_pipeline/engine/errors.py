"""Engine errors and the one rule for echoing input back.

Each error carries a translation key and placeholders so a UI can translate it. `shown` is how
any value a user (or a stored file) supplied appears in a message, a placeholder or a log line:
control and format characters escaped, at most `SHOWN_LIMIT` characters.
"""

from __future__ import annotations

from typing import Final
import unicodedata

SHOWN_LIMIT: Final = 200
"""The most characters of an echoed value a message, placeholder or log line shows."""
_ESCAPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Control, format (bidi overrides, zero-width), lone surrogate and line/paragraph separators:
characters that could forge a log line, reorder text on screen, or break an encoder."""
_SHORT_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(value: object, limit: int = SHOWN_LIMIT) -> str:
    """Return `value` as text safe to echo: escaped, and shortened to at most `limit` characters.

    Escapes look like Python's (`\\n`, `\\x1b`, `\\u202e`); a shortened value ends with
    `… (N characters)` giving the original length. Applying it twice changes nothing.
    """
    text = value if isinstance(value, str) else str(value)
    pieces = [_escaped(char) for char in text[: limit + 1]]
    if len(text) <= limit and sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    suffix = f"… ({len(text)} characters)"
    budget = max(limit - len(suffix), 0)
    # `pieces` holds more than `limit` characters, so the budget runs out before they do.
    end = 0
    while len(pieces[end]) <= budget:
        budget -= len(pieces[end])
        end += 1
    return "".join(pieces[:end]) + suffix


def is_plain_text(text: str) -> bool:
    """Return True when `text` has no character `shown` escapes (it is echoed as it is)."""
    return not any(unicodedata.category(char) in _ESCAPED_CATEGORIES for char in text)


def _escaped(char: str) -> str:
    if unicodedata.category(char) not in _ESCAPED_CATEGORIES:
        return char
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


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

    def __init__(self, message: str, **placeholders: str) -> None:
        """Echo every placeholder through `shown`: they are the caller's input."""
        super().__init__(message, **{key: shown(value) for key, value in placeholders.items()})


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
