"""Command-line and ini options (group ``vdbench``); values are checked when parsed."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

__all__ = ["RUNTIMES", "VdbenchOptions", "addoption", "project_root"]

RUNTIMES = ("docker", "process")
DEFAULT_MIN_ROUNDS = 3
DEFAULT_MIN_DURATION = 1.0
DEFAULT_REGRESSION_THRESHOLD = 0.10
DEFAULT_RESERVE_TIMEOUT = 600.0
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
        help="Where models run: docker or process. Default: ini vdbench_runtime, else docker, "
        "falling back to process (with a notice) when no Docker engine answers.",
    )
    group.addoption(
        "--vdbench-report",
        default=None,
        metavar="DIR",
        help="Write report.json and report.md for the run into DIR. Default: ini vdbench_report or none.",
    )
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
        help="A previous run's report.json: per-model deltas and regressions in the reports and the summary. Default: none.",
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
    parser.addini("vdbench_suites", "Suite directories or manifests (default: model_suites).", type="paths", default=[])
    parser.addini("vdbench_runtime", "Default runtime: docker or process.", default="")
    parser.addini("vdbench_report", "Default report directory.", default="")


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
    benchmark_json: Path | None = None
    min_rounds: int = DEFAULT_MIN_ROUNDS
    min_duration: float = DEFAULT_MIN_DURATION
    max_duration: float = DEFAULT_MAX_DURATION
    max_rounds: int = DEFAULT_MAX_ROUNDS
    precision: float = DEFAULT_PRECISION
    compare: Path | None = None
    regression_threshold: float = DEFAULT_REGRESSION_THRESHOLD
    fail_on_regression: bool = False
    sandbox: bool = False
    reserve_timeout: float = DEFAULT_RESERVE_TIMEOUT
    allow_paths: tuple[Path, ...] = ()

    @classmethod
    def from_config(cls, config: pytest.Config) -> VdbenchOptions:
        root = project_root(config)
        suites = [Path(p) for p in config.getoption("vdbench_suite")]
        if not suites:
            suites = [Path(p) for p in config.getini("vdbench_suites")] or [root / "model_suites"]
        suites = [p if p.is_absolute() else Path(config.invocation_params.dir) / p for p in suites]
        enabled = bool(config.getoption("vdbench"))
        if enabled:
            missing = [str(p) for p in suites if not p.exists()]
            if missing:
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
        )


def _option_or_ini(config: pytest.Config, name: str, parse: Callable[[str], _T], default: _T) -> _T:
    value = config.getoption(name)
    return _ini_value(config, name, parse, default) if value is None else value


def _compare_path(config: pytest.Config) -> Path | None:
    value = config.getoption("vdbench_compare")
    if not value:
        if config.getoption("vdbench_fail_on_regression"):
            raise pytest.UsageError("--vdbench-fail-on-regression needs --vdbench-compare PATH (a previous report.json)")
        return None
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
