"""``VdbenchSession``: the run's state and the hooks that act on it (registered only with --vdbench)."""

from __future__ import annotations

import fnmatch
import json
import shutil
import signal
import tempfile
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_vdbench.collect import ManifestFile, VariantModule, nodeid_for
from pytest_vdbench.manifest import ManifestError, ModelSpec, discover_manifests, load_manifest
from pytest_vdbench.options import VdbenchOptions, project_root
from pytest_vdbench.protocols import ProtocolRegistry
from pytest_vdbench.run import ModelRun
from pytest_vdbench.runtime import RuntimeContext, RuntimeRegistry, RuntimeUnavailable, builtin_runtimes
from pytest_vdbench.runtime.host import HostInfo, probe_host
from pytest_vdbench.runtime.owners import OWNER_FILE, FolderInUse, claim_folder, owner, release_folder, sweep_dead_files
from pytest_vdbench.timing import TimingPolicy

if TYPE_CHECKING:
    from pytest_vdbench.runtime import BuildInfo, Instance, Runtime

__all__ = ["SESSION_KEY", "VdbenchSession"]

SESSION_KEY = pytest.StashKey["VdbenchSession"]()
#: the run's runtimes and protocols: built-ins plus ``pytest_vdbench_add_runtimes/protocols`` hooks
RUNTIMES_KEY = pytest.StashKey[RuntimeRegistry]()
PROTOCOLS_KEY = pytest.StashKey[ProtocolRegistry]()


def load_specs(options: VdbenchOptions, root: Path) -> dict[Path, list[ModelSpec]]:
    """Every selected spec, by manifest, sorted (identical on every xdist worker)."""
    problems: list[str] = []
    by_path: dict[Path, list[ModelSpec]] = {}
    names: dict[str, Path] = {}
    for path in discover_manifests(options.suites):
        try:
            specs = load_manifest(path, root, options.allow_paths)
        except ManifestError as exc:
            problems.extend(exc.problems)
            continue
        name = specs[0].name
        if name in names:
            problems.append(f"{path}: name: model name {name!r} is already used by {names[name]}")
            continue
        names[name] = path
        by_path[path] = specs
    if problems:
        raise pytest.UsageError("invalid vdbench manifest(s):\n" + "\n".join(problems))
    known = sorted({s.id for specs in by_path.values() for s in specs})
    selected: dict[Path, list[ModelSpec]] = {}
    for path, specs in by_path.items():
        keep = [
            s
            for s in specs
            if (not options.models or any(fnmatch.fnmatchcase(s.name, p) or fnmatch.fnmatchcase(s.id, p) for p in options.models))
            and (not options.variants or s.variant in options.variants)
        ]
        if keep:
            selected[path] = keep
    if (options.models or options.variants) and not selected:
        wanted = " ".join([f"--vdbench-model {m}" for m in options.models] + [f"--vdbench-variant {v}" for v in options.variants])
        raise pytest.UsageError(f"{wanted}: no model matches; known models: {', '.join(known) or 'none'}")
    return selected


class VdbenchSession:
    """Holds the selected models, the runtime and every ``ModelRun``; its methods are hooks."""

    def __init__(self, config: pytest.Config, options: VdbenchOptions) -> None:
        self.config = config
        self.options = options
        self.specs_by_path = load_specs(options, project_root(config))
        self.specs = [s for specs in self.specs_by_path.values() for s in specs]
        self.runs: dict[str, ModelRun] = {}
        self.budget_selected: dict[str, set[str]] = {}
        self.skipped: dict[str, str] = {}  # model id -> why this host cannot run it
        self._runtime: Runtime | None = None
        self._host: HostInfo | None = None
        self.notices: list[str] = []
        workerinput = getattr(config, "workerinput", None)
        if workerinput is None:
            self._neighbours(config, options)
        self.work_dir = Path(tempfile.mkdtemp(prefix="vdbench-"))
        # until the run ends: a run killed before (SIGKILL) leaves this, and the next run sweeps it
        (self.work_dir / OWNER_FILE).write_text(json.dumps(owner()))
        #: one id for the whole run, shared by xdist workers (containers carry it as a label)
        self.testrun: str = workerinput["vdbench_testrun"] if workerinput else uuid.uuid4().hex[:12]
        _sigterm_interrupts()

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
            is_worker=hasattr(self.config, "workerinput"),
            reserve_timeout=self.options.reserve_timeout,
        )
        try:
            return registry.create(wanted, context)
        except RuntimeUnavailable as exc:
            if self.options.runtime_explicit or wanted != "docker":
                return _Unavailable(wanted, f"--vdbench-runtime {wanted}: {exc}")
            self._notice(f"vdbench: {exc}; running models as local processes instead (--vdbench-runtime process)")
        return registry.create("process", context)

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
        return run

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
    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        # `pytest --vdbench` alone runs the model suites only; name paths to add your own tests.
        if config.args_source != pytest.Config.ArgsSource.ARGS:
            return True
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
        generated: list[pytest.Item] = []
        for path, specs in self.specs_by_path.items():
            node = ManifestFile.from_parent(session, path=path, nodeid=nodeid_for(path, config.rootpath))
            node.specs = tuple(specs)
            generated.extend(session.genitems(node))
        items[:0] = generated

    @pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
    def pytest_collection_modifyitems_budget(self, items: list[pytest.Item]) -> None:
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
        return [s for s in self.specs if any(fnmatch.fnmatchcase(s.id, p) or fnmatch.fnmatchcase(s.name, p) for p in marker.args)]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        for run in self.runs.values():
            run.stop()
        if self._runtime is not None:
            self._runtime.close()
        self._sweep_crashed_workers()
        if session.testsfailed == 0:  # logs of a failing run stay for the user (path in the summary)
            shutil.rmtree(self.work_dir, ignore_errors=True)
        else:  # kept on purpose: no longer a leftover for the next run's sweep
            (self.work_dir / OWNER_FILE).unlink(missing_ok=True)

    def _sweep_crashed_workers(self) -> None:
        """xdist controller: remove containers of workers that died before their own cleanup."""
        if hasattr(self.config, "workerinput") or getattr(self.config.option, "dist", "no") == "no":
            return
        if (self.options.runtime or "docker") != "docker":
            return
        from pytest_vdbench.runtime.docker import LABEL_TESTRUN, docker_unavailable, sweep

        if docker_unavailable() is None:
            import docker

            client = docker.from_env()
            try:
                removed = sweep(client, {LABEL_TESTRUN: self.testrun})
            finally:
                client.close()
            if removed:
                self._notice(f"vdbench: removed {removed} container(s) left by crashed xdist worker(s)")


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
