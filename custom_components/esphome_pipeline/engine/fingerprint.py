"""Reading an ESPHome configuration without ESPHome, and its fingerprint.

Owns: a YAML loader that accepts ESPHome's tags (`!secret`, `!include`, `!include_dir_*`,
`!lambda`, `!extend`, `!remove`, `!env_var`, any unknown tag) as inert markers and never runs
anything; the node facts a controller needs (`name`, `friendly_name`, platform) with
top-level substitutions applied; and the configuration fingerprint.

The fingerprint (v1, refined later by the "Warm path" issue) is the first 12 hex digits of a
SHA-256 over: the ESPHome version; the YAML file's bytes; the bytes of every local file it
pulls in (`!include`, `!include_dir_*`, `<<: !include`, packages given as includes, and
`esphome: includes:`), followed recursively relative to the including file, at most
`MAX_FILES` files and never outside the configuration folder; and, for every `!secret` key
used, the key and a SHA-256 of its value from `secrets.yaml` next to the file that uses it
(else the folder's). Secret values never appear in the result. Blocking: call it from an
executor.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
import hashlib
from pathlib import Path
import re
from typing import Any, Final

import yaml

# Re-exported under its old home for the diagnostics; defined once in input_rules.
from .input_rules import SECRETS_FILES as SECRETS_FILES  # noqa: PLC0414

FINGERPRINT_LENGTH: Final = 12
MAX_FILES: Final = 256
MAX_SUBSTITUTION_ROUNDS: Final = 8
PLATFORM_KEYS: Final = (
    "host",
    "esp32",
    "esp8266",
    "rp2040",
    "bk72xx",
    "rtl87xx",
    "ln882x",
    "nrf52",
    "libretiny",
)
_INCLUDE_DIR_TAGS: Final = frozenset(
    {
        "!include_dir_list",
        "!include_dir_named",
        "!include_dir_merge_list",
        "!include_dir_merge_named",
    }
)
_SUBSTITUTION_RE: Final = re.compile(r"\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+)")


class ConfigurationReadError(Exception):
    """The YAML file cannot be read or parsed; the message says why."""


@dataclass(frozen=True, slots=True)
class Tagged:
    """A value carrying an ESPHome tag the reader does not interpret (`!lambda`, `!extend`...)."""

    tag: str
    value: Any


@dataclass(frozen=True, slots=True)
class SecretRef:
    """`!secret key`."""

    key: str


@dataclass(frozen=True, slots=True)
class IncludeRef:
    """`!include path` (or `!include {file: path, vars: ...}`), relative to the including file."""

    path: str


@dataclass(frozen=True, slots=True)
class IncludeDirRef:
    """`!include_dir_*` folder, relative to the including file."""

    path: str


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeInfo:
    """What a controller needs to know about one configuration."""

    name: str
    friendly_name: str | None
    platform: str | None
    fingerprint: str

    @property
    def display_name(self) -> str:
        """The device name people read: `friendly_name`, else `name`."""
        return self.friendly_name or self.name


class _TolerantLoader(yaml.SafeLoader):
    """SafeLoader that turns every tag it does not know into an inert marker."""

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # `<<: !include file.yaml` is legal in ESPHome but not a mapping to merge here:
        # keep it as an ordinary `<<` key so the include is still seen.
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" and value_node.tag.startswith("!"):
                key_node.tag = "tag:yaml.org,2002:str"
        super().flatten_mapping(node)


def _construct_tagged(loader: _TolerantLoader, suffix: str, node: yaml.Node) -> Any:
    tag = node.tag
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node {node!r}")
    if tag == "!secret":
        return SecretRef(str(value))
    if tag == "!include":
        target = value.get("file") if isinstance(value, dict) else value
        return IncludeRef(str(target)) if target is not None else Tagged(tag, value)
    if tag in _INCLUDE_DIR_TAGS:
        return IncludeDirRef(str(value))
    return Tagged(tag, value)


_TolerantLoader.add_multi_constructor("!", _construct_tagged)


def load_yaml_text(text: str) -> Any:
    """Parse ESPHome YAML text; tags become markers. Raises yaml.YAMLError when malformed."""
    return yaml.load(text, Loader=_TolerantLoader)  # noqa: S506 (a SafeLoader subclass)


def read_node(config_dir: Path, configuration: str, *, esphome_version: str) -> NodeInfo | None:
    """Return the node facts and fingerprint, or None when the file has no `esphome:` block.

    Raises ConfigurationReadError when the file cannot be read or parsed.
    """
    path = config_dir / configuration
    try:
        raw = path.read_bytes()
        document = load_yaml_text(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigurationReadError(str(err)) from err
    if not isinstance(document, dict) or "esphome" not in document:
        return None
    esphome = document["esphome"]
    block = esphome if isinstance(esphome, dict) else {}
    substitutions = document.get("substitutions")
    values = substitutions if isinstance(substitutions, dict) else {}
    name = _substituted(block.get("name"), values) or path.stem
    friendly = _substituted(block.get("friendly_name"), values)
    return NodeInfo(
        name=name,
        friendly_name=friendly,
        platform=_platform(document, block),
        fingerprint=_fingerprint(config_dir, path, raw, document, esphome_version),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildInputs:
    """What a configuration's fingerprint is made of, digest by digest (no content, no secret).

    Comparing two of them says what changed between two builds: which files, which secrets
    (by key; the value's digest only), and the ESPHome version.
    """

    esphome_version: str
    files: dict[str, str]
    """File label (relative to the folder) -> SHA-256 of its bytes, or "missing"."""
    secrets: dict[str, str]
    """Secret key -> SHA-256 of its value, or "missing"."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "esphome_version": self.esphome_version,
            "files": dict(self.files),
            "secrets": dict(self.secrets),
        }


def read_inputs(config_dir: Path, configuration: str, *, esphome_version: str) -> BuildInputs:
    """Return the inputs the fingerprint of `configuration` covers. Blocking.

    Raises ConfigurationReadError when the file cannot be read or parsed.
    """
    path = config_dir / configuration
    try:
        raw = path.read_bytes()
        document = load_yaml_text(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigurationReadError(str(err)) from err
    inputs = _Inputs()
    inputs.seen.add(path.resolve())
    inputs.files.append((path.name, raw))
    _collect(config_dir.resolve(), path, document, inputs)
    return BuildInputs(
        esphome_version=esphome_version,
        files={
            label: "missing" if content is None else hashlib.sha256(content).hexdigest()
            for label, content in inputs.files
        },
        secrets=dict(inputs.secrets),
    )


def _substituted(value: Any, substitutions: dict[Any, Any]) -> str | None:
    if value is None or isinstance(value, Tagged | SecretRef | IncludeRef | IncludeDirRef):
        return None
    text = str(value)
    for _ in range(MAX_SUBSTITUTION_ROUNDS):
        replaced = _SUBSTITUTION_RE.sub(lambda match: _substitution(match, substitutions), text)
        if replaced == text:
            break
        text = replaced
    return text or None


def _substitution(match: re.Match[str], substitutions: dict[Any, Any]) -> str:
    key = match[1] or match[2]
    value = substitutions.get(key)
    if value is None or isinstance(value, dict | list | Tagged | SecretRef | IncludeRef):
        return match[0]
    return str(value)


def _platform(document: dict[Any, Any], block: dict[Any, Any]) -> str | None:
    for key in PLATFORM_KEYS:
        if key in document:
            return key
    # Configurations from before ESPHome 2022 name the platform inside `esphome:`.
    legacy = block.get("platform")
    return str(legacy).lower() if isinstance(legacy, str) else None


@dataclass(slots=True)
class _Inputs:
    files: list[tuple[str, bytes | None]] = field(default_factory=list)
    seen: set[Path] = field(default_factory=set)
    secrets: dict[str, str] = field(default_factory=dict)


def _fingerprint(
    config_dir: Path, path: Path, raw: bytes, document: Any, esphome_version: str
) -> str:
    root = config_dir.resolve()
    inputs = _Inputs()
    inputs.seen.add(path.resolve())
    inputs.files.append((path.name, raw))
    _collect(root, path, document, inputs)
    digest = hashlib.sha256()
    digest.update(b"esphome\0" + esphome_version.encode() + b"\0")
    for label, content in inputs.files:
        digest.update(b"file\0" + label.encode() + b"\0")
        digest.update(b"missing" if content is None else hashlib.sha256(content).digest())
    for key in sorted(inputs.secrets):
        digest.update(b"secret\0" + key.encode() + b"\0" + inputs.secrets[key].encode())
    return digest.hexdigest()[:FINGERPRINT_LENGTH]


def _collect(root: Path, source: Path, document: Any, inputs: _Inputs) -> None:
    """Add the files and secrets `document` (read from `source`) uses, recursively."""
    for marker in _markers(document):
        if isinstance(marker, SecretRef):
            inputs.secrets.setdefault(marker.key, _secret_digest(root, source, marker.key))
        elif isinstance(marker, IncludeRef):
            _add_file(root, source.parent / marker.path, inputs)
        elif isinstance(marker, IncludeDirRef):
            folder = (source.parent / marker.path).resolve()
            if folder.is_relative_to(root) and folder.is_dir():
                for child in sorted(folder.rglob("*")):
                    hidden = any(part.startswith(".") for part in child.relative_to(folder).parts)
                    if child.suffix in {".yaml", ".yml"} and not hidden:
                        _add_file(root, child, inputs)
    esphome = document.get("esphome") if isinstance(document, dict) else None
    if isinstance(esphome, dict) and isinstance(esphome.get("includes"), list):
        for item in esphome["includes"]:
            if isinstance(item, str):
                _add_file(root, source.parent / item, inputs, parse=False)


def _add_file(root: Path, candidate: Path, inputs: _Inputs, *, parse: bool = True) -> None:
    resolved = candidate.resolve()
    if resolved in inputs.seen or len(inputs.files) >= MAX_FILES:
        return
    inputs.seen.add(resolved)
    label = str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(candidate)
    if not resolved.is_relative_to(root) or not resolved.is_file():
        # Outside the folder or absent: the reference itself is in the including file's bytes.
        inputs.files.append((label, None))
        return
    try:
        content = resolved.read_bytes()
    except OSError:
        inputs.files.append((label, None))
        return
    inputs.files.append((label, content))
    if parse and resolved.suffix in {".yaml", ".yml"}:
        try:
            document = load_yaml_text(content.decode("utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError):
            return
        _collect(root, resolved, document, inputs)


def _markers(value: Any) -> Iterator[Any]:
    if isinstance(value, SecretRef | IncludeRef | IncludeDirRef):
        yield value
    elif isinstance(value, Tagged):
        yield from _markers(value.value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _markers(key)
            yield from _markers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _markers(item)


def _secret_digest(root: Path, source: Path, key: str) -> str:
    """Return a SHA-256 of the secret's value (never the value), or a marker when missing."""
    for folder in (source.parent, root):
        for file_name in SECRETS_FILES:
            path = folder / file_name
            if not path.is_file():
                continue
            try:
                secrets = load_yaml_text(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            if isinstance(secrets, dict) and key in secrets:
                return hashlib.sha256(str(secrets[key]).encode()).hexdigest()
    return "missing"
