"""The manifest reference as Markdown, generated from the pydantic schema (``vdbench schema --markdown``).

CONTRIBUTING.md holds the generated text between :data:`BEGIN` and :data:`END`; a test fails when
it differs from :func:`manifest_reference`, so the reference cannot drift from ``manifest.py``.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pytest_vdbench.manifest import Bounded, Manifest, parse_bytes, parse_seconds

__all__ = ["BEGIN", "END", "manifest_reference", "replace_section"]

BEGIN = "<!-- BEGIN GENERATED: manifest reference (vdbench schema --markdown --write CONTRIBUTING.md) -->"
END = "<!-- END GENERATED: manifest reference -->"

#: where each nested model sits in a manifest, for the section titles
_PLACES: dict[str, str] = {}


def _bounded(field: FieldInfo, annotation: Any) -> Bounded | None:
    """The range-checking parser of a size or duration field (also inside Optional)."""
    metadata = list(field.metadata)
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is typing.Annotated:
            metadata.extend(arg.__metadata__)
    for item in metadata:
        func = getattr(item, "func", None)
        if isinstance(func, Bounded):
            return func
    return None


def _unit(field: FieldInfo, annotation: Any) -> str | None:
    """'size' / 'duration' for the Bytes / Seconds annotated types (also inside Optional)."""
    bounded = _bounded(field, annotation)
    if bounded is not None:
        return bounded.kind
    metadata = list(field.metadata)
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Annotated:
            metadata.extend(arg.__metadata__)
    for item in metadata:
        func = getattr(item, "func", None)
        if func is parse_bytes:
            return "size"
        if func is parse_seconds:
            return "duration"
    return None


def _type(annotation: Any, path: str, todo: list[tuple[type[BaseModel], str]]) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0], path, todo)
    if origin in (typing.Union, types.UnionType):
        parts = [_type(a, path, todo) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type(args[0], path + '[]', todo)}"
    if origin is dict:
        return f"mapping of {_type(args[0], path, todo)} to {_type(args[1], path + '.<key>', todo)}"
    if origin is tuple:
        return "[" + ", ".join(_type(a, path, todo) for a in args) + "]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation.__name__ not in _PLACES:
            _PLACES[annotation.__name__] = path
            todo.append((annotation, path))
        return f"[{_PLACES[annotation.__name__]}](#{_anchor(_PLACES[annotation.__name__])})"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _anchor(path: str) -> str:
    return "manifest-" + "".join(c if c.isalnum() else "-" for c in path.lower()).strip("-")


def _size(value: int) -> str:
    for unit, scale in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if value and value % scale == 0:
            return f"{value // scale}{unit}"
    return str(value)


def _default(field: FieldInfo, unit: str | None) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "(all defaults)"
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if value is None:
        return "null"
    if unit == "size" and isinstance(value, int):
        return f"`{_size(value)}`"
    if unit == "duration" and isinstance(value, (int, float)):
        return f"`{value:g}s`"
    return f"`{json.dumps(value)}`"


def _constraints(field: FieldInfo) -> list[str]:
    out: list[str] = []
    words = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    for item in field.metadata:
        for attr, sign in words.items():
            value = getattr(item, attr, None)
            if value is not None:
                out.append(f"{sign} {value:g}" if isinstance(value, float) else f"{sign} {value:,}")
        if getattr(item, "min_length", None):
            out.append(f"at least {item.min_length} item(s)")
        if getattr(item, "max_length", None):
            out.append(f"at most {item.max_length:,} item(s)")
        pattern = getattr(item, "pattern", None)
        if pattern:
            out.append(f"matches `{pattern}`")
    return out


def _table(model: type[BaseModel], path: str, todo: list[tuple[type[BaseModel], str]]) -> list[str]:
    title = "top level" if not path else f"`{path}`"
    doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
    lines = [
        f'<a id="{_anchor(path or "top")}"></a>',
        f"### {title}",
        "",
        doc,
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in model.model_fields.items():
        unit = _unit(field, field.annotation)
        kind = unit or _type(field.annotation, f"{path}.{name}" if path else name, todo)
        if unit and type(None) in typing.get_args(field.annotation):
            kind += " or null"
        bounded = _bounded(field, field.annotation)
        ranges = [f"range {bounded.describe()}"] if bounded is not None else []
        notes = [field.description or ""] + [f"({c})" for c in [*ranges, *_constraints(field)]]
        meaning = " ".join(n for n in notes if n).replace("|", "\\|")
        lines.append(f"| `{name}` | {kind} | {_default(field, unit)} | {meaning} |")
    return [*lines, ""]


def manifest_reference() -> str:
    """Every key of a manifest: one table per (nested) model, in the order they appear."""
    _PLACES.clear()
    todo: list[tuple[type[BaseModel], str]] = [(Manifest, "")]
    _PLACES[Manifest.__name__] = "top"
    out = [
        "Generated from the pydantic schema in `pytest_vdbench/manifest/__init__.py` by `vdbench schema --markdown`; do not edit",
        "by hand. Sizes take docker units (`512m`, `2g`, `1.5GiB`), durations `30s`, `5m`, `250ms`. Unknown keys",
        "are errors. `variants` maps a variant name to overrides deep-merged over the top level (lists are replaced",
        "whole; `name` and `variants` cannot be overridden). Every number must be finite (no `.nan`, `.inf`) and",
        "inside its range below; duplicate keys, more than 100 alias uses, values that expand past 200,000 nodes,",
        "nesting past 50 levels and files over 1 MiB are errors; `options` and the cases' `params` and `fit` must be",
        "plain JSON (quote a date such as `'2024-01-01'`). Datasets, `image.context` and `image.dockerfile` must",
        "resolve inside the project (see Confinement in the README) unless `--vdbench-allow-path=DIR` allows a folder.",
        "",
    ]
    while todo:
        model, path = todo.pop(0)
        out.extend(_table(model, path, todo))
    return "\n".join(out).rstrip() + "\n"


def replace_section(document: str, generated: str) -> str:
    """``document`` with the text between BEGIN and END replaced by ``generated`` (ValueError without markers)."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"markers not found; the document needs a line {BEGIN!r} and later a line {END!r}")
    return document[: start + len(BEGIN)] + "\n" + generated + document[end:]
