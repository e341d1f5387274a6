"""A YAML reader for ESPHome configurations that never runs anything.

Owns: the tolerant loader that accepts ESPHome's tags (`!secret`, `!include`, `!include_dir_*`,
`!lambda`, `!extend`, `!remove`, `!env_var`, any unknown tag) as inert markers, and those
markers. Built on libyaml's C parser when PyYAML has it (ten times faster on a large folder).
"""

from __future__ import annotations

from dataclasses import dataclass
import re
from typing import Any, Final

import yaml

INCLUDE_DIR_TAGS: Final = frozenset(
    {
        "!include_dir_list",
        "!include_dir_named",
        "!include_dir_merge_list",
        "!include_dir_merge_named",
    }
)

MAX_SUBSTITUTION_ROUNDS: Final = 8
SUBSTITUTION_RE: Final = re.compile(r"\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+)")

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_StructureBase: type[yaml.BaseLoader] = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


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


MARKER_TYPES: Final = (Tagged, SecretRef, IncludeRef, IncludeDirRef)


class _TolerantLoader(_BaseLoader):  # type: ignore[valid-type,misc]
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
    if tag in INCLUDE_DIR_TAGS:
        return IncludeDirRef(str(value))
    return Tagged(tag, value)


_TolerantLoader.add_multi_constructor("!", _construct_tagged)


class _StructureLoader(_StructureBase):  # type: ignore[valid-type,misc]
    """Every scalar as text and no merge keys resolved: enough to find referenced files."""


_StructureLoader.add_multi_constructor("!", _construct_tagged)


def load_yaml_text(text: str) -> Any:
    """Parse ESPHome YAML text; tags become markers. Raises yaml.YAMLError when malformed."""
    return yaml.load(text, Loader=_TolerantLoader)  # noqa: S506 (a SafeLoader subclass)


def load_yaml_structure(text: str) -> Any:
    """Parse ESPHome YAML text with every scalar kept as text (twice as fast as
    `load_yaml_text`); tags become markers. Raises yaml.YAMLError when malformed."""
    return yaml.load(text, Loader=_StructureLoader)  # noqa: S506 (a BaseLoader subclass)


def substitute(text: str, substitutions: dict[Any, Any]) -> str:
    """Apply ESPHome substitutions (`$name`, `${name}`) to text, nested ones too (bounded).

    Unknown names, and values that are not plain scalars, are left as written.
    """
    for _ in range(MAX_SUBSTITUTION_ROUNDS):
        replaced = SUBSTITUTION_RE.sub(lambda match: _substitution(match, substitutions), text)
        if replaced == text:
            break
        text = replaced
    return text


def _substitution(match: re.Match[str], substitutions: dict[Any, Any]) -> str:
    value = substitutions.get(match[1] or match[2])
    if value is None or isinstance(value, dict | list | Tagged | SecretRef | IncludeRef):
        return match[0]
    return str(value)
