"""A YAML loader for untrusted manifests: bounded aliases and nesting, duplicate keys refused.

``yaml.safe_load`` constructs nothing dangerous, but it keeps the last of two equal keys without a
word and builds alias graphs whose expansion (``params: *bomb`` read by pydantic, ``json.dumps``,
``copy.deepcopy``) never finishes. Here the composed node graph is checked first, in time linear in
the size of the text: every limit below is a one-line :class:`YamlRefused` naming the line and key.
Then values that strict JSON cannot carry are found where a manifest hands them on as JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

try:  # libyaml keeps collection of hundreds of manifests fast
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_NODES", "YamlRefused", "load_checked", "non_json"]

#: alias uses (``*name``, ``<<: *name``) in one manifest; a real one reuses a handful of blocks
MAX_ALIASES = 100
#: YAML nodes after every alias is expanded (what pydantic and JSON would walk)
MAX_NODES = 200_000
#: mappings and lists nested in each other
MAX_DEPTH = 50


class YamlRefused(Exception):
    """The text is YAML, but not a manifest vdbench reads: ``line`` and ``loc`` say where."""

    def __init__(self, line: int, loc: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.line = line
        self.loc = list(loc)
        self.message = message


@dataclass
class _Budget:
    nodes: int = 0
    aliases: int = 0


def load_checked(text: str) -> tuple[Any, yaml.Node | None]:
    """Parse ``text`` (one document) after checking its node graph; returns (data, root node).

    Raises ``yaml.YAMLError`` for text that is not YAML and :class:`YamlRefused` past a limit.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _walk(node, [], 0, {}, set(), _Budget())
        return loader.construct_document(node), node
    finally:
        loader.dispose()


def _key_text(node: yaml.Node) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _walk(node: yaml.Node, loc: list[str | int], depth: int, sizes: dict[int, int], path: set[int], budget: _Budget) -> None:
    """Count ``node``'s expanded size into ``budget``; refuse cycles, depth, aliases and duplicates."""
    line = node.start_mark.line + 1
    if id(node) in path:
        raise YamlRefused(line, loc, "an alias refers to a node that contains it (a recursive structure)")
    if id(node) in sizes:  # reached a second time: an alias
        budget.aliases += 1
        budget.nodes += sizes[id(node)]
        if budget.aliases > MAX_ALIASES:
            raise YamlRefused(line, loc, f"more than {MAX_ALIASES} alias uses; write the values out")
        if budget.nodes > MAX_NODES:
            raise YamlRefused(line, loc, f"aliases expand to more than {MAX_NODES:,} values (an alias bomb?)")
        return
    if depth > MAX_DEPTH:
        raise YamlRefused(line, loc, f"nested more than {MAX_DEPTH} levels deep")
    before = budget.nodes
    budget.nodes += 1
    if budget.nodes > MAX_NODES:
        raise YamlRefused(line, loc, f"more than {MAX_NODES:,} values in one manifest")
    path.add(id(node))
    if isinstance(node, yaml.MappingNode):
        _duplicates(node, loc)
        for key_node, value_node in node.value:
            key = _key_text(key_node)
            _walk(key_node, loc, depth + 1, sizes, path, budget)
            _walk(value_node, [*loc, key if key is not None else "?"], depth + 1, sizes, path, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            _walk(child, [*loc, i], depth + 1, sizes, path, budget)
    path.discard(id(node))
    sizes[id(node)] = budget.nodes - before


def _duplicates(node: yaml.MappingNode, loc: list[str | int]) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        ident = (key_node.tag, str(key_node.value))
        line = key_node.start_mark.line + 1
        if ident in seen:
            raise YamlRefused(
                line,
                [*loc, str(key_node.value)],
                f"duplicate key (first given at line {seen[ident]}); YAML would silently keep only this one",
            )
        seen[ident] = line


def non_json(value: Any, loc: Sequence[str | int]) -> Iterator[tuple[list[str | int], str]]:
    """(loc, message) for each value below ``value`` that strict JSON cannot carry, with the fix."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                yield [*loc, str(k)], f"key {k!r} ({type(k).__name__}) is not a string; quote it"
            else:
                yield from non_json(v, [*loc, k])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from non_json(v, [*loc, i])
    elif value is None or isinstance(value, (str, bool, int)):
        return
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield list(loc), f"{value!r} is not a finite number (JSON has no NaN or infinity)"
    else:
        hint = " (a YAML date or timestamp); quote it to pass a string" if hasattr(value, "isoformat") else ""
        yield list(loc), f"{value!r} ({type(value).__name__}) cannot be sent as JSON{hint}"
