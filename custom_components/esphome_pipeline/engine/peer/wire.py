"""The peer-link wire vocabulary: message types, limits, errors, and field checks.

Owns the facts both ends of the link agree on (learnt from Device Builder 1.26.0's receiver):
the WebSocket path, the Noise pattern, the intents of the handshake and the answers to them,
the application message types, the frame and chunk sizes, and the error classes every other
module of the package raises. Every frame from a peer is hostile until checked: the `field_*`
helpers read one typed field or raise `PeerProtocolError`, so a missing or mistyped field never
turns into a KeyError deep in a handler.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

PEER_LINK_PATH: Final = "/remote-build/peer-link"
DEFAULT_PORT: Final = 6055
NOISE_PATTERN: Final = b"Noise_XX_25519_ChaChaPoly_SHA256"

MAX_FRAME_BYTES: Final = 60 * 1024
"""Largest encrypted frame accepted (the receiver's own cap; its chunks are ~44 KiB)."""
CHUNK_BYTES: Final = 32 * 1024
"""Raw bytes per bundle chunk before base64 (what the receiver itself uses)."""
MAX_ARTIFACT_BYTES: Final = 64 * 1024 * 1024
"""Cap on an artifact tarball, on the wire and unpacked."""
MAX_BUNDLE_BYTES: Final = 128 * 1024 * 1024
"""The receiver refuses bundles above this; we do not send them."""
MAX_TEXT_FIELD: Final = 16_384
"""Longest output line or message accepted from a peer (longer ones are cut)."""
HANDSHAKE_TIMEOUT: Final = 10.0
ACK_TIMEOUT_BASE: Final = 60.0
ACK_BYTES_PER_SECOND: Final = 2 * 1024 * 1024
HEARTBEAT_INTERVAL: Final = 30.0
HEARTBEAT_MISSES: Final = 3
RECONNECT_INITIAL: Final = 1.0
RECONNECT_MAX: Final = 30.0
DASHBOARD_ID_MAX: Final = 64


class Intent(StrEnum):
    """What a handshake is for (plaintext in the first message)."""

    PREVIEW = "preview"
    PAIR_REQUEST = "pair_request"
    PAIR_STATUS = "pair_status"
    PEER_LINK = "peer_link"


class IntentResponse(StrEnum):
    """The receiver's answer after the handshake."""

    OK = "ok"
    APPROVED = "approved"
    PENDING = "pending"
    REJECTED = "rejected"
    NO_PAIRING_WINDOW = "no_pairing_window"


class MessageType(StrEnum):
    """The `type` of an application frame on an open link."""

    PING = "ping"
    PONG = "pong"
    TERMINATE = "terminate"
    QUEUE_STATUS = "queue_status"
    SUBMIT_JOB = "submit_job"
    SUBMIT_JOB_CHUNK = "submit_job_chunk"
    SUBMIT_JOB_ACK = "submit_job_ack"
    JOB_STATE_CHANGED = "job_state_changed"
    JOB_OUTPUT = "job_output"
    CANCEL_JOB = "cancel_job"
    DOWNLOAD_ARTIFACTS = "download_artifacts"
    ARTIFACTS_START = "artifacts_start"
    ARTIFACTS_CHUNK = "artifacts_chunk"
    ARTIFACTS_END = "artifacts_end"


class RemoteJobState(StrEnum):
    """A remote job's state as the receiver reports it."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for completed, failed and cancelled."""
        return self in {RemoteJobState.COMPLETED, RemoteJobState.FAILED, RemoteJobState.CANCELLED}


class PeerError(Exception):
    """Base of every peer-link error. `kind` is a stable machine-readable name."""

    kind = "peer_error"


class PeerUnreachableError(PeerError):
    """No WebSocket could be opened, or the connection dropped during the handshake."""

    kind = "unreachable"


class PeerPinMismatchError(PeerError):
    """The receiver's static key is not the one pinned: nothing after its key was sent."""

    kind = "pin_changed"

    def __init__(self, expected: str, observed: str) -> None:
        """Keep both pins for the repair issue."""
        super().__init__(
            f"The build peer's identity changed: expected pin {expected}, it presented "
            f"{observed}. Nothing was sent; pair it again if the change is expected."
        )
        self.expected = expected
        self.observed = observed


class PeerProtocolError(PeerError):
    """The peer sent something the protocol does not allow; the session was closed."""

    kind = "protocol"


class PeerRejectedError(PeerError):
    """The receiver answered the handshake with a refusal."""

    kind = "rejected"

    def __init__(self, message: str, *, response: str, reason: str | None) -> None:
        """Keep the receiver's answer and reason."""
        super().__init__(message)
        self.response = response
        self.reason = reason


class PeerLostError(PeerError):
    """The link ended while a request was in flight (the peer went away or restarted)."""

    kind = "peer_lost"


def clip(text: str, limit: int = MAX_TEXT_FIELD) -> str:
    """Cut a peer-supplied text to `limit` characters."""
    return text if len(text) <= limit else text[:limit] + "…"


def field_str(frame: dict[str, Any], key: str, *, optional: bool = False) -> str:
    """Return `frame[key]` when it is a string; '' when optional and absent; else raise."""
    value = frame.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise PeerProtocolError(f"{_describe(frame)}: field {key!r} must be a string")
    return value


def field_int(frame: dict[str, Any], key: str, *, minimum: int = 0) -> int:
    """Return `frame[key]` when it is an int (not a bool) of at least `minimum`; else raise."""
    value = frame.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PeerProtocolError(
            f"{_describe(frame)}: field {key!r} must be a whole number >= {minimum}"
        )
    return value


def field_bool(frame: dict[str, Any], key: str) -> bool:
    """Return `frame[key]` when it is a bool; else raise."""
    value = frame.get(key)
    if not isinstance(value, bool):
        raise PeerProtocolError(f"{_describe(frame)}: field {key!r} must be true or false")
    return value


def _describe(frame: dict[str, Any]) -> str:
    kind = frame.get("type")
    return f"{kind!r} frame" if isinstance(kind, str) else "frame"
