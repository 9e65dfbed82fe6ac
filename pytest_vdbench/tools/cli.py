"""The ``vdbench`` command: images, clean, and the contributor's new / validate / compose / k8s / changed / schema."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from docker import DockerClient

from pytest_vdbench.manifest import ModelSpec
from pytest_vdbench.runtime.bases import BASE_LABEL, BASES, ensure_base
from pytest_vdbench.runtime.cogyaml import cog_yaml_problems
from pytest_vdbench.tools.ab import add_ab

if TYPE_CHECKING:
    from pytest_vdbench.checks.metrics import MetricRegistry
from pytest_vdbench.runtime.images import KIND_LABEL, MODEL_LABEL, DockerUnavailable, ImageBuildError, connect_docker

__all__ = ["build_parser", "main"]

Command = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A failure to report as one line on stderr with exit status 1 (no traceback)."""


def _client() -> DockerClient:
    try:
        return connect_docker()
    except DockerUnavailable as exc:
        raise CliError(str(exc)) from None


def cmd_images_bootstrap(args: argparse.Namespace) -> int:
    """Build the vdbench base images (all, or those named with --base)."""
    names: list[str] = args.base or list(BASES)
    unknown = [n for n in names if n not in BASES]
    if unknown:
        raise CliError(f"unknown base {', '.join(map(repr, unknown))}; known bases: {', '.join(BASES)}")
    stream = print if args.verbose else None
    with closing(_client()) as client:
        for name in names:
            result = ensure_base(
                client,
                name,
                cache_dir=args.cache_dir,
                lock_dir=args.lock_dir,
                force=args.force,
                stream=stream,
            )
            detail = ", ".join(f"{k} {v:.1f}s" for k, v in result.steps.items())
            state = f"built in {result.seconds:.1f}s" if result.built else "up to date"
            print(f"{result.tag:<32} {state}{f' ({detail})' if detail else ''}  {result.image_id[:19]}", flush=True)
    return 0


def cmd_images_list(args: argparse.Namespace) -> int:
    """List the images vdbench made (bases and models) with their size."""
    with closing(_client()) as client:
        images = client.images.list(filters={"label": KIND_LABEL})
    rows = []
    hidden = 0
    for image in images:
        if not image.tags:  # build stages and superseded builds: `docker image prune` removes them
            hidden += 1
            continue
        labels = image.labels
        kind = labels.get(KIND_LABEL, "?")
        what = labels.get(MODEL_LABEL) or labels.get(BASE_LABEL) or ""
        for tag in image.tags:
            rows.append((kind, tag, what, image.short_id.removeprefix("sha256:"), int(image.attrs.get("Size", 0))))
    if not rows:
        print("no vdbench images; build the bases with `vdbench images bootstrap`")
        return 0
    rows.sort()
    width = max(len(r[1]) for r in rows)
    print(f"{'KIND':<6} {'TAG':<{width}} {'SIZE':>9}  {'ID':<12} NAME")
    for kind, tag, what, short, size in rows:
        print(f"{kind:<6} {tag:<{width}} {size / 1e6:>7.0f}MB  {short:<12} {what}")
    if hidden:
        print(f"({hidden} untagged vdbench image(s) not shown; `docker image prune` removes them)")
    return 0


def _add_images(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    images = sub.add_parser("images", help="build and inspect vdbench images")
    images_sub = images.add_subparsers(dest="images_command", metavar="SUBCOMMAND", required=True)

    boot = images_sub.add_parser("bootstrap", help=cmd_images_bootstrap.__doc__)
    boot.add_argument(
        "--base",
        action="append",
        metavar="NAME",
        help="base to build (repeatable). Default: all of bookworm, bullseye, torch-cpu",
    )
    boot.add_argument("--force", action="store_true", help="rebuild even when the recipe label matches")
    boot.add_argument("--cache-dir", type=Path, metavar="DIR", help="rootfs cache. Default: ~/.cache/vdbench")
    boot.add_argument("--lock-dir", type=Path, metavar="DIR", help="build locks. Default: $TMPDIR/vdbench-locks")
    boot.add_argument("-v", "--verbose", action="store_true", help="print the build logs as they come")
    boot.set_defaults(func=cmd_images_bootstrap)

    lst = images_sub.add_parser("list", help=cmd_images_list.__doc__)
    lst.set_defaults(func=cmd_images_list)


def cmd_clean(args: argparse.Namespace) -> int:
    """Remove containers of vdbench runs whose process is gone (after a hard kill; normal runs clean up)."""
    from pytest_vdbench.runtime.docker import LABEL_RUN, sweep, sweep_dead

    if args.slurm:
        from pytest_vdbench.runtime.slurm import cancel_jobs, slurm_unavailable

        reason = slurm_unavailable()
        if reason is not None:
            print(f"vdbench clean --slurm: {reason}", file=sys.stderr)
            return 1
        jobs = sorted({*cancel_jobs(f"run={args.run}"), *cancel_jobs(f"proc={args.run}")}) if args.run else cancel_jobs("")
        print(f"cancelled {len(jobs)} vdbench Slurm job(s){': ' + ' '.join(jobs) if jobs else ''}")
        return 0
    with closing(_client()) as client:
        if args.run or args.all:
            removed = sweep(client, {LABEL_RUN: args.run or ""})
            print(f"removed {removed} vdbench container(s)")
            return 0
        removed, kept = sweep_dead(client)
    print(
        f"removed {removed} vdbench container(s) of runs that are gone; kept {kept} of live runs, other hosts "
        "or unknown owners (vdbench clean --all removes every vdbench container)"
    )
    return 0


def _add_clean(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    clean = sub.add_parser("clean", help=cmd_clean.__doc__)
    clean.add_argument("--run", metavar="ID", help="only the containers of this run id (label org.vdbench.run)")
    clean.add_argument(
        "--all", action="store_true", help="every vdbench container on the engine, live runs' and other users' too"
    )
    clean.add_argument(
        "--slurm",
        action="store_true",
        help="scancel the Slurm jobs of vdbench runs instead (all of yours, or --run ID's: the run id in their --comment)",
    )
    clean.set_defaults(func=cmd_clean)


def _default_suites(paths: list[Path] | None) -> list[Path]:
    if paths:
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise CliError(f"{', '.join(missing)} does not exist; give manifest files or suite folders")
        return paths
    default = Path("model_suites")
    if not default.is_dir():
        raise CliError("no model_suites/ here; run from the project root or give manifest files or suite folders")
    return [default]


def installed_metrics() -> MetricRegistry:
    """The built-in metrics plus those of installed plugins (``pytest11`` entry points), as pytest sees them.

    A plugin that fails to import is left out here (pytest itself will report it).
    """
    from importlib.metadata import entry_points

    import pluggy

    from pytest_vdbench import hookspecs
    from pytest_vdbench.checks.metrics import builtin_registry

    manager = pluggy.PluginManager("pytest")
    manager.add_hookspecs(hookspecs)
    for ep in entry_points(group="pytest11"):
        try:
            manager.register(ep.load(), ep.name)
        except Exception:
            continue
    registry = builtin_registry()
    manager.hook.pytest_vdbench_add_metrics(registry=registry, config=None)
    return registry


def cmd_validate(args: argparse.Namespace) -> int:
    """Lint manifests and their build contexts without Docker (schema, files, adapter, budgets)."""
    from pytest_vdbench.manifest.validate import validate_paths

    cwd = Path.cwd()
    report = validate_paths(
        _default_suites(args.paths), args.root or cwd, installed_metrics(), args.allow_path, cog_check=cog_yaml_problems
    )
    failing = report.problems if args.strict else report.errors
    summary = (
        f"{len(report.errors)} error(s), {len(report.warnings)} warning(s) in {len(report.files)} manifest(s)"
        if report.problems
        else f"{len(report.files)} manifest(s) OK"
    )
    if args.format == "json":
        doc = {
            "files": [p.as_posix() if not p.is_relative_to(cwd) else p.relative_to(cwd).as_posix() for p in report.files],
            "errors": len(report.errors),
            "warnings": len(report.warnings),
            "problems": [p.as_dict(cwd) for p in report.problems],
        }
        print(json.dumps(doc, indent=2))
    elif args.format == "github":
        for p in report.problems:
            line = f",line={p.line}" if p.line else ""
            message = p.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            print(f"::{p.severity} file={p.as_dict(cwd)['path']}{line},title=vdbench validate: {p.key}::{message}")
        print(summary)
    else:
        for p in report.problems:
            print(p.format(cwd))
        print(summary, file=sys.stderr if report.problems else sys.stdout)
    return 1 if failing else 0


def _add_validate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    val = sub.add_parser("validate", help=cmd_validate.__doc__, description=cmd_validate.__doc__)
    val.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="manifests or suite folders. Default: model_suites")
    val.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="text: file:line: key: message; json: one document; github: workflow annotations. Default: %(default)s",
    )
    val.add_argument("--strict", action="store_true", help="warnings fail too (exit status 1)")
    val.add_argument("--root", type=Path, metavar="DIR", help="project root for image.context. Default: the current folder")
    val.add_argument(
        "--allow-path",
        "--vdbench-allow-path",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder outside the project that datasets, contexts and Dockerfiles may resolve into; repeatable "
        "(as pytest's --vdbench-allow-path; env VDBENCH_ALLOW_PATH too)",
    )
    val.set_defaults(func=cmd_validate)


def cmd_new(args: argparse.Namespace) -> int:
    """Scaffold a model: containers/NAME/ (Dockerfile, adapter, requirements) and its manifest."""
    from pytest_vdbench.tools.scaffold import ScaffoldError, plan_scaffold, write_scaffold

    root: Path = args.root or Path.cwd()
    try:
        scaffold = plan_scaffold(args.name, args.modality, root, args.suite)
        written = write_scaffold(scaffold)
    except ScaffoldError as exc:
        raise CliError(str(exc)) from None
    for path in written:
        print(f"created {_rel(path, Path.cwd())}")
    manifest = _rel(scaffold.manifest, Path.cwd())
    adapter = next(p for p in written if p.suffix == ".py")
    print(
        f"\nnext: replace the placeholder model in {_rel(adapter, Path.cwd())}, then\n"
        f"  vdbench validate {manifest}\n"
        f"  pytest --vdbench --vdbench-model {args.name} --vdbench-runtime process   # seconds, no Docker\n"
        f"  pytest --vdbench --vdbench-model {args.name}                             # in its container"
    )
    return 0


def _rel(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def _add_new(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    new = sub.add_parser("new", help=cmd_new.__doc__, description=cmd_new.__doc__)
    new.add_argument("name", metavar="NAME", help="model name: lowercase letters, digits, '_', '.', '-'")
    new.add_argument("--modality", choices=("video", "tabular"), default="video", help="Default: %(default)s")
    new.add_argument("--suite", type=Path, metavar="DIR", help="where the manifest goes. Default: model_suites/MODALITY")
    new.add_argument("--root", type=Path, metavar="DIR", help="project root (containers/ lives here). Default: current folder")
    new.set_defaults(func=cmd_new)


def _load_specs(paths: list[Path], root: Path, models: list[str] | None = None) -> list[ModelSpec]:
    """Every (model, variant) under ``paths`` that validates, filtered by name/id globs; else CliError."""
    from pytest_vdbench.manifest import discover_manifests, load_manifest, matches
    from pytest_vdbench.manifest.validate import validate_paths

    report = validate_paths(paths, root, installed_metrics(), cog_check=cog_yaml_problems)
    if report.errors:
        lines = [p.format(Path.cwd()) for p in report.errors]
        raise CliError("invalid manifest(s); fix them first (vdbench validate):\n" + "\n".join(lines))
    specs = [s for path in discover_manifests(paths) for s in load_manifest(path, root)]
    if models:
        specs = [s for s in specs if matches(s, models)]
        if not specs:
            raise CliError(f"--model {' '.join(models)}: no model matches")
    return specs


def cmd_compose(args: argparse.Namespace) -> int:
    """Write a docker-compose.yml with one service per model variant (limits, ports, GPUs, hardening)."""
    import yaml

    from pytest_vdbench.tools.compose import compose_document, stage_sdk

    root: Path = args.root or Path.cwd()
    specs = _load_specs(_default_suites(args.suite), root, args.model)
    output: Path = args.output.resolve()
    doc = compose_document(specs, output.parent, base_port=args.base_port)
    header = (
        "# Generated by `vdbench compose`: one service per model variant, with the limits, hardening and\n"
        "# 127.0.0.1-only ports of pytest-vdbench's docker runtime. Regenerate it, do not edit it.\n"
        "# Build the vdbench bases first (`vdbench images bootstrap`); `docker compose up --build`\n"
        "# (or Compose v1: `docker-compose up --build`).\n"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=120))
    if args.stage_sdk:
        from pytest_vdbench.runtime.cogyaml import image_source

        generated: dict[Path, dict[str, bytes]] = {}
        for spec in specs:
            generated.setdefault(spec.context_dir, {}).update(image_source(spec)[2])
        for context in sorted(generated):
            stage_sdk(context, generated[context])
    print(f"wrote {_rel(output, Path.cwd())}: {len(doc['services'])} service(s)")
    for name, service in doc["services"].items():
        ports = service.get("ports") or []
        where = ports[0].rsplit(":", 1)[0] if ports else "no port (network: none)"  # "127.0.0.1:HOST:CONTAINER"
        print(f"  {name:<28} {where}")
    return 0


def _add_selection(parser: argparse.ArgumentParser, *, models: bool) -> None:
    """``--suite PATH`` (repeatable) and, with ``models``, ``--model GLOB``: which manifests a command reads."""
    parser.add_argument(
        "--suite", action="append", type=Path, metavar="PATH", help="manifest or suite folder (repeatable). Default: model_suites"
    )
    if models:
        parser.add_argument("--model", action="append", metavar="GLOB", help="only models whose name or id matches (repeatable)")


def _add_compose(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    comp = sub.add_parser("compose", help=cmd_compose.__doc__, description=cmd_compose.__doc__)
    _add_selection(comp, models=True)
    comp.add_argument(
        "-o", "--output", type=Path, default=Path("docker-compose.yml"), metavar="FILE", help="Default: %(default)s"
    )
    comp.add_argument(
        "--base-port", type=int, default=18080, metavar="PORT", help="first 127.0.0.1 host port. Default: %(default)s"
    )
    comp.add_argument(
        "--no-stage-sdk",
        dest="stage_sdk",
        action="store_false",
        help="do not copy the adapter SDK to CONTEXT/.vdbench-sdk/ (the Dockerfiles COPY it; vdbench's own builds add it)",
    )
    comp.add_argument("--root", type=Path, metavar="DIR", help="project root for image.context. Default: the current folder")
    comp.set_defaults(func=cmd_compose)


def cmd_k8s(args: argparse.Namespace) -> int:
    """Write a Kubernetes Job + Service per model variant (validated against the schemas, not run on a cluster)."""
    from pytest_vdbench.tools.k8s import K8sOptions, write_all

    root: Path = args.root or Path.cwd()
    specs = _load_specs(_default_suites(args.suite), root, args.model)
    opts = K8sOptions(
        run=args.run,
        image_prefix=args.image_prefix,
        tag=args.tag,
        ttl=args.ttl,
        namespace=args.namespace,
        gpu_memory_label=args.gpu_memory_label,
        hf_cache=args.hf_cache,
    )
    written = write_all(specs, args.output.resolve(), opts)
    print(f"wrote {len(written)} file(s) to {_rel(args.output.resolve(), Path.cwd())} (Job + Service per model variant)")
    for path in written:
        print(f"  {path.name}")
    return 0


def _add_k8s(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from pytest_vdbench.tools.k8s import DEFAULT_GPU_MEMORY_LABEL

    k8s = sub.add_parser("k8s", help=cmd_k8s.__doc__, description=cmd_k8s.__doc__)
    _add_selection(k8s, models=True)
    k8s.add_argument("-o", "--output", type=Path, default=Path("k8s"), metavar="DIR", help="Default: %(default)s")
    k8s.add_argument("--run", default="manual", metavar="ID", help="run id in every label. Default: %(default)s")
    k8s.add_argument("--image-prefix", default="", metavar="REGISTRY/", help="prefix of every image (the cluster's registry)")
    k8s.add_argument("--tag", default="k8s", metavar="TAG", help="image tag. Default: %(default)s")
    k8s.add_argument("--ttl", type=int, default=3600, metavar="SECONDS", help="ttlSecondsAfterFinished. Default: %(default)s")
    k8s.add_argument("--namespace", metavar="NS", help="namespace of every resource. Default: none (kubectl's)")
    k8s.add_argument(
        "--gpu-memory-label",
        default=DEFAULT_GPU_MEMORY_LABEL,
        metavar="KEY",
        help="node label holding GPU memory in MiB (node affinity for resources.gpu_memory). Default: %(default)s",
    )
    k8s.add_argument(
        "--hf-cache",
        default="/var/cache/huggingface/hub",
        metavar="PATH",
        help="nodes' HF cache (hostPath). Default: %(default)s",
    )
    k8s.add_argument("--root", type=Path, metavar="DIR", help="project root for image.context. Default: the current folder")
    k8s.set_defaults(func=cmd_k8s)


def cmd_changed(args: argparse.Namespace) -> int:
    """Print the models a git change touches, as pytest arguments (--vdbench-model=NAME ...)."""
    from pytest_vdbench.tools.changed import GitError, changed_files, changed_models

    root: Path = args.root or Path.cwd()
    try:
        files = changed_files(root, args.base, working_tree=not args.committed)
    except GitError as exc:
        raise CliError(str(exc)) from None
    names = changed_models(files, _default_suites(args.suite), root)
    if args.format == "json":
        print(json.dumps(names))
    elif args.format == "names":
        print("\n".join(names))
    elif names:
        print(" ".join(f"--vdbench-model={name}" for name in names))
    return 0


def _add_changed(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ch = sub.add_parser("changed", help=cmd_changed.__doc__, description=cmd_changed.__doc__)
    ch.add_argument(
        "--base", default="origin/main", metavar="REF", help="compare with the merge base of REF. Default: %(default)s"
    )
    _add_selection(ch, models=False)
    ch.add_argument("--committed", action="store_true", help="only committed changes (ignore the working tree)")
    ch.add_argument(
        "--format",
        choices=("args", "names", "json"),
        default="args",
        help="args: --vdbench-model=NAME on one line (nothing when no model changed); names: one per line. Default: %(default)s",
    )
    ch.add_argument("--root", type=Path, metavar="DIR", help="project root for image.context. Default: the current folder")
    ch.set_defaults(func=cmd_changed)


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the manifest schema: the Markdown reference (--markdown) or JSON Schema (--json)."""
    from pytest_vdbench.manifest import Manifest
    from pytest_vdbench.manifest.schema_doc import manifest_reference, replace_section

    if args.json:
        print(json.dumps(Manifest.model_json_schema(), indent=2))
        return 0
    if args.diffusers_kit:
        from pytest_vdbench.tools.sdk_doc import diffusers_kit_markdown

        print(diffusers_kit_markdown(), end="")
        return 0
    text = manifest_reference()
    target: Path | None = args.write or args.check
    if target is None:
        print(text, end="")
        return 0
    try:
        current = target.read_text(encoding="utf-8")
        updated = replace_section(current, text)
    except (OSError, ValueError) as exc:
        raise CliError(f"{target}: {exc}") from None
    if args.check:
        if updated != current:
            print(f"{target}: the manifest reference is out of date; run `vdbench schema --markdown --write {target}`")
            return 1
        print(f"{target}: the manifest reference is up to date")
        return 0
    target.write_text(updated, encoding="utf-8")
    print(f"{target}: manifest reference {'unchanged' if updated == current else 'updated'}")
    return 0


def _add_schema(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sch = sub.add_parser("schema", help=cmd_schema.__doc__, description=cmd_schema.__doc__)
    kind = sch.add_mutually_exclusive_group()
    kind.add_argument("--markdown", action="store_true", help="the manifest reference as Markdown (the default)")
    kind.add_argument("--json", action="store_true", help="the manifest's JSON Schema (for editors)")
    kind.add_argument("--diffusers-kit", action="store_true", help="the DiffusersVideoAdapter reference (docs/diffusers-kit.md)")
    where = sch.add_mutually_exclusive_group()
    where.add_argument("--write", type=Path, metavar="FILE", help="replace the generated section of FILE (e.g. CONTRIBUTING.md)")
    where.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if FILE's generated section is out of date")
    sch.set_defaults(func=cmd_schema)


def cmd_history(args: argparse.Namespace) -> int:
    """Print models' figures across stored runs (the results store; newest last)."""
    from pytest_vdbench.options import DEFAULT_STORE, store_url
    from pytest_vdbench.store import StoreError, open_store
    from pytest_vdbench.store.history import format_history, history_rows

    root = Path.cwd()
    url = store_url(args.store or str(root / DEFAULT_STORE), root)
    if url is None:
        raise CliError("--store none: history needs a results store")
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        path = url.removeprefix("sqlite:///")
        raise CliError(f"{path}: no results store yet; run `pytest --vdbench` first, or give --store URL")
    try:
        store = open_store(url)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    try:
        rows = history_rows(store, list(args.models), args.metric, args.last)
    finally:
        store.close()
    text = format_history(rows, args.format)
    if text:
        print(text)
    return 0


def _add_history(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    his = sub.add_parser("history", help=cmd_history.__doc__, description=cmd_history.__doc__)
    his.add_argument("models", nargs="*", metavar="MODEL", help="model ids (name-variant); default: every model")
    his.add_argument(
        "--metric", metavar="NAME", help="one figure: startup, generate, peak_memory, quality, or any row key / quality score"
    )
    his.add_argument("--last", type=int, default=10, metavar="N", help="newest N runs per model. Default: %(default)s")
    his.add_argument("--format", choices=("text", "json", "csv"), default="text", help="Default: %(default)s")
    his.add_argument(
        "--store", metavar="URL", help="results store URL or path. Default: .vdbench/results.db in the current folder"
    )
    his.set_defaults(func=cmd_history)


#: One function per top-level subcommand, each adding its parser; a new command adds one entry.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_images,
    _add_clean,
    _add_new,
    _add_validate,
    _add_compose,
    _add_k8s,
    _add_changed,
    _add_schema,
    _add_history,
    add_ab,
]


def build_parser() -> argparse.ArgumentParser:
    """The ``vdbench`` argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="vdbench", description="pytest-vdbench helper commands")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vdbench`` console script."""
    args = build_parser().parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except CliError as exc:
        print(f"vdbench: error: {exc}", file=sys.stderr)
        return 1
    except ImageBuildError as exc:  # carries the log tail and the log path
        print(f"vdbench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
