"""``vdbench ab``: time a model and its baseline in alternation on this host, and judge the change.

``--vdbench-compare`` judges two separate runs; on a shared host their medians differ by the host's
own drift. Here both sides are started side by side and every case is timed cycle by cycle on
both (:mod:`pytest_vdbench.interleave`), so a change that shows is the model's. The baseline is
another manifest, or the same manifest with its build context as a git ref holds them
(``--base-ref main``: what a pull request changes).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_vdbench.manifest import ManifestError, ModelSpec, discover_manifests, load_manifest

if TYPE_CHECKING:  # the timing machinery is imported when the command runs: `vdbench --help` stays fast
    from pytest_vdbench.run import ModelRun
    from pytest_vdbench.timing import TimingPolicy

__all__ = ["add_ab", "cmd_ab"]


class AbError(Exception):
    """A usage or set-up problem: one line, exit status 2."""


def _project(path: Path) -> Path:
    """The git work tree holding ``path`` (the project), else its folder."""
    out = subprocess.run(["git", "-C", str(path.parent), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    return Path(out.stdout.strip()) if out.returncode == 0 else path.parent


def _manifest(arg: str) -> tuple[Path, str | None]:
    """``arg`` as a manifest file, or as a model id (NAME or NAME-VARIANT) under ./model_suites/; with the variant an id names."""
    path = Path(arg)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path.resolve(), None
    suites = Path("model_suites")
    for manifest in discover_manifests([suites]) if suites.is_dir() else []:
        try:
            specs = load_manifest(manifest, Path.cwd())
        except ManifestError:
            continue
        for spec in specs:
            if arg == spec.name:
                return manifest.resolve(), None
            if arg == spec.id:
                return manifest.resolve(), spec.variant
    raise AbError(f"{arg}: neither a manifest file nor a model under ./model_suites/")


def _pairs(base: Path, base_root: Path, new: Path, root: Path, variant: str | None) -> list[tuple[ModelSpec | None, ModelSpec]]:
    """(baseline, model) per variant to time: ``variant``, else every variant of the model (None: the baseline lacks it)."""
    sides = []
    for path, folder in ((base, base_root), (new, root)):
        try:
            sides.append({s.variant: s for s in load_manifest(path, folder)})
        except (ManifestError, OSError) as exc:
            raise AbError(f"{path}: {exc}") from None
    old, current = sides
    if variant is None:
        return [(old.get(name), spec) for name, spec in current.items()]
    for side, path in ((old, base), (current, new)):
        if variant not in side:
            raise AbError(f"{path}: no variant {variant!r} (variants: {', '.join(side)})")
    return [(old[variant], current[variant])]


@contextmanager
def _at_ref(root: Path, ref: str) -> Iterator[Path]:
    """The project's tracked files as ``ref`` holds them, in a temporary folder (``git archive``)."""
    with tempfile.TemporaryDirectory(prefix="vdbench-ab-base-") as tmp:
        archive = Path(tmp) / "base.tar"
        with archive.open("wb") as fh:
            out = subprocess.run(
                ["git", "-C", str(root), "archive", "--format=tar", ref], stdout=fh, stderr=subprocess.PIPE, text=False
            )
        if out.returncode != 0:
            raise AbError(f"--base-ref {ref}: git archive failed: {out.stderr.decode(errors='replace').strip()}")
        tree = Path(tmp) / "tree"
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
        yield tree


def _runtime(name: str, work: Path, sandbox: bool) -> Any:
    from pytest_vdbench.protocols import PROTOCOLS, ready_probe
    from pytest_vdbench.runtime import RuntimeContext, RuntimeUnavailable, builtin_runtimes

    context = RuntimeContext(
        work_dir=work, testrun=uuid.uuid4().hex[:12], sandbox=sandbox, explicit=True, protocols=PROTOCOLS,
        ready_probe=lambda manifest, endpoint: ready_probe(manifest, endpoint, PROTOCOLS), log=print,
    )  # fmt: skip
    try:
        return builtin_runtimes().create(name, context)
    except RuntimeUnavailable as exc:
        raise AbError(f"--runtime {name}: {exc}") from None


def _judge(runs: list[ModelRun], cases: list[str], policy: TimingPolicy, threshold: float) -> list[dict[str, Any]]:
    """Each case timed in alternation; an adapter failing mid-way ends it as ``SideFailed``."""
    from pytest_vdbench.interleave import time_interleaved, verdict

    results = []
    for case in cases:
        timed = time_interleaved(runs, case, policy)
        change = timed.change()
        results.append({
            "case": case, "verdict": verdict(change, threshold), "cycles": len(timed.rounds[0]), "stopped": timed.stopped,
            "base_median": statistics.median(timed.rounds[0]), "new_median": statistics.median(timed.rounds[1]),
            "change": None if change is None else change.ratio - 1,
            "interval": None if change is None else [change.low - 1, change.high - 1],
            "describe": "no rounds" if change is None else change.describe(),
            "base_rounds": timed.rounds[0], "new_rounds": timed.rounds[1],
        })  # fmt: skip
    return results


def _both_fit(base: ModelSpec, new: ModelSpec, host: Any) -> None:
    """Both sides run at once: refuse at once, naming the figures, what would otherwise wait on the ledger."""
    from pytest_vdbench.runtime.host import format_bytes

    a, b = base.manifest.resources, new.manifest.resources
    problems = []
    if a.cpus + b.cpus > host.cpus:
        problems.append(f"{a.cpus:g} + {b.cpus:g} CPUs > this host's {host.cpus}")
    if host.memory_total and a.memory + b.memory > host.memory_total:
        total = format_bytes(host.memory_total)
        problems.append(f"{format_bytes(a.memory)} + {format_bytes(b.memory)} memory > this host's {total}")
    if (a.gpus or b.gpus) and a.gpus + b.gpus > len(host.gpus):
        problems.append(f"{a.gpus} + {b.gpus} GPUs > this host's {len(host.gpus)}")
    if problems:
        raise AbError(f"{new.id}: both sides run at once and do not fit: {'; '.join(problems)} (resources: in the manifest)")


def _time_pair(base: ModelSpec, new: ModelSpec, runtime: Any, policy: TimingPolicy, args: argparse.Namespace) -> dict[str, Any]:
    """Start the baseline and the model side by side, time their cases in alternation, stop both."""
    from pytest_vdbench.interleave import SideFailed
    from pytest_vdbench.run import ModelRun, ModelUnavailable
    from pytest_vdbench.runtime.host import probe_host, unmet_requirements

    host = probe_host()
    unmet = unmet_requirements(new, host, runtime=runtime.name)
    if unmet is not None:  # a GPU variant on a CPU host, weights not in the cache: skipped, as pytest --vdbench would
        return {"model": new.id, "status": f"skipped: {unmet}", "cases": []}
    if runtime.name == "docker":
        _both_fit(base, new, host)
    runs = [ModelRun(spec, runtime, timing=policy) for spec in (base, new)]
    try:
        for run, side in zip(runs, ("baseline", "model"), strict=True):
            try:
                run.ensure_started()
            except ModelUnavailable as exc:  # not on this host (a GPU variant, say): skipped, as pytest would
                return {"model": new.id, "status": f"skipped: {exc}", "cases": []}
            except Exception as exc:
                raise AbError(f"{side} {run.spec.id}: {exc}") from None
        cases = args.case or [c.id for c in new.manifest.cases]
        try:
            return {"model": new.id, "status": "timed", "cases": _judge(runs, cases, policy, args.threshold)}
        except SideFailed as exc:  # a verdict of its own: the model (or its baseline) broke while timed
            side, first = ("baseline", "model")[exc.side], str(exc).splitlines()[0]
            status = f"failed: the {side} {runs[exc.side].spec.id}: {first}"
            return {"model": new.id, "status": status, "cases": [], "failed": True, "error": str(exc)}
        except (KeyError, OSError, RuntimeError) as exc:
            raise AbError(f"{new.id}: {exc}") from None
    finally:
        for run in runs:
            run.stop()


def _print(models: list[dict[str, Any]], base: str, threshold: float) -> None:
    print(f"vdbench ab: against {base}, timed in alternation (threshold {threshold:.0%})")
    for model in models:
        print(f"  {model['model']}: {model['status']}")
        for r in model["cases"]:
            ms = f"{1000 * (r['base_median'] or math.nan):.1f} ms -> {1000 * (r['new_median'] or math.nan):.1f} ms"
            print(f"    {r['case']}: {ms}, {r['describe']}, {r['cycles']} cycles ({r['stopped']}): {r['verdict'].upper()}")


def cmd_ab(args: argparse.Namespace) -> int:
    """Time a model and its baseline in alternation on this host; exit 1 when a case regressed."""
    try:
        return _ab(args)
    except AbError as exc:
        print(f"vdbench ab: {exc}")
        return 2


def _ab(args: argparse.Namespace) -> int:
    from pytest_vdbench.timing import TimingPolicy

    if (args.base is None) == (args.base_ref is None):
        raise AbError("give the baseline as BASE (a manifest) or as --base-ref REF, not both nor neither")
    new_path, named = _manifest(args.new)
    root = _project(new_path)
    policy = TimingPolicy(min_duration=args.min_duration, max_duration=args.max_duration, precision=args.precision)
    with ExitStack() as stack:
        if args.base_ref is not None:
            tree = stack.enter_context(_at_ref(root, args.base_ref))
            base_path, base_root, label = tree / new_path.relative_to(root), tree, args.base_ref
            if not base_path.is_file():  # a model this change adds: no baseline, nothing to judge
                print(f"vdbench ab: {new_path.relative_to(root)} is not in {args.base_ref}: a new model, nothing to compare with")
                return 0
        else:
            base_path, _ = _manifest(args.base)
            base_root, label = _project(base_path), str(base_path)
        pairs = _pairs(base_path, base_root, new_path, root, args.variant or named)
        runtime = _runtime(
            args.runtime, Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vdbench-ab-"))), args.sandbox
        )
        stack.callback(runtime.close)  # its client, its ledger file: before the work folder goes
        models: list[dict[str, Any]] = [
            _time_pair(old, spec, runtime, policy, args) if old is not None
            else {"model": spec.id, "status": f"a new variant: not in {label}", "cases": []}
            for old, spec in pairs
        ]  # fmt: skip
    if args.format == "json":
        print(json.dumps({"base": label, "new": str(new_path), "threshold": args.threshold, "models": models}, indent=2))
    else:
        _print(models, label, args.threshold)
    failed = any(m.get("failed") for m in models)
    return 1 if failed or any(r["verdict"] == "regression" for m in models for r in m["cases"]) else 0


def add_ab(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ab = sub.add_parser("ab", help=cmd_ab.__doc__, description=__doc__)
    ab.add_argument("new", metavar="MODEL", help="the model to judge: a manifest file, or a model id under ./model_suites/")
    ab.add_argument("base", nargs="?", metavar="BASE", help="the baseline: a manifest file or model id (or give --base-ref)")
    ab.add_argument("--base-ref", metavar="REF", help="the baseline: MANIFEST and its context as this git ref holds them")
    ab.add_argument("--variant", help="time only this variant on both sides. Default: every variant (one pair at a time)")
    ab.add_argument("--case", action="append", metavar="ID", help="time only this case (repeatable). Default: every case")
    ab.add_argument("--runtime", choices=("docker", "process"), default="docker", help="Default: %(default)s")
    ab.add_argument("--sandbox", action="store_true", help="the harness sandbox, as --vdbench-sandbox")
    ab.add_argument(
        "--threshold", type=float, default=0.10, help="a regression is slower by more than this. Default: %(default)s"
    )
    ab.add_argument("--min-duration", type=float, default=1.0, help="timed seconds per side at least. Default: %(default)s")
    ab.add_argument("--max-duration", type=float, default=30.0, help="timed seconds per side at most. Default: %(default)s")
    ab.add_argument("--precision", type=float, default=0.05, help="stop once each median is known to this. Default: %(default)s")
    ab.add_argument("--format", choices=("text", "json"), default="text", help="Default: %(default)s")
    ab.set_defaults(func=cmd_ab)
