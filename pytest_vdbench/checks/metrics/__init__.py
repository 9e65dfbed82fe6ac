"""Quality metrics: a registry of what each metric is, and the scorers that compute them.

Every score the suite reports is declared here once, as a :class:`MetricInfo` (modality, range,
better direction, what a low score usually means). ``vdbench validate`` (which names
``expect.quality`` may bound), the comparison (which direction is worse), the failure messages
and the report read only this registry. A :class:`Scorer` computes one or more of them for an
output; the weight-free ones live in :mod:`.video` and :mod:`.tabular` (pure functions of arrays).

A metric from elsewhere (a CLIP score, a learned aesthetic model) is one module with one hook
implementation (see :mod:`pytest_vdbench.hookspecs`)::

    def pytest_vdbench_add_metrics(registry):
        registry.add(MyScorer())

:mod:`.clip` is such a plug-in, shipped with the project.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    from pytest_vdbench.manifest import Case

__all__ = [
    "MetricInfo",
    "MetricRegistry",
    "ScoreContext",
    "Scorer",
    "builtin_registry",
]

Modality = Literal["video", "tabular"]
Better = Literal["higher", "lower", "none"]


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is: the facts validate, compare, expectations and the report read."""

    name: str
    modality: Modality
    range: tuple[float | None, float | None]
    better: Better
    #: what a score below expect.quality.min usually means, said with the failure
    low_means: str = ""
    #: a case must have this for the metric to be scored (``prompt``, ``target``), else validate says so
    needs: str | None = None
    #: shown in the terminal summary's quality column
    headline: bool = False

    @property
    def direction(self) -> int:
        """+1 when higher is better, -1 when lower is, 0 when neither (shown, never flagged)."""
        return {"higher": 1, "lower": -1, "none": 0}[self.better]


@dataclass
class ScoreContext:
    """What a scorer sees: one case's output and a way to ask the model for another generation."""

    case: Case
    output: np.ndarray[Any, Any]
    #: generate(prompt) -> output through the model run (size limit, recorded like every generation)
    generate: Callable[[str], np.ndarray[Any, Any]]
    #: modality-specific inputs (tabular: the dataset split), set by the caller
    extra: dict[str, Any] = field(default_factory=dict)


class Scorer(Protocol):
    """Computes the metrics it declares for one output."""

    #: the metrics this scorer produces (at least one)
    metrics: tuple[MetricInfo, ...]

    def unavailable(self) -> str | None:
        """Why this scorer cannot run on this host (missing weights, a missing library), or None."""

    def score(self, ctx: ScoreContext) -> dict[str, float]:
        """Metric name -> score; every name must be one of ``metrics``."""


class MetricRegistry:
    """The metrics of this run: built-ins plus whatever plugins added through the hook."""

    def __init__(self) -> None:
        self._info: dict[str, MetricInfo] = {}
        self._scorers: list[Scorer] = []

    def add(self, scorer: Scorer) -> Scorer:
        """Register ``scorer`` and its metrics; a metric name already taken raises ValueError."""
        for info in scorer.metrics:
            if info.name in self._info:
                raise ValueError(f"metric {info.name!r} is already registered")
        for info in scorer.metrics:
            self._info[info.name] = info
        self._scorers.append(scorer)
        return scorer

    def info(self, name: str) -> MetricInfo | None:
        return self._info.get(name)

    def names(self, modality: str) -> list[str]:
        """Every metric of ``modality``, sorted."""
        return sorted(n for n, i in self._info.items() if i.modality == modality)

    def directions(self) -> dict[str, int]:
        return {n: i.direction for n, i in self._info.items()}

    def headline(self) -> list[str]:
        return [n for n, i in self._info.items() if i.headline]

    def scorers(self, modality: str) -> list[Scorer]:
        return [s for s in self._scorers if any(i.modality == modality for i in s.metrics)]

    def score(self, modality: str, ctx: ScoreContext) -> tuple[dict[str, float], dict[str, str]]:
        """Scores of every available scorer of ``modality``, and why each unavailable one was not run."""
        scores: dict[str, float] = {}
        not_run: dict[str, str] = {}
        for scorer in self.scorers(modality):
            reason = scorer.unavailable()
            if reason is not None:
                not_run.update({i.name: reason for i in scorer.metrics})
                continue
            if any(i.needs == "prompt" for i in scorer.metrics) and not ctx.case.prompt:
                continue
            scores.update(scorer.score(ctx))
        return scores, not_run


class _Fn:
    """A scorer made of one function returning several named metrics."""

    def __init__(self, metrics: Iterable[MetricInfo], fn: Callable[[ScoreContext], Mapping[str, float]]) -> None:
        self.metrics = tuple(metrics)
        self._fn = fn

    def unavailable(self) -> str | None:
        return None

    def score(self, ctx: ScoreContext) -> dict[str, float]:
        return {k: float(v) for k, v in self._fn(ctx).items()}

    def __repr__(self) -> str:
        return f"<scorer {', '.join(i.name for i in self.metrics)}>"


def contrast_prompt(prompt: str) -> str:
    """A different prompt for the prompt-sensitivity probe (deterministic, never equal)."""
    return f"{prompt[::-1]} | contrast" if prompt else "a contrast prompt"


def _video_single(ctx: ScoreContext) -> dict[str, float]:
    from pytest_vdbench.checks.metrics.video import video_report

    return video_report(ctx.output)


def _prompt_sensitivity(ctx: ScoreContext) -> dict[str, float]:
    from pytest_vdbench.checks.metrics.video import prompt_sensitivity

    other = ctx.generate(contrast_prompt(ctx.case.prompt or ""))
    return {"prompt_sensitivity": prompt_sensitivity(ctx.output, other)}


def _tabular(ctx: ScoreContext) -> dict[str, float]:
    from pytest_vdbench.checks.metrics.tabular import tabular_report, uniform_baseline

    data = ctx.extra["data"]
    synth = np.asarray(ctx.output, dtype=np.float64)
    scores = {k: float(v) for k, v in tabular_report(data.train, synth, data.columns, data.target, test=data.test).items()}
    noise = uniform_baseline(data.train, data.columns, len(synth), seed=ctx.case.seed or 0)
    baseline = tabular_report(data.train, noise, data.columns, data.target, test=data.test)
    scores.update({f"uniform_{k}": float(v) for k, v in baseline.items()})
    return scores


_VIDEO = (
    MetricInfo("temporal_flicker", "video", (0, 1), "higher", "brightness flickers from frame to frame", headline=True),
    MetricInfo(
        "motion_smoothness",
        "video",
        (0, 1),
        "higher",
        "consecutive frames jump: frames out of order or unrelated to each other",
        headline=True,
    ),
    MetricInfo(
        "dynamic_degree", "video", (0, None), "none", "the frames barely change: a constant or frozen video", headline=True
    ),
    MetricInfo("sharpness", "video", (0, 16), "higher", "the frames are blurred or flat"),
)
_PROMPT = MetricInfo(
    "prompt_sensitivity",
    "video",
    (0, 1),
    "higher",
    "different prompts give the same output: the prompt does not reach the model",
    needs="prompt",
    headline=True,
)
_TSTR = (
    MetricInfo(
        "tstr_accuracy", "tabular", (0, 1), "higher", "a model trained on the samples predicts the target poorly", "target"
    ),
    # train-on-real: the yardstick for tstr_accuracy, not a score of the model
    MetricInfo("trtr_accuracy", "tabular", (0, 1), "none", needs="target"),
    MetricInfo(
        "tstr_ratio", "tabular", (0, None), "higher", "the samples carry less of the target's signal than the data", "target"
    ),
)
_TABULAR = (
    MetricInfo("column_shapes", "tabular", (0, 1), "higher", "the samples' column distributions are far from the data's"),
    MetricInfo("column_pair_trends", "tabular", (0, 1), "higher", "the samples lose the correlations between columns"),
    *_TSTR,
)
#: the uniform-noise floor's scores: reported beside the model's, never a quality of the model itself
_FLOOR = tuple(MetricInfo(f"uniform_{i.name}", "tabular", i.range, "none", needs=i.needs) for i in _TABULAR)


def builtin_registry() -> MetricRegistry:
    """A registry holding the weight-free metrics this package computes."""
    registry = MetricRegistry()
    registry.add(_Fn(_VIDEO, _video_single))
    registry.add(_Fn((_PROMPT,), _prompt_sensitivity))
    registry.add(_Fn((*_TABULAR, *_FLOOR), _tabular))
    return registry
