"""Every local input of one configuration: what the fingerprint hashes and what a check stats.

Owns: the walk over a parsed configuration that finds each file that changes the firmware.
Followed recursively relative to the including file (and, for plain paths, also relative to
the configuration folder, as ESPHome resolves `file:` keys there):

- `!include` files, `!include_dir_list/named/merge_list/merge_named` folders (their YAML files),
  `<<: !include`, packages given as includes;
- `esphome: includes:` and `esphome: libraries:` entries that are local files or folders;
- local `external_components` (a path `source:` or `type: local`): every file below;
- any string value naming an existing file or folder inside the configuration folder: fonts,
  images, animations, audio files, partition tables, certificates, `web_server` includes and
  whatever a future component adds (when unsure, a file counts);
- every `!secret` used, as a SHA-256 of its value from the `secrets.yaml` beside the file that
  uses it, else the folder's.

Never read: anything outside the configuration folder, hidden entries inside walked folders,
and ESPHome's own `.esphome` folder (build outputs). What cannot be vouched for is listed in
`unverifiable`: a git package or external component not pinned to a commit, a file outside the
folder, more than `MAX_FILES` files. Every path whose change matters is recorded with its stamp
(missing ones too), so a repeated check only stats them. Blocking: use from an executor.
"""

# Plain string paths and os.path on purpose: a warm check runs this thousands of times and
# pathlib objects cost several times more per call.
# ruff: noqa: PTH110, PTH114, PTH116, PTH117, PTH118, PTH120, PTH123

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
import hashlib
import os
import re
from typing import Any, Final

import yaml

from .fingerprint_cache import ContentHashCache, Stamp, stamp_of
from .fingerprint_yaml import (
    SUBSTITUTION_RE,
    IncludeDirRef,
    IncludeRef,
    SecretRef,
    Tagged,
    load_yaml_structure,
    substitute,
)
from .input_rules import SECRETS_FILES

MAX_FILES: Final = 4096
YAML_SUFFIXES: Final = (".yaml", ".yml")
ESPHOME_DATA_DIR: Final = ".esphome"
_MAX_PATH_TEXT: Final = 1024
_CODE_CHARACTERS: Final = frozenset(';(){}"<>|*?=\n')
_COMMIT_RE: Final = re.compile(r"[0-9a-fA-F]{40}")
_REMOTE_PREFIXES: Final = ("github://", "gitlab://", "http://", "https://", "git@", "git://")

_MARKERS: Final = (SecretRef, IncludeRef, IncludeDirRef)

DocumentReader = Callable[[str, Stamp], tuple[str | None, Any]]
"""(path, stamp) -> (content digest or None when unreadable, parsed YAML or None)."""


@dataclass(slots=True)
class Inputs:
    """What one configuration depends on."""

    files: dict[str, str | None] = field(default_factory=dict)
    """Label (path relative to the folder) -> content SHA-256, None when missing/unreadable."""
    secrets: dict[str, str] = field(default_factory=dict)
    remote: set[str] = field(default_factory=set)
    unverifiable: list[str] = field(default_factory=list)
    stamps: dict[str, Stamp | None] = field(default_factory=dict)
    """Every path whose change matters -> its stamp when it was read (None: missing)."""


class InputCollector:
    """Collects the inputs of one configuration (one instance per walk)."""

    def __init__(self, root: str, hashes: ContentHashCache, read_document: DocumentReader) -> None:
        """Walk inside `root` (a resolved folder path)."""
        self._root = root
        self._data_dir = os.path.join(root, ESPHOME_DATA_DIR)
        self._hashes = hashes
        self._read_document = read_document
        self._seen: set[str] = set()
        self._folders: dict[str, str] = {}
        self._substitutions: dict[Any, Any] = {}
        self.inputs = Inputs()

    def _realpath(self, path: str) -> str:
        """Where `path` really is (symlinks followed; `..` taken lexically, first): each
        folder is resolved once per walk, from its resolved parent and one `lstat`."""
        normal = os.path.normpath(path)
        folder, name = os.path.split(normal)
        if not name:  # the file system root
            return normal
        joined = os.path.join(self._real_folder(folder), name)
        return os.path.realpath(joined) if os.path.islink(joined) else joined

    def _real_folder(self, folder: str) -> str:
        resolved = self._folders.get(folder)
        if resolved is None:
            resolved = self._folders[folder] = self._realpath(folder)
        return resolved

    def collect(self, path: str, digest: str, document: Any) -> Inputs:
        """Walk the configuration at `path` (already read: its digest and parsed document)."""
        real = self._realpath(path)
        self._seen.add(real)
        self.inputs.files[self._label(real)] = digest
        substitutions = document.get("substitutions") if isinstance(document, dict) else None
        self._substitutions = substitutions if isinstance(substitutions, dict) else {}
        self._walk_document(os.path.dirname(path), document)
        return self.inputs

    def _expand(self, text: str) -> str:
        """Apply the configuration's top-level substitutions to a path."""
        return substitute(text, self._substitutions) if "$" in text else text

    def _include_path(self, text: str) -> str:
        """An include's path with substitutions applied; one left unresolved cannot be vouched."""
        expanded = self._expand(text)
        if SUBSTITUTION_RE.search(expanded):
            self._unverifiable(f"include path {text} uses a substitution that is not known here")
        return expanded

    def _label(self, real: str) -> str:
        return real[len(self._root) + 1 :] if real.startswith(self._root + os.sep) else real

    def _inside(self, real: str) -> bool:
        return real.startswith(self._root + os.sep) and not (
            real == self._data_dir or real.startswith(self._data_dir + os.sep)
        )

    def _walk_document(self, base: str, document: Any) -> None:
        if isinstance(document, dict):
            self._top_level(base, document)
        for item in _scalars(document):
            kind = type(item)  # exact types: this loop sees every string of the configuration
            if kind is str:
                text = self._expand(item) if "$" in item else item
                if _looks_like_path(text):
                    self._plain_path(base, text)
            elif kind is SecretRef:
                self._secret(base, item.key)
            elif kind is IncludeRef:
                self._include(os.path.join(base, self._include_path(item.path)), explicit=True)
            elif kind is IncludeDirRef:
                self._include_dir(os.path.join(base, self._include_path(item.path)))
            else:  # `!env_var NAME [default]`: the variable's value counts
                name = str(item.value).split(maxsplit=1)[0] if str(item.value).strip() else ""
                value = os.environ.get(name, "")
                self.inputs.secrets[f"env:{name}"] = hashlib.sha256(value.encode()).hexdigest()

    def _top_level(self, base: str, document: dict[Any, Any]) -> None:
        esphome = document.get("esphome")
        if isinstance(esphome, dict):
            for key in ("includes", "libraries"):
                entries = esphome.get(key)
                for entry in entries if isinstance(entries, list) else []:
                    if isinstance(entry, str) and not entry.startswith(_REMOTE_PREFIXES):
                        self._plain_path(base, entry.removeprefix("file://"), known=True)
        components = document.get("external_components")
        for item in components if isinstance(components, list) else []:
            source = item.get("source") if isinstance(item, dict) else None
            if isinstance(source, dict) and source.get("type") == "local":
                path = source.get("path")
                if isinstance(path, str):
                    self._plain_path(base, path, known=True)
            elif isinstance(source, dict):
                self._remote(source.get("url"), source.get("ref"))
            elif isinstance(source, str) and source.startswith(_REMOTE_PREFIXES):
                self._remote(*_split_shorthand(source))
            elif isinstance(source, str):
                self._plain_path(base, source, known=True)
        packages = document.get("packages")
        listed = list(packages.values()) if isinstance(packages, dict) else packages
        for package in listed if isinstance(listed, list) else []:
            if isinstance(package, dict) and "url" in package:
                self._remote(package.get("url"), package.get("ref"))
            elif isinstance(package, str) and package.startswith(_REMOTE_PREFIXES):
                self._remote(*_split_shorthand(package))

    def _remote(self, url: Any, ref: Any) -> None:
        text = f"{url}@{ref}" if ref is not None else str(url)
        self.inputs.remote.add(text)
        if not (isinstance(ref, str) and _COMMIT_RE.fullmatch(ref)):
            self._unverifiable(f"remote source {text} is not pinned to a commit")

    def _unverifiable(self, reason: str) -> None:
        if reason not in self.inputs.unverifiable:
            self.inputs.unverifiable.append(reason)

    def _secret(self, base: str, key: str) -> None:
        if key in self.inputs.secrets:
            return
        for folder in dict.fromkeys((base, self._root)):
            for name in SECRETS_FILES:
                path = os.path.join(folder, name)
                stamp = self._stamp(path)
                if stamp is None or stamp.is_directory:
                    continue
                _digest, secrets = self._read_document(path, stamp)
                if isinstance(secrets, dict) and key in secrets:
                    value = str(secrets[key]).encode()
                    self.inputs.secrets[key] = hashlib.sha256(value).hexdigest()
                    return
        self.inputs.secrets[key] = "missing"

    def _stamp(self, path: str) -> Stamp | None:
        stamp = stamp_of(path)
        self.inputs.stamps[path] = stamp
        return stamp

    def _plain_path(self, base: str, text: str, *, known: bool = False) -> None:
        """A string that may name a local file or folder, relative to `base` and to the root
        (ESPHome resolves some keys one way, some the other: both count when both exist)."""
        candidates = [text] if os.path.isabs(text) else [os.path.join(base, text)]
        if not os.path.isabs(text) and base != self._root:
            candidates.append(os.path.join(self._root, text))
        for candidate in candidates:
            stamp = stamp_of(candidate)
            if stamp is None:
                # Missing now: its later creation must count (a repeated check stats it).
                self.inputs.stamps[candidate] = None
                continue
            if stamp.is_directory:
                self._include_dir(candidate, yaml_only=False, explicit=known)
            else:
                self._include(candidate, explicit=known)

    def _include(self, path: str, *, explicit: bool) -> None:
        real = self._realpath(path)
        if real in self._seen:
            return
        self._seen.add(real)
        if not self._inside(real):
            # A plain string naming a file elsewhere (a device path, a system font) is not
            # followed; an explicit include outside the folder cannot be vouched for.
            if explicit and not real.startswith(self._root + os.sep):
                self._unverifiable(f"{path} is outside the configuration folder")
            return
        if len(self.inputs.files) >= MAX_FILES:
            self._unverifiable(f"more than {MAX_FILES} files")
            return
        stamp = self._stamp(path)
        label = self._label(real)
        if stamp is None or stamp.is_directory:
            self.inputs.files[label] = None
            return
        if real.endswith(YAML_SUFFIXES):
            digest, document = self._read_document(path, stamp)
            self.inputs.files[label] = digest
            if document is not None:
                # Relative to the path as written, as ESPHome joins it (not the link target).
                self._walk_document(os.path.dirname(path), document)
            return
        self.inputs.files[label] = self._hashes.digest(path, stamp)

    def _include_dir(self, folder: str, *, yaml_only: bool = True, explicit: bool = True) -> None:
        real = self._realpath(folder)
        if real == self._root or not self._inside(real):
            if explicit and not (real == self._root or real.startswith(self._root + os.sep)):
                self._unverifiable(f"{folder} is outside the configuration folder")
            return
        if real in self._seen:
            return
        self._seen.add(real)
        for path in self._walk_folder(folder):
            if not yaml_only or path.endswith(YAML_SUFFIXES):
                self._include(path, explicit=False)

    def _walk_folder(self, folder: str) -> Iterator[str]:
        """Every regular file below `folder`, sorted, hidden entries skipped; folders stamped."""
        if self._stamp(folder) is None:
            return
        try:
            with os.scandir(folder) as entries:
                listed = sorted((entry.name, entry.is_dir()) for entry in entries)
        except OSError:
            return
        for name, is_dir in listed:
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            if is_dir:
                yield from self._walk_folder(path)
            else:
                yield path


def _scalars(document: Any) -> Iterator[Any]:
    """Every marker and string in a parsed document (keys included), in document order.

    Dispatches on the exact type: the structure loader only makes dicts, lists, strings and
    markers, and this loop runs for every value of every configuration.
    """
    stack = [document]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        value = pop()
        kind = type(value)
        if kind is str:
            yield value
        elif kind is dict:
            for key, item in reversed(value.items()):
                if not (type(key) is str and key.endswith("lambda")):  # C++, never a path
                    push(item)
                push(key)
        elif kind is list:
            extend(reversed(value))
        elif kind is Tagged:
            if value.tag == "!env_var":
                yield value
            elif value.tag != "!lambda":  # C++ code, never a path
                push(value.value)
        elif kind in _MARKERS:
            yield value


def _looks_like_path(value: str) -> bool:
    """Cheap filter before a `stat`: text with a folder separator or a file extension, and
    none of the characters of code or templates (a lambda is never a path)."""
    return (
        0 < len(value) <= _MAX_PATH_TEXT
        and ("/" in value or "." in value[1:])
        and "://" not in value
        and not value.startswith("$")
        and _CODE_CHARACTERS.isdisjoint(value)
    )


def _split_shorthand(source: str) -> tuple[str, str | None]:
    """`github://owner/repo@ref` -> (`github://owner/repo`, `ref`)."""
    head, _, ref = source.rpartition("@")
    if not head or "/" in ref or ":" in ref:
        return source, None
    return head, ref


def parse_yaml_bytes(content: bytes) -> Any:
    """Parse a file's bytes, or None when it is not valid UTF-8 YAML."""
    try:
        return load_yaml_structure(content.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        return None
