"""Our peer-link identity: created once with mode 0600, loaded again, pin and fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path
import stat

import pytest

from custom_components.esphome_pipeline.engine.peer.identity import (
    IdentityError,
    PeerIdentity,
    async_load_or_create_identity,
    emoji_fingerprint,
    fingerprint_names,
    format_pin,
    normalise_pin,
)


async def test_created_once_private_and_loaded_again(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "peer.key"
    first = await async_load_or_create_identity(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    second = await async_load_or_create_identity(path)
    assert second == first
    assert second.pin == hashlib.sha256(second.public_key).hexdigest()
    # The private key never shows in a repr (logs, diagnostics).
    assert path.read_bytes().hex() not in repr(first)
    assert "private" not in repr(first)


async def test_widened_mode_is_narrowed_again(tmp_path: Path) -> None:
    path = tmp_path / "peer.key"
    await async_load_or_create_identity(path)
    path.chmod(0o644)
    await async_load_or_create_identity(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_a_damaged_key_is_an_error_not_a_new_identity(tmp_path: Path) -> None:
    path = tmp_path / "peer.key"
    path.write_bytes(b"short")
    with pytest.raises(IdentityError, match="5 bytes"):
        await async_load_or_create_identity(path)
    assert path.read_bytes() == b"short"
    with pytest.raises(IdentityError):
        PeerIdentity.from_private_key(b"x" * 31)


async def test_unreadable_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "peer.key"
    path.mkdir()
    with pytest.raises(IdentityError, match="Cannot read"):
        await async_load_or_create_identity(path)


@pytest.mark.parametrize(
    ("pin", "emoji", "names"),
    [
        # Vectors computed with Device Builder 1.26.0's own pin_emoji helper.
        ("0" * 64, " ".join(["\U0001f436"] * 7), ", ".join(["Dog"] * 7)),
        ("f" * 64, " ".join(["\U0001f4cc"] * 7), ", ".join(["Pin"] * 7)),
        (
            hashlib.sha256(b"x").hexdigest(),
            "\U0001f422 \U0001f34c \U0001f984 \U0001f525 \U0001f333 \u270f\ufe0f \U0001f382",
            "Turtle, Banana, Unicorn, Fire, Tree, Pencil, Cake",
        ),
    ],
)
def test_fingerprint_matches_device_builder(pin: str, emoji: str, names: str) -> None:
    assert emoji_fingerprint(pin) == emoji
    assert fingerprint_names(pin) == names


def test_pin_forms() -> None:
    pin = hashlib.sha256(b"x").hexdigest()
    printed = format_pin(pin)
    assert printed.split(" ")[0] == pin[:2]
    assert normalise_pin(printed.upper()) == pin
    assert normalise_pin(":".join(printed.split(" "))) == pin
    with pytest.raises(ValueError, match="64 hex"):
        normalise_pin("abc")
