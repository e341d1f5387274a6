"""Our peer-link identity: a static X25519 key, its pin, and the fingerprint people compare.

Owns: creating the key once (a 32-byte file, mode 0600, written atomically), loading it, the
pin (lowercase hex SHA-256 of the public key, the form Device Builder stores and advertises)
and the seven-emoji fingerprint Device Builder prints next to it. The emoji table is the
64-entry vocabulary of the Matrix short-authentication-string spec, indexed by the pin's
leading 42 bits in 6-bit steps, so our screen and the receiver's banner show the same seven
pictures for the same key.

The private key never leaves this module's objects except as bytes handed to the Noise
handshake: `PeerIdentity` hides it from `repr`, so it cannot end up in a log or diagnostics.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import hashlib
import os
from pathlib import Path
import re
from typing import Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

KEY_SIZE: Final = 32
KEY_FILE_MODE: Final = 0o600
PIN_RE: Final = re.compile(r"^[0-9a-f]{64}$")

# (emoji, name) in the spec's frozen order; the index is the 6-bit value.
SAS_EMOJI: Final[tuple[tuple[str, str], ...]] = (
    ("\U0001f436", "Dog"),
    ("\U0001f431", "Cat"),
    ("\U0001f981", "Lion"),
    ("\U0001f40e", "Horse"),
    ("\U0001f984", "Unicorn"),
    ("\U0001f437", "Pig"),
    ("\U0001f418", "Elephant"),
    ("\U0001f430", "Rabbit"),
    ("\U0001f43c", "Panda"),
    ("\U0001f413", "Rooster"),
    ("\U0001f427", "Penguin"),
    ("\U0001f422", "Turtle"),
    ("\U0001f41f", "Fish"),
    ("\U0001f419", "Octopus"),
    ("\U0001f98b", "Butterfly"),
    ("\U0001f337", "Flower"),
    ("\U0001f333", "Tree"),
    ("\U0001f335", "Cactus"),
    ("\U0001f344", "Mushroom"),
    ("\U0001f30f", "Globe"),
    ("\U0001f319", "Moon"),
    ("\u2601\ufe0f", "Cloud"),
    ("\U0001f525", "Fire"),
    ("\U0001f34c", "Banana"),
    ("\U0001f34e", "Apple"),
    ("\U0001f353", "Strawberry"),
    ("\U0001f33d", "Corn"),
    ("\U0001f355", "Pizza"),
    ("\U0001f382", "Cake"),
    ("\u2764\ufe0f", "Heart"),
    ("\U0001f600", "Smiley"),
    ("\U0001f916", "Robot"),
    ("\U0001f3a9", "Hat"),
    ("\U0001f453", "Glasses"),
    ("\U0001f527", "Wrench"),
    ("\U0001f385", "Santa"),
    ("\U0001f44d", "Thumbs up"),
    ("\u2602\ufe0f", "Umbrella"),
    ("\u231b\ufe0f", "Hourglass"),
    ("\u23f0", "Clock"),
    ("\U0001f381", "Gift"),
    ("\U0001f4a1", "Light bulb"),
    ("\U0001f4d5", "Book"),
    ("\u270f\ufe0f", "Pencil"),
    ("\U0001f4ce", "Paperclip"),
    ("\u2702\ufe0f", "Scissors"),
    ("\U0001f512", "Lock"),
    ("\U0001f511", "Key"),
    ("\U0001f528", "Hammer"),
    ("\u260e\ufe0f", "Telephone"),
    ("\U0001f3c1", "Flag"),
    ("\U0001f682", "Train"),
    ("\U0001f6b2", "Bicycle"),
    ("\u2708\ufe0f", "Aeroplane"),
    ("\U0001f680", "Rocket"),
    ("\U0001f3c6", "Trophy"),
    ("\u26bd\ufe0f", "Ball"),
    ("\U0001f3b8", "Guitar"),
    ("\U0001f3ba", "Trumpet"),
    ("\U0001f514", "Bell"),
    ("\u2693\ufe0f", "Anchor"),
    ("\U0001f3a7", "Headphones"),
    ("\U0001f4c1", "Folder"),
    ("\U0001f4cc", "Pin"),
)
FINGERPRINT_LENGTH: Final = 7
_FINGERPRINT_BITS: Final = 44  # 11 hex digits; the leading 42 bits are used


class IdentityError(Exception):
    """The identity file exists but cannot be used (wrong size, unreadable)."""


def pin_for_public_key(public_key: bytes) -> str:
    """Return the pin of a raw 32-byte X25519 public key: lowercase hex SHA-256."""
    return hashlib.sha256(public_key).hexdigest()


def normalise_pin(pin: str) -> str:
    """Return `pin` lowercased without spaces or colons; raise ValueError when it is no pin.

    Device Builder prints the pin as space-separated byte pairs; a pasted copy of that, or of
    the plain hex form, is accepted.
    """
    compact = re.sub(r"[\s:]", "", pin).lower()
    if not PIN_RE.fullmatch(compact):
        raise ValueError(f"Not a peer-link pin (64 hex digits): {pin!r}")
    return compact


def format_pin(pin: str) -> str:
    """Return the pin as space-separated byte pairs, the way the receiver prints it."""
    return " ".join(pin[i : i + 2] for i in range(0, len(pin), 2))


def fingerprint_slots(pin: str) -> tuple[tuple[str, str], ...]:
    """Return the seven (emoji, name) pairs for a pin."""
    bits = int(pin[: _FINGERPRINT_BITS // 4], 16)
    return tuple(
        SAS_EMOJI[(bits >> (_FINGERPRINT_BITS - 6 * (slot + 1))) & 0x3F]
        for slot in range(FINGERPRINT_LENGTH)
    )


def emoji_fingerprint(pin: str) -> str:
    """Return the seven emoji of a pin, space-separated (as the receiver's banner shows them)."""
    return " ".join(emoji for emoji, _ in fingerprint_slots(pin))


def fingerprint_names(pin: str) -> str:
    """Return the names of the seven emoji (for screens without an emoji font)."""
    return ", ".join(name for _, name in fingerprint_slots(pin))


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Our static key pair. `private_key` is excluded from repr and comparisons."""

    private_key: bytes = field(repr=False, compare=False)
    public_key: bytes

    @classmethod
    def from_private_key(cls, private_key: bytes) -> PeerIdentity:
        """Derive the public half of a raw 32-byte X25519 private key."""
        if len(private_key) != KEY_SIZE:
            raise IdentityError(f"A peer-link key has {KEY_SIZE} bytes, not {len(private_key)}")
        public = (
            X25519PrivateKey.from_private_bytes(private_key)
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        return cls(private_key=private_key, public_key=public)

    @classmethod
    def generate(cls) -> PeerIdentity:
        """Create a fresh key pair."""
        raw = X25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        return cls.from_private_key(raw)

    @property
    def pin(self) -> str:
        """The pin receivers store for us."""
        return pin_for_public_key(self.public_key)

    @property
    def emoji(self) -> str:
        """Our seven-emoji fingerprint."""
        return emoji_fingerprint(self.pin)


def load_or_create_identity(path: Path) -> PeerIdentity:
    """Load the key at `path`, creating it (mode 0600) when missing. Blocking: use an executor.

    The file is written to a temporary name in the same folder and renamed, so a crash never
    leaves a half-written key; an existing file of the wrong size raises instead of being
    replaced, because a new key would silently break every pairing.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        identity = PeerIdentity.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(identity.private_key)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return identity
    except OSError as err:
        raise IdentityError(f"Cannot read the peer-link key {path}: {err}") from err
    if len(raw) != KEY_SIZE:
        raise IdentityError(
            f"The peer-link key {path} has {len(raw)} bytes instead of {KEY_SIZE}; "
            "remove it to create a new identity (every peer must then be paired again)"
        )
    if path.stat().st_mode & 0o077:
        # Someone widened the mode: a private key must stay private.
        path.chmod(KEY_FILE_MODE)
    return PeerIdentity.from_private_key(raw)


async def async_load_or_create_identity(path: Path) -> PeerIdentity:
    """Run `load_or_create_identity` in the default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, load_or_create_identity, path)
