"""Lint manifests and their build contexts without Docker (``vdbench validate`` and collection).

Every problem is a :class:`Problem` that prints like a compiler diagnostic,
``file:line: key: message``. The checks, beyond the schema (``manifest.load_manifest``):

* referenced files exist: the build context, its Dockerfile (which must take ``ARG BASE`` /
  ``FROM ${BASE}``), the cases' datasets (with their ``target``/``discrete`` columns), the adapter
  module inside the context;
* the adapter entry is importable in principle: the module parses (``ast``, never imported) and
  defines the class, with ``generate`` (and ``fit`` for tabular models) accepting the case params;
* variants are consistent (no variant changes the modality or protocol), names are unique;
* budgets are sane (a budget at or over its timeout can never fail; ``peak_memory`` over
  ``resources.memory`` is an OOM kill first), shapes agree with the cases' params, quality metrics
  exist for the modality and can be computed for each case.
"""

from __future__ import annotations

import ast
import csv
import difflib
import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

try:  # libyaml: lines are looked up only for problems, but a suite may have many
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

from pytest_vdbench.manifest import (
    RENAMED_METRICS,
    Case,
    ManifestError,
    ModelSpec,
    discover_manifests,
    load_manifest,
    node_line,
    renamed_metric_message,
)

__all__ = [
    "CogCheck",
    "KnownMetrics",
    "Problem",
    "ValidationReport",
    "check_specs",
    "key_line",
    "load_problems",
    "validate_paths",
]

Severity = Literal["error", "warning"]


class _MetricFacts(Protocol):
    @property
    def needs(self) -> str | None: ...


class KnownMetrics(Protocol):
    """The metric registry as validation sees it (``checks.metrics.MetricRegistry`` is one)."""

    def names(self, modality: str) -> list[str]: ...

    def info(self, name: str) -> _MetricFacts | None: ...


#: checks that an image may prove wrong (a module it pip-installs is not in the context, a method
#: from a base class defined elsewhere): at collection they warn instead of stopping the run, and
#: the runtime reports a real miss precisely (ModuleNotFoundError, NotImplementedError, TypeError)
_COLLECTION_WARNINGS = frozenset({"adapter-module", "adapter-methods"})


@dataclass(frozen=True)
class Problem:
    """One diagnostic: where (manifest file and line), which key, what is wrong."""

    path: Path
    line: int | None
    key: str
    message: str
    code: str = "schema"
    severity: Severity = "error"

    def format(self, relative_to: Path | None = None) -> str:
        """``file:line: key: message`` (``warning: `` before the message of a warning)."""
        shown = _shown(self.path, relative_to)
        where = f"{shown}:{self.line}" if self.line else shown
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {self.key}: {prefix}{self.message}"

    def as_dict(self, relative_to: Path | None = None) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = _shown(self.path, relative_to)
        return out


def _shown(path: Path, relative_to: Path | None) -> str:
    if relative_to is not None:
        try:
            return path.relative_to(relative_to).as_posix()
        except ValueError:
            pass
    return str(path)


@dataclass
class ValidationReport:
    """Every problem of a set of manifests, in file order."""

    files: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


# --- locating keys in the YAML ---------------------------------------------------------------


class _Locator:
    """Lines of keys in one manifest (the YAML is composed once, only when a problem needs a line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._node: yaml.Node | None = None
        self._data: Any = None
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            text = self.path.read_text(encoding="utf-8")
            self._node = yaml.compose(text, Loader=_Loader)
            self._data = yaml.load(text, Loader=_Loader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            self._node, self._data = None, None

    def top_level(self) -> dict[str, Any]:
        """The manifest's own mapping, before variants are merged."""
        self._load()
        return self._data if isinstance(self._data, dict) else {}

    def in_variant(self, variant: str, loc: Sequence[str | int]) -> bool:
        """Whether variant ``variant`` overrides ``loc`` itself."""
        self._load()
        current: Any = (self._data or {}).get("variants") if isinstance(self._data, dict) else None
        current = current.get(variant) if isinstance(current, dict) else None
        for part in loc:
            found = isinstance(current, dict) and part in current
            found = found or (isinstance(current, list) and isinstance(part, int) and part < len(current))
            if not found:
                return False
            current = current[part]
        return True

    def line(self, loc: Sequence[str | int]) -> int | None:
        """1-based line of ``loc`` (of its deepest part that exists)."""
        self._load()
        if self._node is None:
            return None
        return node_line(self._node, loc, self._node.start_mark.line + 1)


def key_line(path: Path, loc: Sequence[str | int]) -> int | None:
    """1-based line of ``loc`` in the manifest at ``path`` (one that loaded), for a problem found elsewhere."""
    return _Locator(path).line(loc)


# --- schema problems (from load_manifest) ----------------------------------------------------

_WHERE = re.compile(r"^:(\d+)")


def _schema_problem(path: Path, text: str) -> Problem:
    """Split one of load_manifest's ``file:line: key: message`` strings back into its parts."""
    rest = text[len(str(path)) :] if text.startswith(str(path)) else ":" + text
    line = None
    match = _WHERE.match(rest)
    if match:
        line = int(match.group(1))
        rest = rest[match.end() :]
    rest = rest.removeprefix(": ").removeprefix(":").strip()
    key, sep, message = rest.partition(": ")
    if not sep or (" " in key and key != "(top level)"):
        key, message = "(manifest)", rest
    return Problem(path, line, key, message)


# --- the checks ------------------------------------------------------------------------------

_Found = tuple[list[str | int], str, Severity, str]  # (loc, code, severity, message)


#: what is wrong with a cog.yaml (``runtime.cogyaml.cog_yaml_problems``): handed in by the callers,
#: which sit above the runtime, so the manifest layer imports nothing from it
CogCheck = Callable[[Path], list[str]]


def check_specs(
    specs: Sequence[ModelSpec], metrics: KnownMetrics, *, cog_check: CogCheck, collection: bool = False
) -> list[Problem]:
    """The checks beyond the schema for one manifest's variants (deduplicated across variants).

    ``metrics``: the names ``expect.quality`` may bound; ``cog_check``: reads an ``image.cog``
    cog.yaml. ``collection``: checks that an image may legitimately contradict become warnings.
    """
    if not specs:
        return []
    locator = _Locator(specs[0].path)
    problems: dict[tuple[str, str], Problem] = {}
    memo: dict[tuple[Any, ...], list[_Found]] = {}  # variants mostly share their context and adapter
    found = [(spec, problem) for spec in specs for problem in _spec_problems(spec, memo, metrics, cog_check)]
    found.extend(_variant_problems(specs, locator))
    for spec, (loc, code, severity, message) in found:
        if collection and code in _COLLECTION_WARNINGS:
            severity = "warning"
        full: list[str | int] = list(loc)
        if spec.variant != "default" and loc and locator.in_variant(spec.variant, loc):
            full = ["variants", spec.variant, *loc]
        key = ".".join(str(p) for p in full) or "(top level)"
        problems.setdefault((key, message), Problem(spec.path, locator.line(full), key, message, code, severity))
    return sorted(problems.values(), key=lambda p: p.line or 0)


def _cog_problems(spec: ModelSpec, cog: Path, cog_check: CogCheck) -> Iterator[_Found]:
    """A cog.yaml model: the file exists, renders to a Dockerfile, and its predictor module is there."""
    loc: list[str | int] = ["image", "cog"]
    if not cog.is_file():
        yield loc, "cog-yaml", "error", f"cog.yaml {cog} does not exist (image.cog {spec.manifest.image.cog!r})"
        return
    for message in cog_check(cog):
        yield loc, "cog-yaml", "error", message


def _spec_problems(
    spec: ModelSpec, memo: dict[tuple[Any, ...], list[_Found]], metrics: KnownMetrics, cog_check: CogCheck
) -> Iterator[_Found]:
    m = spec.manifest
    context = spec.context_dir
    outside = spec.outside(context, "image.context")
    cog = spec.cog_file
    if outside is not None:
        yield ["image", "context"], "confinement", "error", outside
    elif cog is not None:
        yield from _cog_problems(spec, cog, cog_check)
    elif not context.is_dir():
        yield (
            ["image", "context"],
            "context",
            "error",
            f"build context {context} does not exist (image.context {m.image.context!r} is relative to the project "
            "root, or to this file when it starts with '.')",
        )
    else:
        m = spec.manifest
        key = (context, m.image.dockerfile, m.adapter, m.protocol, m.modality, repr([(c.params, c.fit) for c in m.cases]))
        if key not in memo:
            memo[key] = [*_dockerfile_problems(spec, context), *_adapter_problems(spec, context)]
        yield from memo[key]
    yield from _case_problems(spec, metrics)
    yield from _budget_problems(spec)
    yield from _renamed_problems(spec)


def _renamed_problems(spec: ModelSpec) -> Iterator[_Found]:
    """Old built-in metric names (VBench's, for other computations) still work, with a warning naming the new key."""
    raw = spec.raw
    places: list[tuple[list[str | int], Any]] = [(["expect", "quality"], (raw.get("expect") or {}).get("quality"))]
    for i, case in enumerate(raw.get("cases") or []):
        if isinstance(case, dict):
            places.append((["cases", i, "expect", "quality"], (case.get("expect") or {}).get("quality")))
    for loc, quality in places:
        for old in RENAMED_METRICS:
            if isinstance(quality, dict) and old in quality:
                yield [*loc, old], "renamed-metric", "warning", renamed_metric_message(old)


def _dockerfile_problems(spec: ModelSpec, context: Path) -> Iterator[_Found]:
    name = spec.manifest.image.dockerfile
    path = (context / name).resolve()
    loc: list[str | int] = ["image", "dockerfile"]
    if not path.is_relative_to(context) or not path.is_file():
        yield loc, "dockerfile", "error", f"Dockerfile {name!r} not found in the build context {context}"
        return
    problem = _dockerfile_base_problem(_read_cached(path))
    if problem:
        yield loc, "dockerfile", "error", f"{path.name}: {problem}"


_ARG_BASE = re.compile(r"^ARG\s+BASE(\s*=.*)?$", re.IGNORECASE)
_FROM = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE)


def _instructions(text: str) -> list[str]:
    """A Dockerfile's instructions, comments dropped and continuation lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    return lines


def _dockerfile_base_problem(text: str) -> str | None:
    """None when the Dockerfile takes its base from the BASE build arg (what image.base sets)."""
    lines = _instructions(text)
    arg_base = False
    for line in lines:
        if _ARG_BASE.match(line):
            arg_base = True
            continue
        match = _FROM.match(line)
        if match:
            image = match.group(1)
            if not arg_base or image not in ("${BASE}", "$BASE"):
                return (
                    f"the first FROM is {line!r}; start with `ARG BASE=<default>` then `FROM ${{BASE}}` so that "
                    "image.base (passed as the BASE build arg) chooses the base image"
                )
            return None
    return "no FROM instruction; start with `ARG BASE=<default>` then `FROM ${BASE}`"


def _adapter_problems(spec: ModelSpec, context: Path) -> Iterator[_Found]:
    m = spec.manifest
    if m.adapter is None or m.protocol == "oip-v2":
        return
    target, _, attr = m.adapter.partition(":")
    loc: list[str | int] = ["adapter"]
    if target.endswith(".py"):
        candidates = [context / target]
    else:
        parts = target.split(".")
        candidates = [context.joinpath(*parts[:-1], parts[-1] + ".py"), context.joinpath(*parts, "__init__.py")]
    module = next((c for c in candidates if c.is_file()), None)
    if module is None:
        looked = " or ".join(str(c.relative_to(context)) for c in candidates)
        yield (
            loc,
            "adapter-module",
            "error",
            f"adapter module {target!r} is not in the build context {context} (looked for {looked}); the server "
            "imports it from the context's root (process runtime) or /app in the image",
        )
        return
    try:
        tree = _parse_cached(module)
    except SyntaxError as exc:
        yield loc, "adapter-class", "error", f"{module}:{exc.lineno}: syntax error: {exc.msg}"
        return
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    if attr not in classes:
        if attr in _top_level_names(tree):
            return  # imported or assigned: defined, but not inspectable here
        known = ", ".join(sorted(classes)) or "none"
        close = difflib.get_close_matches(attr, list(classes), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        yield loc, "adapter-class", "error", f"{module.name} defines no class {attr!r}{hint} (classes there: {known})"
        return
    yield from _copied_problems(spec, context, module)
    if m.protocol != "native":
        return
    methods = _methods(classes[attr], classes)
    if methods is None:
        return  # a base class from elsewhere: its methods are not visible here
    needed = [("generate", ["seed"], [list(c.params) for c in m.cases])]
    if m.modality == "tabular":
        needed.append(("fit", [], [list(c.fit) for c in m.cases]))
    for name, always, per_case in needed:
        fn = methods.get(name)
        if fn is None:
            yield (
                loc,
                "adapter-methods",
                "error",
                f"{attr} does not define {name}() (ModelAdapter.{name} raises NotImplementedError); "
                f"define {'generate(self, prompt, **params)' if name == 'generate' else 'fit(self, table, columns, **params)'}",
            )
            continue
        if fn.args.kwarg is not None:
            continue
        accepted = {a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)}
        wanted = dict.fromkeys([*always, *(k for keys in per_case for k in keys)])
        missing = [k for k in wanted if k not in accepted]
        if missing:
            source = "params" if name == "generate" else "fit"
            yield (
                loc,
                "adapter-methods",
                "error",
                f"{attr}.{name}() does not accept {', '.join(missing)} (the harness passes seed and the cases' "
                f"{source} as keyword arguments); add **params to its signature",
            )


_COPY = re.compile(r"^(?:COPY|ADD)\s+(.*)$", re.IGNORECASE)


def _copied_problems(spec: ModelSpec, context: Path, module: Path) -> Iterator[_Found]:
    """The adapter module must reach the image: some COPY/ADD from the context has to include it."""
    dockerfile = context / spec.manifest.image.dockerfile
    if not dockerfile.is_file():
        return  # reported by the Dockerfile check
    rel = module.relative_to(context).as_posix()
    for line in _instructions(_read_cached(dockerfile)):
        match = _COPY.match(line)
        if not match:
            continue
        rest = match.group(1).strip()
        try:
            tokens = [str(t) for t in json.loads(rest)] if rest.startswith("[") else rest.split()
        except ValueError:
            tokens = rest.split()
        if any(t.startswith("--from") for t in tokens):
            continue  # from another stage or image, not from the context
        for source in [t for t in tokens if not t.startswith("--")][:-1]:
            src = source.removeprefix("./").rstrip("/")
            if src in ("", ".", "*") or fnmatch.fnmatchcase(rel, src) or rel.startswith(src + "/"):
                return
    yield (
        ["adapter"],
        "dockerfile-copy",
        "warning",
        f"{dockerfile.name} does not COPY {rel} into the image: the process runtime finds it in the context, "
        "the container will not (ModuleNotFoundError in test_health); add it to a COPY line",
    )


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
    return names


def _methods(cls: ast.ClassDef, classes: dict[str, ast.ClassDef]) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef] | None:
    """Methods of ``cls`` and its bases in the same module (ModelAdapter's count as absent);
    None when a base comes from elsewhere."""
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    seen: set[str] = set()
    todo = [cls]
    while todo:
        current = todo.pop(0)
        if current.name in seen:
            continue
        seen.add(current.name)
        for node in current.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.setdefault(node.name, node)
        for base in current.bases:
            name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else None
            if name == "ModelAdapter" or name == "object":
                continue
            if name is None or name not in classes:
                return None
            todo.append(classes[name])
    return found


def _variant_problems(specs: Sequence[ModelSpec], locator: _Locator) -> Iterator[tuple[ModelSpec, _Found]]:
    """A variant that changes modality or protocol is another model; only then is the YAML re-read."""
    for key in ("modality", "protocol"):
        if len({getattr(s.manifest, key) for s in specs}) < 2:
            continue
        top = locator.top_level().get(key, "native" if key == "protocol" else None)
        for spec in specs:
            value = getattr(spec.manifest, key)
            if top is not None and value != top:
                message = (
                    f"variant {spec.variant!r} changes {key} from {top!r} to {value!r}; a different {key} is a different "
                    "model: give it its own manifest"
                )
                yield spec, ([key], "variants", "error", message)
    for spec in specs:
        if spec.manifest.requires.gpu and not spec.manifest.resources.gpus:
            message = "requires.gpu: true but resources.gpus is 0: the host must have a GPU the container never gets"
            yield spec, (["requires", "gpu"], "variants", "warning", message)


def _case_problems(spec: ModelSpec, metrics: KnownMetrics) -> Iterator[_Found]:
    m = spec.manifest
    known = metrics.names(m.modality)
    for i, case in enumerate(m.cases):
        expect = m.case_expect(case)
        shape_loc: list[str | int] = ["cases", i, "expect", "shape"] if "shape" in case.expect else ["expect", "shape"]
        header: list[str] | None = None
        if case.dataset is not None:
            path = spec.resolve(case.dataset)
            outside = spec.outside(path, f"cases[{i}].dataset")
            if outside is not None:
                yield ["cases", i, "dataset"], "confinement", "error", f"case {case.id!r}: {outside}"
            elif not path.is_file():
                yield ["cases", i, "dataset"], "dataset", "error", f"case {case.id!r}: dataset {path} does not exist"
            else:
                header = _csv_header(path)
                if header is None:
                    yield ["cases", i, "dataset"], "dataset", "error", f"case {case.id!r}: {path} has no CSV header row"
        if header is not None:
            if case.target is not None and case.target not in header:
                yield (
                    ["cases", i, "target"],
                    "dataset",
                    "error",
                    f"case {case.id!r}: no column {case.target!r} in {Path(case.dataset or '').name} "
                    f"(columns: {', '.join(header)})",
                )
            unknown = [c for c in case.discrete if c not in header]
            if unknown:
                yield ["cases", i, "discrete"], "dataset", "error", f"case {case.id!r}: columns {unknown} are not in the dataset"
            if expect.shape is not None and len(expect.shape) == 2 and expect.shape[1] not in (None, len(header)):
                yield (
                    shape_loc,
                    "shape",
                    "error",
                    f"case {case.id!r}: expect.shape has {expect.shape[1]} columns but the dataset has {len(header)}",
                )
        yield from _shape_vs_params(case, i, expect.shape, expect.dtype, m.modality, shape_loc)
        for name in expect.quality:
            qloc: list[str | int] = (
                ["cases", i, "expect", "quality", name]
                if name in case.expect.get("quality", {})
                else [
                    "expect",
                    "quality",
                    name,
                ]
            )
            if "." in name and name.split(".", 1)[0] and name.split(".", 1)[1]:
                continue  # <metric container>.<score>: only the container knows its names (checked when run)
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                yield (
                    qloc,
                    "quality",
                    "error",
                    f"no {m.modality} metric {name!r}{hint} (metrics: {', '.join(known)})",
                )
            elif (needs := getattr(metrics.info(name), "needs", None)) == "prompt" and not case.prompt:
                yield qloc, "quality", "error", f"case {case.id!r} has no prompt, so {name} cannot be scored"
            elif needs == "target" and case.target is None:
                yield qloc, "quality", "error", f"case {case.id!r} has no target column, so {name} cannot be scored"


def _shape_vs_params(
    case: Case, i: int, shape: list[int | None] | None, dtype: str | None, modality: str, loc: list[str | int]
) -> Iterator[_Found]:
    if shape is None:
        return
    if modality == "video" and len(shape) == 4:
        axes = {"frames": 0, "height": 1, "width": 2} if dtype == "uint8" else {"frames": 0, "height": 2, "width": 3}
    elif modality == "tabular" and len(shape) == 2:
        axes = {"rows": 0}
    else:
        return
    for key, axis in axes.items():
        value = case.params.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and shape[axis] is not None and shape[axis] != value:
            yield (
                loc,
                "shape",
                "error",
                f"case {case.id!r} asks for {key} = {value} (params.{key}) but expect.shape[{axis}] is {shape[axis]}; "
                "set the case's expect.shape to what it generates",
            )


def _budget_problems(spec: ModelSpec) -> Iterator[_Found]:
    m = spec.manifest
    seen: set[str] = set()
    for case in m.cases:
        b = m.case_expect(case).budgets
        prefix: list[str | int] = ["expect", "budgets"]
        pairs = (
            ("generate_seconds", b.generate_seconds, m.timeouts.generate, "timeouts.generate"),
            ("startup_seconds", b.startup_seconds, m.timeouts.startup, "timeouts.startup"),
            ("fit_seconds", b.fit_seconds, m.timeouts.fit, "timeouts.fit"),
        )
        for key, budget, timeout, tname in pairs:
            if budget is not None and budget >= timeout and key not in seen:
                seen.add(key)
                yield (
                    [*prefix, key],
                    "budget",
                    "error",
                    f"budget {budget:g}s is not below {tname} = {timeout:g}s: a call that slow times out first, so "
                    "the budget can never fail; lower the budget or raise the timeout",
                )
        if b.peak_memory is not None and b.peak_memory > m.resources.memory and "peak_memory" not in seen:
            seen.add("peak_memory")
            yield (
                [*prefix, "peak_memory"],
                "budget",
                "error",
                f"peak_memory budget {_mib(b.peak_memory)} is over resources.memory {_mib(m.resources.memory)}: the "
                "container is OOM-killed at the limit first; keep the budget at or below the limit",
            )
    if m.resources.gpu_memory and not m.resources.gpus:
        yield (
            ["resources", "gpu_memory"],
            "budget",
            "warning",
            "resources.gpu_memory is set but resources.gpus is 0: it has no effect",
        )


def _mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"


# --- cached file reads (collection checks hundreds of manifests sharing contexts) -------------

_TEXT: dict[tuple[Path, int, int], str] = {}
_TREES: dict[tuple[Path, int, int], ast.Module] = {}


def _key(path: Path) -> tuple[Path, int, int]:
    st = path.stat()
    return (path, st.st_mtime_ns, st.st_size)


def _read_cached(path: Path) -> str:
    key = _key(path)
    if key not in _TEXT:
        _TEXT[key] = path.read_text(encoding="utf-8", errors="replace")
    return _TEXT[key]


def _parse_cached(path: Path) -> ast.Module:
    key = _key(path)
    if key not in _TREES:
        _TREES[key] = ast.parse(_read_cached(path), filename=str(path))
    return _TREES[key]


def _csv_header(path: Path) -> list[str] | None:
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            row = next(csv.reader(fh), None)
    except OSError:
        return None
    return [c.strip() for c in row] if row else None


# --- whole runs --------------------------------------------------------------------------------


def validate_paths(
    paths: Iterable[Path], root: Path, metrics: KnownMetrics, allow: Sequence[Path] = (), *, cog_check: CogCheck
) -> ValidationReport:
    """Validate every manifest under ``paths`` (folders are searched, files taken as they are).

    All problems of all files are collected; nothing stops at the first one.
    """
    report = ValidationReport()
    names: dict[str, Path] = {}
    for path in discover_manifests(paths):
        report.files.append(path)
        specs, problems = load_problems(path, root, allow, names)
        report.problems.extend(problems)
        report.problems.extend(check_specs(specs, metrics, cog_check=cog_check))
    return report


def load_problems(path: Path, root: Path, allow: Sequence[Path], names: dict[str, Path]) -> tuple[list[ModelSpec], list[Problem]]:
    """One manifest's specs and its problems before :func:`check_specs`: the schema's, or its model
    name already used by an earlier manifest of ``names`` (which records the name otherwise).

    Shared by ``vdbench validate`` and collection, so both say the same lines.
    """
    try:
        specs = load_manifest(path, root, allow)
    except ManifestError as exc:
        return [], [_schema_problem(path, text) for text in exc.problems]
    name = specs[0].name
    if name in names:
        line = _Locator(path).line(["name"])
        return specs, [Problem(path, line, "name", f"model name {name!r} is already used by {names[name]}", "name")]
    names[name] = path
    return specs, []
