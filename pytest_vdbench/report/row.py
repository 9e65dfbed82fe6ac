"""One typed row per model run: what report.json, report.md, report.html and the comparison read."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, TypedDict

from pytest_vdbench.report.stats import summarize

if TYPE_CHECKING:
    from pytest_vdbench.report.state import ReportState
    from pytest_vdbench.run import ModelRun
    from pytest_vdbench.runtime import BuildInfo, ResourceUsage
    from pytest_vdbench.session import VdbenchSession

__all__ = ["ReportRow", "build_row"]


class ReportRow(TypedDict, total=False):
    """A model variant's row (report.json ``models[]``; documented field by field in the README)."""

    model: str
    variant: str
    id: str
    modality: str
    runtime: str
    manifest: str
    manifest_sha256: str
    image: str | None
    image_id: str | None
    image_size_bytes: int | None
    build_seconds: float | None
    build_cached: bool | None
    startup_seconds: float | None
    startup_phases: dict[str, float] | None
    generate_seconds_median: float | None
    generate_seconds_p90: float | None
    generate_seconds_ci: list[float] | None
    generate_server_seconds_median: float | None
    generate_case: str | None
    fit_seconds: float | None
    timings: dict[str, Any]
    timing_valid: bool
    timing_reason: str
    timing_notes: list[str]
    peak_memory_bytes: int | None
    mean_memory_bytes: int | None
    cpu_percent: float | None
    oom_killed: bool | None
    #: the model's GPU memory and utilisation (NVML; nvidia-smi on a Slurm node); None without GPUs
    gpu_memory_bytes: int | None
    gpu_utilization: float | None
    log_bytes: int | None
    quality: dict[str, float]
    quality_by_case: dict[str, dict[str, float]]
    #: case -> metric -> why it was not computed (a metric container's "missing <file>", a scorer's reason)
    quality_notes_by_case: dict[str, dict[str, str]]
    #: the metric containers that scored this model: image, manifest, metadata (versions, weights' hashes)
    metric_containers: list[dict[str, Any]]
    metadata: dict[str, Any] | None
    status: str
    errors: list[str]
    failures: list[dict[str, str]]
    outcomes: dict[str, int]
    log_tail: str
    media: list[dict[str, Any]]
    provenance: dict[str, Any]
    comparison: dict[str, Any]
    throughput: dict[str, list[dict[str, Any]]]
    timeline: dict[str, Any]


def _case_stats(run: ModelRun, opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Statistics of each case's timed generation rounds (warmup excluded) and of its fit."""
    m = run.spec.manifest
    generate: dict[str, Any] = {}
    fit: dict[str, Any] = {}
    for case in m.cases:
        result = run.cases.get(case.id)
        if result is None:
            continue
        timed = result.timed()
        if timed:
            what = f"generate[{case.id}]"
            stats = summarize(timed, warmup_rounds=m.warmup_rounds, what=what, policy=run.policy, **opts).as_dict()
            # the server's own compute time of the same rounds (native X-Vdbench-Seconds, Cog predict_time,
            # OIP's reported time; the round trip where the server tells none), labelled beside the headline
            server = summarize(result.timed(server=True), what=what, policy=run.policy, **opts)
            stats.update(
                {
                    "headline": "round trip",
                    "stopped": result.stopped,
                    "server_median": server.median,
                    "server_p90": server.p90,
                    "server_data": server.data,
                }
            )
            generate[case.id] = stats
        if result.fit_seconds is not None:
            fit[case.id] = summarize([result.fit_seconds], what=f"fit[{case.id}]", **opts).as_dict()
    return generate, fit


def _status(
    run: ModelRun, usage: ResourceUsage | None, failures: list[dict[str, str]], unfinished: bool = False
) -> tuple[str, list[str]]:
    """The row's one-word status and the adapter/harness errors behind it (build, startup first).

    ``unfinished``: the run was interrupted before every selected test of the model ended; its
    figures are what was measured until then, and the status says so rather than ``ok``.
    """
    errors = [r.error for r in run.cases.values() if r.error]
    if run.skip_reason is not None:
        return f"skipped: {run.skip_reason}", errors
    if run.build_error:
        return "build failed", [run.build_error, *errors]
    if run.startup_error is not None:
        return "not ready", [run.startup_error.reason, *errors]
    if usage is not None and usage.oom_killed:
        return "OOM-killed", errors
    if unfinished:
        return "interrupted", errors
    if errors:
        return "errors", errors
    return ("failed" if failures else "ok"), errors


def _image_fields(build: BuildInfo | None) -> ReportRow:
    if build is None:
        return {"image": None, "image_id": None, "image_size_bytes": None, "build_seconds": None, "build_cached": None}
    return {
        "image": build.image,
        "image_id": build.image_id,
        "image_size_bytes": build.size_bytes,
        "build_seconds": build.build_seconds,
        "build_cached": build.cached,
    }


def _timing_fields(run: ModelRun, opts: dict[str, Any]) -> ReportRow:
    """Startup, the headline generation case (largest median), fit and every timing's statistics."""
    generate, fit = _case_stats(run, opts)
    startup = summarize([run.instance.startup_seconds], what="startup", **opts).as_dict() if run.instance is not None else None
    headline = max(generate.items(), key=lambda kv: kv[1]["median"] or 0.0, default=None)
    invalid = [s["reason"] for s in generate.values() if not s["valid"]]
    fits = [r.fit_seconds for r in run.cases.values() if r.fit_seconds is not None]
    return {
        "startup_seconds": run.instance.startup_seconds if run.instance is not None else None,
        # slurm: submit→ready split into queue wait, image pull and container start
        "startup_phases": getattr(run.instance, "phases", None) or None,
        "generate_seconds_median": headline[1]["median"] if headline else None,
        "generate_seconds_p90": headline[1]["p90"] if headline else None,
        "generate_seconds_ci": [headline[1]["ci_low"], headline[1]["ci_high"]] if headline else None,
        "generate_server_seconds_median": headline[1]["server_median"] if headline else None,
        "generate_case": headline[0] if headline else None,
        "fit_seconds": sum(fits) or None,
        "timings": {"startup": startup, "generate": generate, "fit": fit},
        "timing_valid": bool(generate) and not invalid,
        "timing_reason": "; ".join(invalid) if generate else "no timed generation rounds",
        # the server's timing claims that were impossible: those rounds are timed by the round trip
        "timing_notes": sorted({n for r in run.cases.values() for n in r.timing_notes}),
    }


def _resource_fields(usage: ResourceUsage | None) -> ReportRow:
    return {
        "peak_memory_bytes": usage.peak_memory_bytes if usage else None,
        "mean_memory_bytes": usage.mean_memory_bytes if usage else None,
        "cpu_percent": usage.cpu_percent if usage else None,
        "oom_killed": usage.oom_killed if usage else None,
        "gpu_memory_bytes": usage.gpu_memory_bytes if usage else None,
        "gpu_utilization": usage.gpu_utilization if usage else None,
        "log_bytes": usage.log_bytes if usage else None,  # all the model wrote to stdout/stderr
    }


def _quality_fields(run: ModelRun) -> ReportRow:
    """Scores per case, and ``quality``: the first case's score of each metric (cases in manifest order)."""
    by_case = {c.id: dict(r.metrics) for c in run.spec.manifest.cases if (r := run.cases.get(c.id)) is not None and r.metrics}
    scores: dict[str, float] = {}
    for metrics in by_case.values():
        for key, value in metrics.items():
            scores.setdefault(key, value)
    notes = {
        c.id: dict(r.not_computed) for c in run.spec.manifest.cases if (r := run.cases.get(c.id)) is not None and r.not_computed
    }
    return {
        "quality": scores,
        "quality_by_case": by_case,
        "quality_notes_by_case": notes,
        "metric_containers": [_scorer_fields(s) for s in run.scorers],
    }


def _scorer_fields(scorer: Any) -> dict[str, Any]:
    """A metric container's provenance: its image and what its adapter reports (versions, weights' hashes)."""
    build = scorer.run.build
    return {
        "name": scorer.name,
        "manifest": str(scorer.spec.path),
        "manifest_sha256": scorer.spec.manifest_sha256,
        "image": build.image if build else None,
        "image_id": build.image_id if build else None,
        "skipped": scorer.skip_reason or scorer.run.skip_reason,
        "metadata": scorer.metadata,
    }


def _media(run: ModelRun) -> list[dict[str, Any]]:
    m = run.spec.manifest
    if m.modality != "video":
        return []
    return [
        {"case": case.id, "gif": f"media/{run.spec.id}-{case.id}.gif", "prompt": case.prompt, "seed": case.seed}
        for case in m.cases
        if (r := run.cases.get(case.id)) is not None and r.generation is not None
    ]


#: a model's timeline keeps at most this many samples in report.json (evenly thinned, peaks kept)
TIMELINE_POINTS = 400


def timeline(run: ModelRun) -> dict[str, Any]:
    """The model's resource samples (memory, CPU %, GPU memory), thinned to TIMELINE_POINTS, with phase marks.

    Times are seconds since the model started. Each kept point is the sample of highest memory in
    its stretch, so thinning never hides a peak. CPU % is the CPU time used between kept points.
    """
    samples = run.timeline
    t0 = run.started_at or (samples[0][0] if samples else 0.0)
    step = max(1, -(-len(samples) // TIMELINE_POINTS))
    kept = [max(samples[i : i + step], key=lambda s: s[1]) for i in range(0, len(samples), step)]
    cpu: list[float | None] = [None]
    for before, after in itertools.pairwise(kept):
        dt = after[0] - before[0]
        used = None if after[2] is None or before[2] is None or dt <= 0 else 100 * (after[2] - before[2]) / dt
        cpu.append(used)
    return {
        "t": [round(s[0] - t0, 3) for s in kept],
        "memory_bytes": [s[1] for s in kept],
        "cpu_percent": [None if c is None else round(c, 1) for c in cpu],
        "gpu_memory_bytes": [s[3] for s in kept] if any(s[3] is not None for s in kept) else None,
        "marks": [{"t": round(t - t0, 3), "label": label} for t, label in run.marks],
        "samples": len(samples),
    }


def build_row(session: VdbenchSession, run_id: str, run: ModelRun, rec: ReportState | None) -> ReportRow:
    """Everything one model run produced, as one JSON-ready row."""
    from pytest_vdbench.report.provenance import run_provenance

    opts: dict[str, Any] = {"min_rounds": session.options.min_rounds, "min_duration": session.options.min_duration}
    usage = run.usage()
    failures = list(rec.failures.get(run_id, [])) if rec else []
    status, errors = _status(run, usage, failures, unfinished=rec is not None and rec.unfinished(run_id))
    row: ReportRow = {
        "model": run.spec.name,
        "variant": run.spec.variant,
        "id": run_id,
        "modality": run.spec.manifest.modality,
        "runtime": run.runtime.name,
        "manifest": str(run.spec.path),
        "manifest_sha256": run.spec.manifest_sha256,
    }
    row.update(_image_fields(run.build))
    row.update(_timing_fields(run, opts))
    row.update(_resource_fields(usage))
    row.update(_quality_fields(run))
    row.update(
        {
            "metadata": run.metadata,
            "status": status,
            "errors": errors,
            "failures": failures,
            "outcomes": dict(rec.outcomes.get(run_id, {})) if rec else {},
            "log_tail": rec.log_tails.get(run_id, "") if rec else "",
            "media": _media(run),
            "throughput": {c.id: r.load for c in run.spec.manifest.cases if (r := run.cases.get(c.id)) is not None and r.load},
            "timeline": timeline(run),
            "provenance": run_provenance(session, run),
        }
    )
    return row
