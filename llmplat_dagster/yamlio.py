"""YAML read the strict way: a duplicated key is an error naming both lines (PyYAML silently keeps the last one),
and a syntax error names the file, line and column."""

from __future__ import annotations

from typing import Any

import yaml


class YamlError(ValueError):
    """A YAML file that cannot be read as written; the message starts with `file:line`."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key; SafeLoader reports it below
                continue
            if first != line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {first}; YAML would keep only the last)",
                    key_node.start_mark,
                )  # fmt: skip
        return super().construct_mapping(node, deep=deep)


def _error(exc: yaml.YAMLError, source: str) -> YamlError:
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    return YamlError(f"{where}: {problem}" + (f" ({context})" if context and "duplicate" not in problem else ""))


def load(text: str, source: str = "<yaml>") -> Any:
    """One document."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _error(exc, source) from None


def load_all(text: str, source: str = "<yaml>") -> list[Any]:
    """Every document of a multi-document stream (`---`), empty ones dropped."""
    try:
        return [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]  # noqa: S506
    except yaml.YAMLError as exc:
        raise _error(exc, source) from None
