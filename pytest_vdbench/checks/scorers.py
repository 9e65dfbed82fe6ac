"""Metric containers: scorers packaged like models (``kind: metric``), started once per run.

A scorer's manifest is a model manifest with ``kind: metric`` and no cases; its image is built,
limited, hardened, readiness-checked and removed by the same runtime as the models'. The harness
sends it every generated output of its modality (``POST /v1/score``) and records what it answers
under its name: ``vbench`` answering ``temporal_flickering`` becomes ``vbench.temporal_flickering``
in the case's quality scores, where ``expect.quality`` can bound it like a built-in metric.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_vdbench.endpoint import AdapterError
from pytest_vdbench.manifest import Case, ModelSpec
from pytest_vdbench.run import ModelNotReady, ModelRun, ModelUnavailable
from pytest_vdbench.runtime import Runtime

__all__ = ["ExternalScore", "Scorer", "ScorerOutcome", "score_case"]


@dataclass(frozen=True)
class ExternalScore:
    """One score a metric container answered (``value`` None: not computed, ``note`` says why)."""

    name: str
    value: float | None
    low: float | None = None
    high: float | None = None
    direction: str | None = None
    note: str | None = None


@dataclass
class ScorerOutcome:
    """Everything the enabled scorers said about one case."""

    scores: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # scorer name -> why it did not run


class Scorer:
    """One metric container for the run (one per xdist worker): started at its first use."""

    def __init__(self, spec: ModelSpec, runtime: Runtime, skip_reason: str | None = None, protocols: Any = None) -> None:
        self.spec = spec
        self.run = ModelRun(spec, runtime, protocols)
        self.skip_reason = skip_reason
        self.metadata: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def _client(self) -> Any:
        if self.skip_reason is not None:
            raise ModelUnavailable(self.skip_reason)
        client = self.run.client
        if self.metadata is None:
            try:
                self.metadata = client.metadata()
            except AdapterError as exc:
                self.metadata = {"error": str(exc)}
        return client

    def score(self, run: ModelRun, case: Case, output: np.ndarray[Any, Any]) -> list[ExternalScore]:
        """Score ``output`` of ``run``'s ``case``; AdapterError / ModelNotReady / ModelUnavailable pass up."""
        client = self._client()
        settings = {"id": case.id, "seed": case.seed, "params": dict(case.params), "model": run.spec.id}
        raw = client.score(output, case.prompt, settings, timeout=self.spec.manifest.timeouts.score)
        return [self._parse(name, record) for name, record in sorted(raw.items())]

    def _parse(self, name: str, record: Any) -> ExternalScore:
        key = f"{self.name}.{name}"
        if not isinstance(record, Mapping) or "value" not in record:
            raise AdapterError(f"metric {self.name}: score {name!r} is {record!r}, not a record with a 'value'")
        value, bounds = record.get("value"), record.get("range") or [None, None]
        low, high = (float(b) if isinstance(b, (int, float)) else None for b in list(bounds)[:2])
        direction = record.get("direction")
        if value is None:
            note = str(record.get("error") or "not computed (the scorer gave no reason)")
            return ExternalScore(key, None, low, high, direction, note)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AdapterError(f"metric {self.name}: {key} = {value!r} is not a number")
        if not math.isfinite(float(value)):
            raise AdapterError(f"metric {self.name}: {key} = {value!r} (the scorer returned a non-finite score)")
        return ExternalScore(key, float(value), low, high, direction)

    def logs(self, tail: int = 30) -> str:
        return self.run.logs(tail)

    def stop(self) -> None:
        self.run.stop()


def score_case(scorers: Iterable[Scorer], run: ModelRun, case: Case, output: np.ndarray[Any, Any]) -> ScorerOutcome:
    """Ask every scorer about one case; a scorer's failure becomes a message, never an exception."""
    outcome = ScorerOutcome()
    for scorer in scorers:
        try:
            results = scorer.score(run, case, output)
        except ModelUnavailable as exc:
            outcome.skipped[scorer.name] = str(exc)
            continue
        except ModelNotReady as exc:
            outcome.failures.append(f"metric container {scorer.name} is not ready: {exc}")
            continue
        except AdapterError as exc:
            logs = "" if getattr(exc, "traceback", None) else scorer.logs()  # a traceback already says where
            tail = f"\n--- last logs of metric container {scorer.name} ---\n{logs}" if logs.strip() else ""
            outcome.failures.append(f"metric container {scorer.name}: {exc}{tail}")
            continue
        for result in results:
            if result.value is None:
                outcome.notes[result.name] = (result.note or "no reason given").removeprefix("not computed: ")
            else:
                outcome.scores[result.name] = result.value
                if result.low is not None and result.high is not None and not result.low <= result.value <= result.high:
                    outcome.failures.append(
                        f"metric container {scorer.name}: {result.name} = {result.value:.6g} lies outside the range "
                        f"[{result.low:g}, {result.high:g}] it declares"
                    )
    return outcome
