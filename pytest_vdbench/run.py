"""``ModelRun``: one model (variant) for the whole run: its image, its instance, its outputs."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pytest_vdbench.data.split import TabularData, load_case_data
from pytest_vdbench.endpoint import AdapterError, Generation
from pytest_vdbench.manifest import Case, ModelSpec
from pytest_vdbench.protocols import ModelClient, ProtocolRegistry, client_for
from pytest_vdbench.runtime import BuildInfo, Instance, ResourceUsage, Runtime, RuntimeUnavailable, StartupError
from pytest_vdbench.timing import TimingPolicy

__all__ = ["ModelNotReady", "ModelRun", "ModelUnavailable"]


class ModelUnavailable(Exception):
    """The model cannot run here (the runtime says why): its tests skip with that reason."""


class ModelNotReady(Exception):
    """Raised to every test of a model whose image build or startup failed."""


@dataclass(frozen=True)
class Round:
    """One generate call of a case: what it was for, and how long it took."""

    phase: str  # "warmup", "timed" (test_generate's adaptive rounds) or "check" (any other call)
    round_trip: float  # seconds from request to decoded output, as the harness saw it
    server_seconds: float  # the server's own compute time (native X-Vdbench-Seconds; round trip if untold)
    at: float  # time.time() when the answer arrived
    rss: int | None = None


@dataclass
class CaseResult:
    """What the harness saw for one case (kept for the report)."""

    generation: Generation | None = None
    latencies: list[float] = field(default_factory=list)  # server seconds of every call, in order
    rss: list[int] = field(default_factory=list)  # the adapter's peak RSS after each call
    rounds: list[Round] = field(default_factory=list)
    stopped: str | None = None  # why the timed rounds stopped: precise, max_duration, max_rounds
    #: the first timed round whose output differs from the checked (first) output, described
    round_mismatch: str | None = None
    fit_seconds: float | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    #: metric -> why it was not computed on this host (e.g. a scorer's weights are missing)
    not_computed: dict[str, str] = field(default_factory=dict)
    #: generations a scorer asked for (another prompt): recorded, never timed rounds
    extra_latencies: list[float] = field(default_factory=list)
    timing_notes: list[str] = field(default_factory=list)  # server timing claims not believed (round trip used)
    load: list[dict[str, Any]] | None = None  # test_throughput's levels (LevelResult.as_dict)

    def timed(self, *, server: bool = False) -> list[float]:
        """The timed rounds' seconds: round trips (the headline), or the server's own times."""
        return [r.server_seconds if server else r.round_trip for r in self.rounds if r.phase == "timed"]

    def warmup(self) -> list[float]:
        """The warmup rounds' round trips (recorded, never part of the statistics)."""
        return [r.round_trip for r in self.rounds if r.phase == "warmup"]

    @property
    def timed_rss(self) -> list[int]:
        """The adapter's peak RSS after each of this case's timed rounds (per case, never interleaved)."""
        return [r.rss for r in self.rounds if r.phase == "timed" and r.rss is not None]


class ModelRun:
    """Builds and starts a model at most once and remembers what happened.

    Failures are remembered too: after a failed build or startup every later test of the model
    fails at once with the same cause instead of retrying for minutes.
    """

    def __init__(
        self, spec: ModelSpec, runtime: Runtime, protocols: ProtocolRegistry | None = None, timing: TimingPolicy | None = None
    ) -> None:
        self.spec = spec
        self.runtime = runtime
        self.protocols = protocols
        self.policy = _policy(spec, timing or TimingPolicy())
        #: (time.time(), label) phase markers: start, ready, <case>:warmup, <case>:rounds, <case>:fit, ...
        self.marks: list[tuple[float, str]] = []
        self.build: BuildInfo | None = None
        self.build_error: str | None = None
        self.instance: Instance | None = None
        self.startup_error: StartupError | None = None
        self.metadata: dict[str, Any] = {}
        self.cases: dict[str, CaseResult] = {}
        self.final_usage: ResourceUsage | None = None
        self.skip_reason: str | None = None
        self.started_at: float | None = None
        #: failure key ("startup", "generate:<case>") -> the test that reported it
        self.reported: dict[str, str] = {}
        self._tabular: dict[str, TabularData] = {}
        self.fitted_case: str | None = None
        #: cases whose test_budget is selected in this run (it reports OOM kills)
        self.budget_selected: set[str] = set()
        self._client: ModelClient | None = None
        #: the metric containers scoring this model's outputs (scorers.Scorer, set by the session)
        self.scorers: list[Any] = []
        #: case id -> {"digest", "run"}: the stored output a case with expect.golden: strict must match
        self.golden: dict[str, dict[str, Any]] = {}
        #: every call made to the adapter (rounds, audits, scorers' extra prompts, fits, load): the log budget's divisor
        self.calls = 0
        self._calls_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def ensure_built(self) -> BuildInfo:
        if self.build is None and self.build_error is None:
            try:
                self.build = self.runtime.prepare(self.spec)
            except Exception as exc:
                self.build_error = f"image build for {self.spec.id} failed: {exc}"
        if self.build_error:
            raise ModelNotReady(self.build_error)
        assert self.build is not None
        return self.build

    def ensure_started(self) -> Instance:
        if self.instance is None and self.startup_error is None:
            self.ensure_built()
            self.started_at = time.time()
            self.mark("start")
            try:
                self.instance = self.runtime.start(self.spec)
                self.mark("ready")
            except StartupError as exc:
                self.startup_error = exc
            except RuntimeUnavailable as exc:
                self.skip_reason = str(exc)
            except Exception as exc:  # a runtime bug or a value it cannot use: remembered like any failure
                self.startup_error = StartupError(f"{self.spec.id} could not start: {type(exc).__name__}: {exc}")
        if self.skip_reason is not None:
            raise ModelUnavailable(self.skip_reason)
        if self.startup_error is not None:
            raise ModelNotReady(str(self.startup_error))
        assert self.instance is not None
        return self.instance

    @property
    def started(self) -> bool:
        return self.instance is not None

    @property
    def client(self) -> ModelClient:
        """A client speaking the manifest's protocol (native, cog, oip-v2) to the started model."""
        instance = self.ensure_started()
        # kept: an OIP client caches the model's declared inputs (no metadata request per timed call)
        if self._client is None or self._client.endpoint != instance.endpoint:
            self._client = client_for(self.spec.manifest, instance.endpoint, registry=self.protocols)
        return self._client

    def logs(self, tail: int = 80) -> str:
        return self.instance.logs(tail) if self.instance is not None else ""

    def usage(self) -> ResourceUsage | None:
        if self.final_usage is not None:
            return self.final_usage
        return self.instance.usage() if self.instance is not None else None

    def settle(self, timeout: float) -> ResourceUsage | None:
        """Usage once the instance has exited, or after ``timeout`` seconds if it keeps running."""
        deadline = time.monotonic() + timeout
        usage = self.usage()
        while usage is not None and usage.running and time.monotonic() < deadline:
            time.sleep(0.1)
            usage = self.usage()
        return usage

    def stop(self) -> None:
        if self.instance is not None and self.final_usage is None:
            self.final_usage = self.instance.stop()
            self.mark("stop")

    @property
    def timeline(self) -> list[tuple[float, int, float | None, int | None]]:
        """The instance's resource samples: (time.time(), memory bytes, CPU seconds so far, GPU bytes)."""
        return list(getattr(self.instance, "timeline", None) or [])

    def mark(self, label: str) -> None:
        """Note that a phase begins now (drawn on the model's resource timeline)."""
        self.marks.append((time.time(), label))

    # -- generation ------------------------------------------------------------------------
    def case_result(self, case: Case) -> CaseResult:
        return self.cases.setdefault(case.id, CaseResult())

    def tabular_data(self, case: Case) -> TabularData:
        """The case's dataset split (tabular models), loaded once."""
        if case.id not in self._tabular:
            self._tabular[case.id] = load_case_data(self.spec, case)
        return self._tabular[case.id]

    def count_call(self) -> None:
        """One more call to the adapter (thread-safe: test_throughput's clients call at once)."""
        with self._calls_lock:
            self.calls += 1

    def fit(self, case: Case) -> float:
        """Train a tabular model on the case's training split; returns the adapter's fit seconds."""
        data = self.tabular_data(case)
        self.count_call()
        client = self.client
        self.fitted_case = None
        try:
            seconds = client.fit(
                data.train,
                data.columns,
                {**case.fit, "seed": case.seed, **({"target": case.target} if case.target else {})},
                timeout=self.spec.manifest.timeouts.fit,
            )
        except AdapterError as exc:
            self.case_result(case).error = str(exc)
            raise
        self.fitted_case = case.id
        self.case_result(case).fit_seconds = seconds
        return seconds

    def generate(self, case: Case, phase: str = "check", *, seed: int | bool | None = True) -> Generation:
        """One generate call for ``case`` (fitting first for tabular); the first output is kept.

        ``seed`` other than True asks with that seed instead of the case's (an audit's fresh seed):
        such a call is not one of the case's rounds and its output is not kept.
        """
        client = self.client
        if self.spec.manifest.modality == "tabular" and self.fitted_case != case.id:
            self.mark(f"{case.id}:fit")
            self.fit(case)
        own = seed is True
        self.count_call()
        try:
            gen = client.generate(
                case.prompt,
                seed=case.seed if own else seed,
                params=case.params,
                max_bytes=self.spec.manifest.case_expect(case).output_limit(),
            )
        except AdapterError as exc:
            if own:
                self.case_result(case).error = str(exc)
            raise
        if own:
            self._record(case, phase, gen)
        return gen

    def _record(self, case: Case, phase: str, gen: Generation) -> None:
        result = self.case_result(case)
        result.latencies.append(gen.server_seconds)
        if gen.timing_note and len(result.timing_notes) < 5:
            result.timing_notes.append(gen.timing_note)
        result.rounds.append(Round(phase, gen.total_seconds, gen.server_seconds, time.time(), gen.peak_rss_bytes))
        if gen.peak_rss_bytes is not None:
            result.rss.append(gen.peak_rss_bytes)
        if result.generation is None:
            result.generation = gen
        elif phase == "timed" and result.round_mismatch is None:
            atol = self.spec.manifest.case_expect(case).determinism_atol
            differs = _mismatch(result.generation.output, gen.output, atol)
            if differs is not None:
                result.round_mismatch = f"timed round {len(result.timed())}: {differs}"

    def generate_extra(self, case: Case, prompt: str) -> Generation:
        """A generation for a scorer (another prompt, same seed and params), outside the timed rounds."""
        self.count_call()
        gen = self.client.generate(
            prompt, seed=case.seed, params=case.params, max_bytes=self.spec.manifest.case_expect(case).output_limit()
        )
        self.case_result(case).extra_latencies.append(gen.server_seconds)
        return gen

    def median_latency(self, case: Case) -> float | None:
        """The median round trip of the case's timed rounds (of every call when none was timed)."""
        result = self.case_result(case)
        lat = result.timed() or [r.round_trip for r in result.rounds]
        return statistics.median(lat) if lat else None


def _policy(spec: ModelSpec, defaults: TimingPolicy) -> TimingPolicy:
    """The run's --vdbench-* defaults under the manifest's ``timing`` (and ``rounds`` as a floor)."""
    timing = spec.manifest.timing
    min_rounds = timing.min_rounds if timing.min_rounds is not None else max(defaults.min_rounds, spec.manifest.rounds)
    policy = replace(
        defaults,
        **{k: v for k, v in timing.model_dump().items() if v is not None and k != "min_rounds"},
        min_rounds=min_rounds,
    )
    if policy.max_rounds < policy.min_rounds:  # the run's --vdbench-max-rounds wins over a larger floor
        policy = replace(policy, min_rounds=policy.max_rounds)
    return policy


def _mismatch(first: np.ndarray[Any, Any], later: np.ndarray[Any, Any], atol: float) -> str | None:
    """How ``later`` differs from ``first`` beyond ``atol``, or None when it does not."""
    if first.shape != later.shape or first.dtype != later.dtype:
        return f"shape {list(later.shape)} {later.dtype.name}, the checked output was {list(first.shape)} {first.dtype.name}"
    if first.dtype.kind != "O" and first.tobytes() == later.tobytes():
        return None  # the same bytes (every round of a deterministic model): no difference to measure
    if first.dtype.kind in "fc":
        diff = np.abs(first.astype(np.float64) - later.astype(np.float64))
        worst = float(np.nanmax(diff)) if diff.size else 0.0
        same_nan = np.array_equal(np.isnan(first), np.isnan(later))
        return None if worst <= atol and same_nan else f"max |diff| = {worst:.3g} from the checked output"
    return None if np.array_equal(first, later) else "values differ from the checked output"
