"""``ModelRun``: one model (variant) for the whole run: its image, its instance, its outputs."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from pytest_vdbench.data.split import TabularData, load_case_data
from pytest_vdbench.endpoint import AdapterError, Generation
from pytest_vdbench.manifest import Case, ModelSpec
from pytest_vdbench.protocols import ModelClient, ProtocolRegistry, client_for
from pytest_vdbench.runtime import BuildInfo, Instance, ResourceUsage, Runtime, RuntimeUnavailable, StartupError

__all__ = ["ModelNotReady", "ModelRun", "ModelUnavailable"]


class ModelUnavailable(Exception):
    """The model cannot run here (the runtime says why): its tests skip with that reason."""


class ModelNotReady(Exception):
    """Raised to every test of a model whose image build or startup failed."""


@dataclass
class CaseResult:
    """What the harness saw for one case (kept for the report)."""

    generation: Generation | None = None
    latencies: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)  # the adapter's peak RSS after each call
    fit_seconds: float | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    #: metric -> why it was not computed on this host (e.g. a scorer's weights are missing)
    not_computed: dict[str, str] = field(default_factory=dict)
    #: generations a scorer asked for (another prompt): recorded, never timed rounds
    extra_latencies: list[float] = field(default_factory=list)
    timing_notes: list[str] = field(default_factory=list)  # server timing claims not believed (round trip used)


class ModelRun:
    """Builds and starts a model at most once and remembers what happened.

    Failures are remembered too: after a failed build or startup every later test of the model
    fails at once with the same cause instead of retrying for minutes.
    """

    def __init__(self, spec: ModelSpec, runtime: Runtime, protocols: ProtocolRegistry | None = None) -> None:
        self.spec = spec
        self.runtime = runtime
        self.protocols = protocols
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
            try:
                self.instance = self.runtime.start(self.spec)
            except StartupError as exc:
                self.startup_error = exc
            except RuntimeUnavailable as exc:
                self.skip_reason = str(exc)
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

    # -- generation ------------------------------------------------------------------------
    def case_result(self, case: Case) -> CaseResult:
        return self.cases.setdefault(case.id, CaseResult())

    def tabular_data(self, case: Case) -> TabularData:
        """The case's dataset split (tabular models), loaded once."""
        if case.id not in self._tabular:
            self._tabular[case.id] = load_case_data(self.spec, case)
        return self._tabular[case.id]

    def fit(self, case: Case) -> float:
        """Train a tabular model on the case's training split; returns the adapter's fit seconds."""
        data = self.tabular_data(case)
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

    def generate(self, case: Case) -> Generation:
        """One generate call for ``case`` (fitting first for tabular); the first output is kept."""
        client = self.client
        if self.spec.manifest.modality == "tabular" and self.fitted_case != case.id:
            self.fit(case)
        try:
            gen = client.generate(
                case.prompt,
                seed=case.seed,
                params=case.params,
                max_bytes=self.spec.manifest.case_expect(case).output_limit(),
            )
        except AdapterError as exc:
            self.case_result(case).error = str(exc)
            raise
        result = self.case_result(case)
        result.latencies.append(gen.server_seconds)
        if gen.timing_note and len(result.timing_notes) < 5:
            result.timing_notes.append(gen.timing_note)
        if gen.peak_rss_bytes is not None:
            result.rss.append(gen.peak_rss_bytes)
        if result.generation is None:
            result.generation = gen
        return gen

    def generate_extra(self, case: Case, prompt: str) -> Generation:
        """A generation for a scorer (another prompt, same seed and params), outside the timed rounds."""
        gen = self.client.generate(
            prompt, seed=case.seed, params=case.params, max_bytes=self.spec.manifest.case_expect(case).output_limit()
        )
        self.case_result(case).extra_latencies.append(gen.server_seconds)
        return gen

    def median_latency(self, case: Case) -> float | None:
        lat = self.case_result(case).latencies
        return statistics.median(lat) if lat else None
