"""The one way normnas reads a YAML file: `yaml.safe_load`, except that a key given twice in
one mapping is refused (plain PyYAML keeps the last silently, so a typo'd copy of `trials:`
further down a config would quietly win).

Run configs, ablation configs and LayerSpace/MacroSpace files all load through
`load_yaml_file`, so they fail alike: a one-line `ConfigError` naming the file, the line and
the problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

from normnas.errors import ConfigError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(ConstructorError):
    """A mapping that gives the same key twice; `problem_mark` is the second occurrence."""


class UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping.

    Keys brought in by a merge (`<<: *base`) may be overridden, as YAML intends: only the
    keys written in the mapping itself are compared.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        self._check_unique(node)
        return super().construct_mapping(node, deep=deep)

    def flatten_mapping(self, node: MappingNode) -> None:
        # a merge rewrites the merged mappings' `value` in place; check each before that
        self._check_unique(node)
        super().flatten_mapping(node)

    def _check_unique(self, node: MappingNode) -> None:
        if id(node) in self._checked or not isinstance(node, MappingNode):
            return
        self._checked.add(id(node))
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first_line.get(key)
            except TypeError:  # an unhashable key: construct_mapping reports it
                continue
            if seen is not None:
                raise DuplicateKeyError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {seen})",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1


def safe_load(text: str) -> Any:
    """`yaml.safe_load(text)` that raises `DuplicateKeyError` for a repeated key."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # safe: UniqueKeyLoader is a SafeLoader


def describe(exc: yaml.YAMLError) -> str:
    """`line N: what is wrong` for a YAML error (line from its problem mark, when known)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    if isinstance(exc, DuplicateKeyError):
        return f"{where}{exc.problem}"
    problem = getattr(exc, "problem", None)
    return f"{where}not valid YAML" + (f" ({problem})" if problem else "")


def load_yaml_file(path: str | Path, label: str | None = None) -> Any:
    """The parsed content of the YAML file `path` (None when empty); `ConfigError`
    `"{label}: ..."` (label defaults to the path) when it cannot be read or parsed."""
    label = label or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: not a UTF-8 text file") from None
    try:
        return safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: {describe(exc)}") from None
