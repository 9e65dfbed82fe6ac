"""Command-line and ini options (group ``vdbench``); values are checked when parsed."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from pytest_vdbench.runtime.slurm import SlurmOptions

__all__ = ["RUNTIMES", "VdbenchOptions", "addoption", "project_root"]

RUNTIMES = ("docker", "process", "slurm")
DEFAULT_MIN_ROUNDS = 3
DEFAULT_MIN_DURATION = 1.0
DEFAULT_REGRESSION_THRESHOLD = 0.10
DEFAULT_RESERVE_TIMEOUT = 600.0
DEFAULT_STORE = ".vdbench/results.db"
DEFAULT_MAX_DURATION = 30.0
DEFAULT_MAX_ROUNDS = 1000
DEFAULT_PRECISION = 0.05

_T = TypeVar("_T")


def parse_runtime(value: str) -> str:
    """A runtime name; whether one is registered under it (built-in or a plugin's) the session checks."""
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,40}", value):
        raise argparse.ArgumentTypeError(f"unknown runtime {value!r}; built-in runtimes: {', '.join(RUNTIMES)}")
    return value


def parse_min_rounds(value: str) -> int:
    try:
        rounds = int(value)
    except ValueError:
        rounds = -1
    if rounds < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of rounds >= 1")
    return rounds


def parse_seconds(value: str) -> float:
    try:
        seconds = float(value.removesuffix("s"))
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration in seconds >= 0 (e.g. 1 or 0.5s)")
    return seconds


def parse_precision(value: str) -> float:
    try:
        fraction = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        fraction = -1.0
    if not 0 < fraction < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a relative precision in (0, 1) (e.g. 0.05 or 5%)")
    return fraction


def parse_threshold(value: str) -> float:
    try:
        fraction = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        fraction = -1.0
    if not 0 < fraction < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a relative threshold > 0 (e.g. 0.1 or 10%)")
    return fraction


def _ini_value(config: pytest.Config, name: str, parse: Callable[[str], _T], default: _T) -> _T:
    raw = str(config.getini(name) or "")
    if not raw:
        return default
    try:
        return parse(raw)
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"ini {name} = {raw!r}: {exc}") from None


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vdbench", "vdbench: benchmark and validate containerised generative models")
    group.addoption(
        "--vdbench",
        action="store_true",
        default=False,
        help="Collect and run the model suites (without it the plugin does nothing).",
    )
    group.addoption(
        "--vdbench-suite",
        action="append",
        default=[],
        metavar="PATH",
        help="Suite directory or manifest file; repeatable. Default: ini vdbench_suites or 'model_suites'.",
    )
    group.addoption(
        "--vdbench-model",
        action="append",
        default=[],
        metavar="NAME",
        help="Only models whose name or id (name-variant) matches NAME (a glob); repeatable.",
    )
    group.addoption(
        "--vdbench-variant",
        action="append",
        default=[],
        metavar="NAME",
        help="Only these variants (e.g. tiny); repeatable. Default: all variants.",
    )
    group.addoption(
        "--vdbench-runtime",
        type=parse_runtime,
        default=None,
        metavar="RUNTIME",
        help="Where models run: docker, process or slurm (each model a Slurm job; see --vdbench-registry). "
        "Default: ini vdbench_runtime, else docker, falling back to process (with a notice) when no Docker engine answers.",
    )
    group.addoption(
        "--vdbench-report",
        default=None,
        metavar="DIR",
        help="Write report.json and report.md for the run into DIR. Default: ini vdbench_report or none.",
    )
    group.addoption(
        "--vdbench-logs",
        default=None,
        metavar="DIR",
        help="Keep the build and model process logs in DIR (one folder per xdist worker). "
        "Default: ini vdbench_logs, else DIR/logs of --vdbench-report, else a temporary folder kept only when a test fails.",
    )
    parser.addini("vdbench_logs", "Default folder for build and process logs (see --vdbench-logs).", default="")
    group.addoption(
        "--vdbench-benchmark-json",
        default=None,
        metavar="PATH",
        help="Write the run's build/startup/fit/generation timings as pytest-benchmark JSON "
        "(merged from all xdist workers). Default: none.",
    )
    group.addoption(
        "--vdbench-sandbox",
        action="store_true",
        default=None,
        help="Run every model as if its manifest said sandbox: {network: none}: no network in the "
        "container, the harness talks to the adapter over a Unix socket (docker runtime; for untrusted "
        "adapters). Default: ini vdbench_sandbox or off.",
    )
    group.addoption(
        "--vdbench-metrics",
        action="append",
        default=[],
        metavar="NAMES",
        help="Metric containers (kind: metric manifests, e.g. vbench) that score every generated output of "
        "their modality; comma-separated, repeatable. Default: ini vdbench_metrics, plus each manifest's metrics.",
    )
    parser.addini(
        "vdbench_metrics", "Metric containers enabled for every model (see --vdbench-metrics).", type="args", default=[]
    )
    parser.addini("vdbench_sandbox", "Sandbox every model (network: none); see --vdbench-sandbox.", type="bool", default=False)
    group.addoption(
        "--vdbench-min-rounds",
        type=parse_min_rounds,
        default=None,
        metavar="N",
        help="A timing is VALID only with at least N timed rounds (warmup excluded). "
        f"Default: ini vdbench_min_rounds or {DEFAULT_MIN_ROUNDS}.",
    )
    group.addoption(
        "--vdbench-min-duration",
        type=parse_seconds,
        default=None,
        metavar="SECONDS",
        help="A timing is VALID only when its timed rounds last at least SECONDS in total. "
        f"Default: ini vdbench_min_duration or {DEFAULT_MIN_DURATION:g}.",
    )
    group.addoption(
        "--vdbench-max-duration",
        type=parse_seconds,
        default=None,
        metavar="SECONDS",
        help="Stop timing a case after SECONDS of timed rounds (a timing capped before its median is precise is INVALID). "
        f"Default: ini vdbench_max_duration or {DEFAULT_MAX_DURATION:g}.",
    )
    group.addoption(
        "--vdbench-max-rounds",
        type=parse_min_rounds,
        default=None,
        metavar="N",
        help=f"Stop timing a case after N timed rounds. Default: ini vdbench_max_rounds or {DEFAULT_MAX_ROUNDS}.",
    )
    group.addoption(
        "--vdbench-precision",
        type=parse_precision,
        default=None,
        metavar="FRACTION",
        help="Time rounds until the 95%% confidence interval of the median lies within +-FRACTION of it (0.05 or 5%%). "
        f"Default: ini vdbench_precision or {DEFAULT_PRECISION:g}.",
    )
    group.addoption(
        "--vdbench-compare",
        default=None,
        metavar="PATH",
        help="A previous run's report.json, or last / run:ID from the results store: per-model deltas and "
        "regressions in the reports and the summary. Default: none.",
    )
    group.addoption(
        "--vdbench-regression-threshold",
        type=parse_threshold,
        default=None,
        metavar="FRACTION",
        help="With --vdbench-compare: a change for the worse beyond FRACTION (0.1 or 10%%) is a regression. "
        f"Default: ini vdbench_regression_threshold or {DEFAULT_REGRESSION_THRESHOLD:g}.",
    )
    group.addoption(
        "--vdbench-fail-on-regression",
        action="store_true",
        default=False,
        help="With --vdbench-compare: exit non-zero when a regression is found. Default: off.",
    )
    group.addoption(
        "--vdbench-allow-path",
        action="append",
        default=[],
        metavar="DIR",
        help="Let manifests' datasets, image contexts and Dockerfiles resolve inside DIR although it lies outside "
        "the project (by default they must resolve inside it, symlinks followed); repeatable. "
        "Default: ini vdbench_allow_paths and env VDBENCH_ALLOW_PATH, else none.",
    )
    parser.addini(
        "vdbench_allow_paths",
        "Folders outside the project manifests may use; see --vdbench-allow-path.",
        type="paths",
        default=[],
    )
    group.addoption(
        "--vdbench-reserve-timeout",
        type=parse_seconds,
        default=None,
        metavar="SECONDS",
        help="How long a model waits for CPUs, memory and GPUs held by other models before its first test fails "
        f"naming the holders. Default: ini vdbench_reserve_timeout or {DEFAULT_RESERVE_TIMEOUT:g}.",
    )
    parser.addini(
        "vdbench_reserve_timeout", f"Seconds a model waits for resources (default {DEFAULT_RESERVE_TIMEOUT:g}).", default=""
    )
    parser.addini("vdbench_min_rounds", f"Minimum timed rounds for a VALID timing (default {DEFAULT_MIN_ROUNDS}).", default="")
    parser.addini(
        "vdbench_min_duration", f"Minimum total seconds of timed rounds (default {DEFAULT_MIN_DURATION:g}).", default=""
    )
    parser.addini(
        "vdbench_max_duration", f"Seconds of timed rounds per case at most (default {DEFAULT_MAX_DURATION:g}).", default=""
    )
    parser.addini("vdbench_max_rounds", f"Timed rounds per case at most (default {DEFAULT_MAX_ROUNDS}).", default="")
    parser.addini("vdbench_precision", f"Relative precision of each median (default {DEFAULT_PRECISION:g}).", default="")
    parser.addini(
        "vdbench_regression_threshold",
        f"Relative change counted as a regression (default {DEFAULT_REGRESSION_THRESHOLD:g}).",
        default="",
    )
    _add_store_options(parser, group)
    _add_slurm_options(group, parser)
    parser.addini("vdbench_suites", "Suite directories or manifests (default: model_suites).", type="paths", default=[])
    parser.addini("vdbench_runtime", "Default runtime: docker, process or slurm.", default="")
    parser.addini("vdbench_report", "Default report directory.", default="")


def parse_age(value: str) -> float:
    """``7d``, ``12h``, ``30m``, ``90s`` or plain seconds -> seconds."""
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    number, unit = (value[:-1], units[value[-1]]) if value and value[-1] in units else (value, 1.0)
    try:
        seconds = float(number) * unit
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not an age > 0 (e.g. 7d, 12h, 30m or 3600)")
    return seconds


def parse_resume(value: str) -> str:
    if value != "last" and not re.fullmatch(r"[0-9a-f]{4,64}", value):
        raise argparse.ArgumentTypeError(f"{value!r} is neither 'last' nor a run id (hex, as `vdbench history` prints it)")
    return value


def _add_store_options(parser: pytest.Parser, group: pytest.OptionGroup) -> None:
    group.addoption(
        "--vdbench-store",
        default=None,
        metavar="URL",
        help="Results store: a SQLAlchemy URL (postgresql://USER@HOST/DB, sqlite:///PATH), a file path, or none. "
        f"Default: ini vdbench_store or {DEFAULT_STORE} under the project root.",
    )
    group.addoption(
        "--vdbench-reuse",
        action="store_true",
        default=None,
        help="Do not rerun a model whose key (image content, manifest, plugin, host class, measurement options) "
        "equals a stored passed run's: reuse its results. Default: ini vdbench_reuse or off.",
    )
    group.addoption(
        "--vdbench-no-reuse", action="store_true", default=False, help="Rerun every model (overrides ini vdbench_reuse)."
    )
    group.addoption(
        "--vdbench-reuse-max-age",
        type=parse_age,
        default=None,
        metavar="AGE",
        help="With --vdbench-reuse: only results measured within AGE (7d, 12h, 30m). "
        "Default: ini vdbench_reuse_max_age or no limit.",
    )
    group.addoption(
        "--vdbench-resume",
        type=parse_resume,
        default=None,
        metavar="RUN",
        help="Continue an interrupted run (last, or a run id): its finished models are not rerun; reports cover the whole run.",
    )
    group.addoption(
        "--vdbench-keep-outputs",
        action="store_true",
        default=False,
        help="Keep every seeded output tensor in the store (up to 64 MiB each): drift reports then give max |diff|. "
        "Default: digests and statistics only.",
    )
    parser.addini("vdbench_store", f"Results store URL or path, or none (default {DEFAULT_STORE}).", default="")
    parser.addini("vdbench_reuse", "Reuse unchanged models' stored results (see --vdbench-reuse).", type="bool", default=False)
    parser.addini("vdbench_reuse_max_age", "Oldest results --vdbench-reuse takes (e.g. 7d).", default="")


def _add_slurm_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    """--vdbench-registry and --vdbench-slurm-*: read by runtime.slurm.SlurmOptions (README: Running on a cluster)."""
    group.addoption(
        "--vdbench-registry",
        default=None,
        metavar="HOST:PORT[/PREFIX]",
        help="slurm runtime: the registry the nodes pull from; each image is pushed once per content hash "
        "and run by digest. Default: ini vdbench_registry.",
    )
    group.addoption(
        "--vdbench-slurm-dir",
        default=None,
        metavar="DIR",
        help="slurm runtime: the run directory on a filesystem shared with the nodes (job scripts, logs, "
        "rendezvous files). Default: ini vdbench_slurm_dir or ~/.cache/vdbench/slurm.",
    )
    group.addoption(
        "--vdbench-slurm-launcher",
        default=None,
        metavar="NAME",
        help="slurm runtime: what starts the container on the node: docker, podman, apptainer or pyxis "
        "(the last two untested here). Default: ini vdbench_slurm_launcher or docker.",
    )
    group.addoption(
        "--vdbench-slurm-partition",
        default=None,
        metavar="NAME",
        help="slurm runtime: sbatch --partition. Default: ini vdbench_slurm_partition or the cluster's default.",
    )
    group.addoption(
        "--vdbench-slurm-queue-timeout",
        type=parse_seconds,
        default=None,
        metavar="SECONDS",
        help="slurm runtime: fail test_health when a job stays PENDING longer (overrides every manifest's "
        "timeouts.queue). Default: ini vdbench_slurm_queue_timeout, else timeouts.queue (10m).",
    )
    parser.addini("vdbench_registry", "slurm runtime: registry HOST:PORT[/prefix] (see --vdbench-registry).", default="")
    parser.addini("vdbench_slurm_dir", "slurm runtime: shared run directory (see --vdbench-slurm-dir).", default="")
    parser.addini("vdbench_slurm_launcher", "slurm runtime: docker, podman, apptainer or pyxis.", default="")
    parser.addini("vdbench_slurm_partition", "slurm runtime: sbatch --partition.", default="")
    parser.addini("vdbench_slurm_queue_timeout", "slurm runtime: longest PENDING wait (overrides timeouts.queue).", default="")
    parser.addini(
        "vdbench_slurm_gpu_constraints",
        "slurm runtime: GPU memory to --constraint, e.g. '16g=gpumem16g 80g=a100_80g' (smallest that fits).",
        default="",
    )
    parser.addini("vdbench_slurm_sbatch_args", "slurm runtime: extra sbatch arguments (e.g. --account=abc).", default="")


def slurm_options(config: pytest.Config) -> SlurmOptions:
    """The slurm runtime's options from the command line and ini; a bad value is one usage error."""
    import shlex

    from pytest_vdbench.runtime.registry import parse_registry
    from pytest_vdbench.runtime.slurm import SlurmOptions, parse_constraints
    from pytest_vdbench.runtime.slurm_job import LAUNCHERS

    def pick(name: str) -> str:
        return str(config.getoption(name) or config.getini(name) or "")

    registry = None
    if raw := pick("vdbench_registry"):
        try:
            registry = parse_registry(raw)
        except argparse.ArgumentTypeError as exc:
            raise pytest.UsageError(f"--vdbench-registry / ini vdbench_registry: {exc}") from None
    launcher = pick("vdbench_slurm_launcher") or "docker"
    if launcher not in LAUNCHERS:
        raise pytest.UsageError(f"--vdbench-slurm-launcher {launcher!r}: valid launchers: {', '.join(LAUNCHERS)}")
    queue = config.getoption("vdbench_slurm_queue_timeout")
    if queue is None and (ini := str(config.getini("vdbench_slurm_queue_timeout") or "")):
        try:
            queue = parse_seconds(ini)
        except argparse.ArgumentTypeError as exc:
            raise pytest.UsageError(f"ini vdbench_slurm_queue_timeout = {ini!r}: {exc}") from None
    try:
        constraints = parse_constraints(str(config.getini("vdbench_slurm_gpu_constraints") or ""))
    except ValueError as exc:
        raise pytest.UsageError(f"ini vdbench_slurm_gpu_constraints: {exc}") from None
    run_dir = Path(pick("vdbench_slurm_dir") or Path.home() / ".cache" / "vdbench" / "slurm").expanduser()
    return SlurmOptions(
        registry=registry,
        run_dir=run_dir.absolute(),
        launcher=launcher,
        partition=pick("vdbench_slurm_partition") or None,
        queue_timeout=queue,
        gpu_constraints=constraints,
        sbatch_args=tuple(shlex.split(str(config.getini("vdbench_slurm_sbatch_args") or ""))),
    )


def project_root(config: pytest.Config) -> Path:
    """Where ``model_suites/`` lives: the invocation folder if it has one, else the rootdir.

    Not the rootdir alone: pytest derives it (and the ini file) from the command line's paths
    before plugin options are known, so an option value that is an existing folder
    (``--vdbench-report /tmp/out``) can pass for one.
    """
    here = Path(config.invocation_params.dir)
    for candidate in (here, config.rootpath):
        if (candidate / "model_suites").is_dir():
            return candidate
    return here


@dataclass(frozen=True)
class VdbenchOptions:
    """The options of one run, validated."""

    enabled: bool
    suites: tuple[Path, ...]
    models: tuple[str, ...]
    variants: tuple[str, ...]
    runtime: str | None
    runtime_explicit: bool
    report_dir: Path | None
    #: where build and process logs go when the user asked (--vdbench-logs, else the report's logs/)
    logs_dir: Path | None = None
    benchmark_json: Path | None = None
    min_rounds: int = DEFAULT_MIN_ROUNDS
    min_duration: float = DEFAULT_MIN_DURATION
    max_duration: float = DEFAULT_MAX_DURATION
    max_rounds: int = DEFAULT_MAX_ROUNDS
    precision: float = DEFAULT_PRECISION
    compare: Path | str | None = None  # a report.json, or "last" / "run:ID" from the store
    regression_threshold: float = DEFAULT_REGRESSION_THRESHOLD
    fail_on_regression: bool = False
    sandbox: bool = False
    reserve_timeout: float = DEFAULT_RESERVE_TIMEOUT
    allow_paths: tuple[Path, ...] = ()
    metrics: tuple[str, ...] = ()
    store: str | None = None  # a SQLAlchemy URL; None: no store
    reuse: bool = False
    reuse_max_age: float | None = None
    resume: str | None = None
    keep_outputs: bool = False

    @classmethod
    def from_config(cls, config: pytest.Config) -> VdbenchOptions:
        root = project_root(config)
        suites = [Path(p) for p in config.getoption("vdbench_suite")]
        given = bool(suites)
        if not suites:
            suites = [Path(p) for p in config.getini("vdbench_suites")] or [root / "model_suites"]
        suites = [p if p.is_absolute() else Path(config.invocation_params.dir) / p for p in suites]
        enabled = bool(config.getoption("vdbench"))
        if enabled:
            missing = [str(p) for p in suites if not p.exists()]
            if missing and not given and config.args_source == pytest.Config.ArgsSource.ARGS:
                suites = [p for p in suites if p.exists()]  # paths named instead (`pytest --vdbench ../x.yaml`)
            elif missing:
                raise pytest.UsageError(
                    f"--vdbench-suite: {', '.join(missing)} does not exist; give a suite directory or a manifest file"
                )
        runtime = config.getoption("vdbench_runtime")
        explicit = runtime is not None
        if runtime is None:
            ini = str(config.getini("vdbench_runtime") or "")
            if ini:
                try:
                    parse_runtime(ini)
                except argparse.ArgumentTypeError:
                    known = ", ".join(RUNTIMES)
                    raise pytest.UsageError(f"ini vdbench_runtime = {ini!r} is not a runtime name (e.g. {known})") from None
                runtime, explicit = ini, True
        bench_json = config.getoption("vdbench_benchmark_json")
        report = config.getoption("vdbench_report") or str(config.getini("vdbench_report") or "") or None
        return cls(
            enabled=enabled,
            suites=tuple(suites),
            models=tuple(config.getoption("vdbench_model")),
            variants=tuple(config.getoption("vdbench_variant")),
            runtime=runtime,
            runtime_explicit=explicit,
            report_dir=Path(report) if report else None,
            logs_dir=_logs_dir(config, Path(report) if report else None),
            benchmark_json=Path(bench_json) if bench_json else None,
            min_rounds=_option_or_ini(config, "vdbench_min_rounds", parse_min_rounds, DEFAULT_MIN_ROUNDS),
            min_duration=_option_or_ini(config, "vdbench_min_duration", parse_seconds, DEFAULT_MIN_DURATION),
            max_duration=_option_or_ini(config, "vdbench_max_duration", parse_seconds, DEFAULT_MAX_DURATION),
            max_rounds=_option_or_ini(config, "vdbench_max_rounds", parse_min_rounds, DEFAULT_MAX_ROUNDS),
            precision=_option_or_ini(config, "vdbench_precision", parse_precision, DEFAULT_PRECISION),
            compare=_compare_path(config),
            regression_threshold=_option_or_ini(
                config, "vdbench_regression_threshold", parse_threshold, DEFAULT_REGRESSION_THRESHOLD
            ),
            fail_on_regression=bool(config.getoption("vdbench_fail_on_regression")),
            sandbox=bool(config.getoption("vdbench_sandbox") or config.getini("vdbench_sandbox")),
            reserve_timeout=_option_or_ini(config, "vdbench_reserve_timeout", parse_seconds, DEFAULT_RESERVE_TIMEOUT),
            allow_paths=_allow_paths(config),
            metrics=_metric_names(config),
            **_store_options(config, root),
        )


def _option_or_ini(config: pytest.Config, name: str, parse: Callable[[str], _T], default: _T) -> _T:
    value = config.getoption(name)
    return _ini_value(config, name, parse, default) if value is None else value


def parse_metric_names(values: list[str]) -> tuple[str, ...]:
    """``["vbench,clip", "x"]`` -> ``("vbench", "clip", "x")`` (comma lists, repeatable, unique)."""
    names = [part.strip() for value in values for part in str(value).split(",")]
    return tuple(dict.fromkeys(n for n in names if n))


def _metric_names(config: pytest.Config) -> tuple[str, ...]:
    given = config.getoption("vdbench_metrics")
    return parse_metric_names(given if given else [str(v) for v in config.getini("vdbench_metrics")])


def store_url(value: str, root: Path) -> str | None:
    """``none`` -> None; a path (relative to ``root``) -> a SQLite URL; a URL stays (postgresql -> psycopg 3)."""
    if value.strip().lower() == "none":
        return None
    if "://" not in value:
        path = Path(value)
        path = path if path.is_absolute() else root / path
        return f"sqlite:///{path}"
    scheme, _, rest = value.partition("://")
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return value


def _store_options(config: pytest.Config, root: Path) -> dict[str, Any]:
    raw = config.getoption("vdbench_store") or str(config.getini("vdbench_store") or "") or str(root / DEFAULT_STORE)
    url = store_url(raw, root)
    reuse = bool(config.getoption("vdbench_reuse") or config.getini("vdbench_reuse")) and not config.getoption("vdbench_no_reuse")
    resume = config.getoption("vdbench_resume")
    needs = [flag for flag, on in (("--vdbench-reuse", reuse), ("--vdbench-resume", resume)) if on]
    if url is None and needs:
        raise pytest.UsageError(f"{needs[0]} needs the results store; drop --vdbench-store=none (or ini vdbench_store = none)")
    if reuse and resume:
        raise pytest.UsageError("--vdbench-reuse and --vdbench-resume are exclusive: a resumed run keeps its own results")
    return {
        "store": url,
        "reuse": reuse,
        "reuse_max_age": _option_or_ini(config, "vdbench_reuse_max_age", parse_age, None),
        "resume": resume,
        "keep_outputs": bool(config.getoption("vdbench_keep_outputs")),
    }


def _compare_path(config: pytest.Config) -> Path | str | None:
    value = config.getoption("vdbench_compare")
    if not value:
        if config.getoption("vdbench_fail_on_regression"):
            raise pytest.UsageError("--vdbench-fail-on-regression needs --vdbench-compare PATH (a previous report.json)")
        return None
    if value == "last" or value.startswith("run:"):
        return str(value)  # a baseline from the results store
    path = Path(value)
    return path if path.is_absolute() else Path(config.invocation_params.dir) / path


def _allow_paths(config: pytest.Config) -> tuple[Path, ...]:
    """--vdbench-allow-path folders (relative to the invocation folder), then the ini's; each must exist."""
    here = Path(config.invocation_params.dir)
    given = [here / p for p in config.getoption("vdbench_allow_path")]
    missing = [str(p) for p in given if not p.is_dir()]
    if missing:
        raise pytest.UsageError(f"--vdbench-allow-path: {', '.join(missing)} is not a folder")
    return (*given, *(Path(p) for p in config.getini("vdbench_allow_paths")))


def _logs_dir(config: pytest.Config, report_dir: Path | None) -> Path | None:
    value = config.getoption("vdbench_logs") or str(config.getini("vdbench_logs") or "")
    if value:
        path = Path(value)
        return path if path.is_absolute() else Path(config.invocation_params.dir) / path
    if report_dir is not None:
        return (report_dir if report_dir.is_absolute() else Path(config.invocation_params.dir) / report_dir) / "logs"
    return None
