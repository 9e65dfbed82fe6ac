"""``VdbenchSession``: the run's state and the hooks that act on it (registered only with --vdbench)."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_vdbench.checks.scorers import Scorer
from pytest_vdbench.collect import ManifestFile, VariantModule
from pytest_vdbench.manifest import MAX_MANIFEST_BYTES, ModelSpec, discover_manifests, matches
from pytest_vdbench.manifest.validate import Problem, key_line, load_problems
from pytest_vdbench.options import VdbenchOptions, project_root
from pytest_vdbench.protocols import ProtocolRegistry
from pytest_vdbench.role import LEAVE_OUT_KEY, XdistRole
from pytest_vdbench.run import ModelRun
from pytest_vdbench.runtime import RuntimeContext, RuntimeRegistry, RuntimeUnavailable, builtin_runtimes
from pytest_vdbench.runtime.host import HostInfo, probe_host
from pytest_vdbench.runtime.owners import (
    OWNER_FILE,
    FolderInUse,
    claim_folder,
    mark_kept,
    owner,
    release_folder,
    sweep_dead_files,
)
from pytest_vdbench.timing import TimingPolicy

if TYPE_CHECKING:
    from pytest_vdbench.runtime import BuildInfo, Instance, Runtime

__all__ = ["SESSION_KEY", "VdbenchSession"]

SESSION_KEY = pytest.StashKey["VdbenchSession"]()
#: the run's runtimes and protocols: built-ins plus ``pytest_vdbench_add_runtimes/protocols`` hooks
RUNTIMES_KEY = pytest.StashKey[RuntimeRegistry]()
PROTOCOLS_KEY = pytest.StashKey[ProtocolRegistry]()
#: where metric containers' manifests live besides the suites (README, "Metric containers")
METRICS_DIR = Path("model_suites") / "metrics"


def named_manifests(config: pytest.Config) -> list[Path]:
    """Manifest files named on the command line (``x.yaml`` or ``x.yaml::x-tiny::test_generate[fox]``).

    They are loaded like suites, so an id copied from a run with ``--vdbench-suite ELSEWHERE``
    reruns without that option.
    """
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return []
    found = []
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0])
        if path.suffix in (".yaml", ".yml") and path.is_file():
            found.append(path)
    return found


@dataclass(frozen=True)
class BrokenManifest:
    """A manifest that does not load, or repeats an earlier manifest's model name: its file is
    collected as one failing test (``x.yaml::manifest``), so the other manifests still run."""

    path: Path
    problems: tuple[Problem, ...]
    specs: tuple[ModelSpec, ...] = ()  # it loaded, but its model name is taken

    def selected(self, options: VdbenchOptions) -> bool:
        """Whether ``--vdbench-model``/``--vdbench-variant`` keep it: its model name as written
        (``name:`` line, else the file name) must match; variants filter only one that loaded."""
        if self.specs:
            keep = [s for s in self.specs if not options.variants or s.variant in options.variants]
            return bool(keep) and (not options.models or any(matches(s, options.models) for s in keep))
        names = [self.path.stem, *_NAME_LINE.findall(_head(self.path))[:1]]
        return not options.models or any(fnmatch.fnmatchcase(n, p) for n in names for p in options.models)


#: a top-level ``name:`` line, read only to select a manifest that failed to load
_NAME_LINE = re.compile(r"^name:[ \t]*[\"']?([A-Za-z0-9][A-Za-z0-9_.-]*)", re.MULTILINE)


def _head(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            return fh.read(MAX_MANIFEST_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""


@dataclass
class LoadedSuite:
    """The selected models by manifest, the metric containers by name, the broken manifests by path."""

    models: dict[Path, list[ModelSpec]] = field(default_factory=dict)
    metrics: dict[str, ModelSpec] = field(default_factory=dict)
    broken: dict[Path, BrokenManifest] = field(default_factory=dict)


def _load(paths: list[Path], root: Path, allow: tuple[Path, ...] = ()) -> LoadedSuite:
    """Models, metric containers (``kind: metric``) and broken manifests, from ``paths``."""
    loaded = LoadedSuite()
    names: dict[str, Path] = {}
    for path in paths:
        specs, problems = load_problems(path, root, allow, names)
        if problems:
            loaded.broken[path] = BrokenManifest(path, tuple(problems), tuple(specs))
        elif specs[0].manifest.kind == "metric":  # a scorer: started for other models, never collected
            loaded.metrics[specs[0].name] = specs[0]
        else:
            loaded.models[path] = specs
    return loaded


def load_suite(
    options: VdbenchOptions, root: Path, extra: list[Path] | None = None, *, leave_out: frozenset[Path] = frozenset()
) -> LoadedSuite:
    """The selected models and broken manifests, and the metric containers (``model_suites/metrics``
    is searched too, so ``--vdbench-metrics vbench`` works with any ``--vdbench-suite``); sorted,
    identical on every xdist worker.

    A broken manifest is not a usage error (it fails its own test), except one pytest cannot
    collect as a file: a dangling symlink or a symlink loop. ``leave_out``: manifests an xdist
    worker neither loads nor collects (every model in them reused or resumed by the controller).
    """
    paths = [p for p in discover_manifests([*options.suites, *(extra or [])]) if p not in leave_out]
    scorers = [p for p in discover_manifests([root / METRICS_DIR]) if p not in paths] if (root / METRICS_DIR).is_dir() else []
    loaded = _load(paths + scorers, root, options.allow_paths)
    broken_scorers = []
    for path in scorers:  # only the metric manifests of the extra folder count
        loaded.models.pop(path, None)
        if path in loaded.broken:
            broken_scorers.append(loaded.broken.pop(path))
    links = [p.format() for path, b in loaded.broken.items() if not path.is_file() for p in b.problems]
    if links:
        raise pytest.UsageError("invalid vdbench manifest(s):\n" + "\n".join(links))
    known = sorted({s.id for specs in loaded.models.values() for s in specs})
    selected = LoadedSuite(metrics=loaded.metrics)
    for path, specs in loaded.models.items():
        keep = [
            s
            for s in specs
            if (not options.models or matches(s, options.models)) and (not options.variants or s.variant in options.variants)
        ]
        if keep:
            selected.models[path] = keep
    selected.broken = {path: b for path, b in loaded.broken.items() if b.selected(options)}
    if (options.models or options.variants) and not selected.models and not selected.broken and not leave_out:
        wanted = " ".join([f"--vdbench-model {m}" for m in options.models] + [f"--vdbench-variant {v}" for v in options.variants])
        raise pytest.UsageError(f"{wanted}: no model matches; known models: {', '.join(known) or 'none'}")
    _check_metric_names(options, selected, broken_scorers)
    return selected


def _check_metric_names(options: VdbenchOptions, selected: LoadedSuite, broken: list[BrokenManifest]) -> None:
    """An unknown name in --vdbench-metrics is a usage error; in a manifest's ``metrics``, that manifest is broken."""
    known = ", ".join(sorted(selected.metrics)) or f"none (no kind: metric manifest under the suites or {METRICS_DIR})"
    if broken:  # a metric manifest that does not load defines no name: say where to look
        known += f"; invalid metric manifest(s): {', '.join(str(b.path) for b in broken)} (vdbench validate them)"
    for name in options.metrics:
        if name not in selected.metrics:
            raise pytest.UsageError(f"--vdbench-metrics / ini vdbench_metrics: no metric container {name!r}; known: {known}")
    for path, specs in list(selected.models.items()):
        unknown = dict.fromkeys(n for s in specs for n in s.manifest.metrics if n not in selected.metrics)
        if unknown:
            line = key_line(path, ["metrics"])
            found = [Problem(path, line, "metrics", f"no metric container {n!r}; known: {known}", "metrics") for n in unknown]
            selected.broken[path] = BrokenManifest(path, tuple(found), tuple(specs))
            del selected.models[path]


class VdbenchSession:
    """Holds the selected models, the runtime and every ``ModelRun``; its methods are hooks."""

    def __init__(self, config: pytest.Config, options: VdbenchOptions) -> None:
        self.config = config
        self.options = options
        #: no paths on the command line: collect the suites (`pytest --vdbench` runs the models only)
        self.suites_only = config.args_source != pytest.Config.ArgsSource.ARGS
        manifests = named_manifests(config)
        #: solo, xdist controller or worker: decided here once, read by the session, report and runtimes
        self.role = XdistRole.of(config)
        named = {m.resolve() for m in manifests}  # a manifest named on the command line must be collected
        leave_out = frozenset(p for p in map(Path, self.role.workerinput.get(LEAVE_OUT_KEY, ())) if p.resolve() not in named)
        loaded = load_suite(options, project_root(config), extra=manifests, leave_out=leave_out)
        self.specs_by_path, self.metric_specs = loaded.models, loaded.metrics
        #: manifests that fail validation: each is collected as one failing test, the others run
        self.broken = loaded.broken
        if self.suites_only:  # a metric manifest named as a suite is started for the others, never collected
            scorers = {s.path.resolve() for s in self.metric_specs.values()}
            suites = [str(p) for p in options.suites if Path(p).resolve() not in scorers]
            config.args = suites or [str(p) for p in options.suites]
        self.scorers: dict[str, Scorer] = {}
        self.specs = [s for specs in self.specs_by_path.values() for s in specs]
        self.runs: dict[str, ModelRun] = {}
        self.budget_selected: dict[str, set[str]] = {}
        self.skipped: dict[str, str] = {}  # model id -> why this host cannot run it
        self._runtime: Runtime | None = None
        self._host: HostInfo | None = None
        self.notices: list[str] = []
        self.docker_fallback: str | None = None  # why docker was not used when it was the default
        if not self.role.is_worker:
            self._neighbours(config, options)
        #: build and process logs: where the user asked, else a temporary folder (see ``log_root``)
        self.log_root, self.work_dir = _log_dirs(options, self.role)
        if not self.role.is_worker:  # until the run ends: a SIGKILLed run leaves it, and the next run sweeps it
            (self.log_root / OWNER_FILE).write_text(json.dumps(owner()))
        #: one id for the whole run, shared by xdist workers (containers carry it as a label)
        self.testrun: str = self.role.workerinput["vdbench_testrun"] if self.role.is_worker else uuid.uuid4().hex[:12]
        _sigterm_interrupts()
        if options.runtime == "slurm" and not self.role.is_worker:  # one clear line before any test, not one per model
            from pytest_vdbench.options import slurm_options

            problems = slurm_options(config).problems()
            if problems:
                raise pytest.UsageError("\n".join(problems))

    @staticmethod
    def _neighbours(config: pytest.Config, options: VdbenchOptions) -> None:
        """The controller: claim the report folder (refused while another live run holds it) and
        sweep dead runs' work folders and ledger files."""
        if options.report_dir is not None:
            try:
                claim = claim_folder(options.report_dir)
            except FolderInUse as exc:
                raise pytest.UsageError(f"--vdbench-report: {exc}") from None
            config.add_cleanup(lambda: release_folder(claim))  # after the report is written
        sweep_dead_files(Path(tempfile.gettempdir()))

    # -- state -----------------------------------------------------------------------------
    @property
    def host(self) -> HostInfo:
        if self._host is None:
            self._host = probe_host()
        return self._host

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = self._make_runtime()
        return self._runtime

    def _make_runtime(self) -> Runtime:
        """The runtime the options name, from the registry (built-ins and plugins' hooks)."""
        from pytest_vdbench.protocols import ready_probe

        registry = self.config.stash.get(RUNTIMES_KEY, None) or builtin_runtimes()
        wanted = self.options.runtime or "docker"
        context = RuntimeContext(
            work_dir=self.work_dir,
            testrun=self.testrun,
            sandbox=self.options.sandbox,
            explicit=self.options.runtime_explicit,
            protocols=self.protocols,
            ready_probe=lambda manifest, endpoint: ready_probe(manifest, endpoint, self.protocols),
            log=self._build_log,
            verbose=self.config.get_verbosity() > 0,
            is_worker=self.role.is_worker,
            reserve_timeout=self.options.reserve_timeout,
            timed_seconds=self.options.max_duration,
            options=self._runtime_options(wanted),
        )
        try:
            return registry.create(wanted, context)
        except RuntimeUnavailable as exc:
            if self.options.runtime_explicit or wanted != "docker":
                return _Unavailable(wanted, f"--vdbench-runtime {wanted}: {exc}")
            self.docker_fallback = str(exc)
            self._notice(f"vdbench: {exc}; running models as local processes instead (--vdbench-runtime process)")
        return registry.create("process", context)

    def _runtime_options(self, wanted: str) -> dict[str, object]:
        """Runtime-specific options parsed from the command line (slurm: SlurmOptions)."""
        if wanted != "slurm":
            return {}
        from pytest_vdbench.options import slurm_options

        return {"slurm": slurm_options(self.config)}

    @property
    def protocols(self) -> ProtocolRegistry:
        from pytest_vdbench.protocols import PROTOCOLS

        return self.config.stash.get(PROTOCOLS_KEY, None) or PROTOCOLS

    def _build_log(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)

    def _notice(self, text: str) -> None:
        self.notices.append(text)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():  # notices come mid-test, past output capture
                reporter.ensure_newline()
                reporter.write_line(text, yellow=True)

    def run_for(self, spec: ModelSpec) -> ModelRun:
        run = self.runs.get(spec.id)
        if run is None:
            run = self.runs[spec.id] = ModelRun(spec, self.runtime, self.protocols, self.timing_defaults)
            run.budget_selected = self.budget_selected.get(spec.id, set())
            run.scorers = [self.scorer(name) for name in self.metrics_for(spec)]
        return run

    def metrics_for(self, spec: ModelSpec) -> list[str]:
        """The metric containers scoring ``spec``: the run's (--vdbench-metrics) and its manifest's, of its modality."""
        names = dict.fromkeys([*self.options.metrics, *spec.manifest.metrics])
        return [n for n in names if self.metric_specs[n].manifest.modality == spec.manifest.modality]

    def scorer(self, name: str) -> Scorer:
        """The run's one ``Scorer`` for the metric container ``name`` (not started until first used)."""
        if name not in self.scorers:
            spec = self.metric_specs[name]
            runtime = self.runtime
            reason = runtime.reason if isinstance(runtime, _Unavailable) else None
            if reason is None and self.docker_fallback is not None:
                reason = (
                    f"{self.docker_fallback}: metric containers need Docker (--vdbench-runtime process runs them "
                    "as local processes, which needs their stack installed here)"
                )
            if reason is None:
                from pytest_vdbench.runtime.host import unmet_requirements

                reason = unmet_requirements(spec, self.host, runtime=runtime.name)
            if reason is not None:
                self._notice(f"vdbench: metric container {name} skipped: {reason}")
            self.scorers[name] = Scorer(spec, runtime, reason, self.protocols)
        return self.scorers[name]

    def skip_reason(self, spec: ModelSpec) -> str | None:
        from pytest_vdbench.runtime.host import unmet_requirements

        runtime = self.runtime
        if isinstance(runtime, _Unavailable):
            return runtime.reason
        return unmet_requirements(spec, self.host, runtime=runtime.name)

    @property
    def timing_defaults(self) -> TimingPolicy:
        """The --vdbench-* timing options (a manifest's ``timing`` overrides them per model)."""
        o = self.options
        return TimingPolicy(o.min_rounds, o.min_duration, o.max_duration, o.max_rounds, o.precision)

    # -- hooks -----------------------------------------------------------------------------
    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> ManifestFile | None:
        resolved = file_path.resolve()
        specs, broken = self.specs_by_path.get(resolved), self.broken.get(resolved)
        if specs is None and broken is None:
            return None
        # outside the rootdir pytest would name the file relative to the path given (`toy.yaml`):
        # its absolute path is an id that reruns from anywhere and that --lf maps back to the file
        nodeid = None if file_path.is_relative_to(self.config.rootpath) else file_path.as_posix()
        if broken is not None:
            return ManifestFile.from_parent(parent, path=file_path, nodeid=nodeid, specs=broken.specs, problems=broken.problems)
        return ManifestFile.from_parent(parent, path=file_path, nodeid=nodeid, specs=tuple(specs or ()))

    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        # `pytest --vdbench` alone collects the suites' manifests only, not Python files beside them
        if self.suites_only and collection_path.is_file():
            resolved = collection_path.resolve()
            return resolved not in self.specs_by_path and resolved not in self.broken
        return None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """After -k/-m deselection: remember which budget tests run (they own OOM reports)."""
        for item in items:
            module = item.parent
            if isinstance(module, VariantModule) and item.name.startswith("test_budget["):
                self.budget_selected.setdefault(module.spec.id, set()).add(item.name[len("test_budget[") : -1])

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        module = metafunc.definition.parent
        if "vdbench_model" in metafunc.fixturenames and not isinstance(module, VariantModule):
            # generated modules serve one model each (vdbench_model reads it from the module node)
            specs = self._marked_specs(metafunc)
            metafunc.parametrize("vdbench_model", specs, indirect=True, ids=[s.id for s in specs], scope="module")
        if "vdbench_case" in metafunc.fixturenames:
            if not isinstance(module, VariantModule):
                raise pytest.UsageError(
                    f"{metafunc.definition.nodeid}: vdbench_case is only available in the generated suite; "
                    "iterate vdbench_model.manifest.cases in your own tests"
                )
            cases = module.spec.manifest.cases
            metafunc.parametrize("vdbench_case", cases, ids=[c.id for c in cases])

    def _marked_specs(self, metafunc: pytest.Metafunc) -> list[ModelSpec]:
        marker = metafunc.definition.get_closest_marker("vdbench_models")
        if marker is None:
            return self.specs
        return [s for s in self.specs if matches(s, marker.args)]

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Ctrl-C: without --full-trace pytest prints only the crash line, yet formats every entry
        of the traceback first (sources read and parsed: 1-4 s on a busy host); keep the entry it prints."""
        if not self.config.option.fulltrace:
            keep_crash_entry(excinfo)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        stop_all([run.stop for run in self.runs.values()] + [scorer.stop for scorer in self.scorers.values()])
        if self._runtime is not None:
            self._runtime.close()
        self._sweep_crashed_workers()
        if self.discard_logs(session.testsfailed > 0):
            shutil.rmtree(self.log_root, ignore_errors=True)
        elif not self.role.is_worker:  # kept on purpose: no longer a leftover for the next run's sweep
            (self.log_root / OWNER_FILE).unlink(missing_ok=True)
            if self.options.logs_dir is None:  # a temporary folder: a later run's sweep keeps the newest few
                if any(p.is_file() for p in self.log_root.rglob("*")):
                    mark_kept(self.log_root)
                else:
                    shutil.rmtree(self.log_root, ignore_errors=True)  # nothing was logged: no empty folder to point at

    def discard_logs(self, failed: bool) -> bool:
        """Logs nobody asked for go when the run passed; workers leave their folder to the controller."""
        return self.options.logs_dir is None and not failed and self.role.reports

    def logs_line(self, failed: bool) -> str | None:
        """The summary's pointer to the logs (it names the folder that holds them, workers' included)."""
        if self.role.is_worker or not self.log_root.exists() or self.discard_logs(failed):
            return None
        return f"vdbench: build and process logs in {self.log_root}"

    def _sweep_crashed_workers(self) -> None:
        """xdist controller: remove what workers that died before their own cleanup left (the runtime's sweep)."""
        if not self.role.is_controller:
            return
        registry = self.config.stash.get(RUNTIMES_KEY, None) or builtin_runtimes()
        removed = registry.sweep_testrun(self.options.runtime or "docker", self.testrun)
        if removed:
            self._notice(f"vdbench: removed {removed} left by crashed xdist worker(s)")


def _log_dirs(options: VdbenchOptions, role: XdistRole) -> tuple[Path, Path]:
    """(the run's log folder, this process's): a worker writes into ``<run's>/<worker id>``."""
    if role.is_worker and role.workerinput.get("vdbench_logs"):
        root = Path(role.workerinput["vdbench_logs"])
        (root / role.worker_id).mkdir(parents=True, exist_ok=True)
        return root, root / role.worker_id
    root = options.logs_dir or Path(tempfile.mkdtemp(prefix="vdbench-"))
    root.mkdir(parents=True, exist_ok=True)
    return root, root


def keep_crash_entry(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Cut ``excinfo``'s traceback to its last entry not hidden by ``__tracebackhide__``: the one
    pytest's crash line (``path:line: KeyboardInterrupt``) names. Nothing changes when all are hidden."""
    traceback = excinfo.traceback
    for i in range(len(traceback) - 1, 0, -1):
        if not traceback[i].ishidden(excinfo):
            excinfo.traceback = traceback[i:]
            return


def stop_all(stops: Sequence[Callable[[], object]]) -> None:
    """Call every stop at once, each in its own thread, and wait for them all.

    Removing a container takes ~0.3 s idle and seconds on a busy engine: a model and its metric
    containers go together rather than one after another. The threads are not daemons, so a second
    Ctrl-C during the wait ends the wait, not the removals: the interpreter finishes them before it
    exits. The first error is raised once every stop has ended.
    """
    errors: list[BaseException] = []

    def call(stop: Callable[[], object]) -> None:
        try:
            stop()
        except BaseException as exc:  # reported below, once every other stop has had its chance
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(stop,), name="vdbench-stop") for stop in stops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _sigterm_interrupts() -> None:
    """Let SIGTERM (CI cancel, `kill`) end the run like Ctrl-C, so session cleanup removes containers."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, interrupt)


class _Unavailable:
    """Stands in for a runtime that cannot work on this host: every model skips with ``reason``."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def prepare(self, spec: ModelSpec) -> BuildInfo:
        raise RuntimeError(self.reason)

    def start(self, spec: ModelSpec) -> Instance:
        raise RuntimeError(self.reason)

    def close(self) -> None:
        return None
