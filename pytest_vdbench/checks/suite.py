"""The generated conformance tests, collected once per (model, variant) from each manifest.

This module is never imported by test discovery: ``collect.VariantModule`` serves it as the
module object of every model, so each model gets these functions with its own cases.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from typing import Any, NoReturn

import numpy as np
import pytest

from pytest_vdbench.checks.expectations import bound_problems, determinism_problems, output_problems, requirement_problems
from pytest_vdbench.checks.load import run_level
from pytest_vdbench.checks.quality import metric_registry, quality_scores
from pytest_vdbench.checks.scorers import ScorerOutcome, score_case
from pytest_vdbench.endpoint import AdapterError, HostLibraryMissing
from pytest_vdbench.manifest import Case
from pytest_vdbench.protocols import NotSupported
from pytest_vdbench.run import ModelNotReady, ModelRun, ModelUnavailable
from pytest_vdbench.runtime import ResourceUsage
from pytest_vdbench.runtime.host import format_bytes
from pytest_vdbench.timing import median_interval, stop_reason, timing_problems


def _fail(problems: list[str], run: ModelRun, *, logs: bool = False) -> None:
    if problems:
        text = "\n".join(problems)
        if logs and run.logs():
            text += "\n--- last logs ---\n" + run.logs()
        pytest.fail(text, pytrace=False)


#: how far a tabular model's column_shapes must lie above the uniform-noise table's score
BASELINE_MARGIN = 0.05


def _fail_once(run: ModelRun, key: str, message: str) -> NoReturn:
    """Fail the first test that meets a broken build/startup/generation; skip the tests after it.

    So a model broken in one way fails exactly one test, the one that names the cause, whatever
    subset of tests was selected.
    """
    reporter = run.reported.get(key)
    if reporter is not None:
        pytest.skip(f"not run: {message.splitlines()[0]} (reported by {reporter})")
    run.reported[key] = _current_test()
    # `from None`: called while handling the adapter's error, whose chain would only repeat it
    raise pytest.fail.Exception(message, pytrace=False) from None


def _current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]


def _started(run: ModelRun) -> None:
    try:
        run.ensure_started()
    except ModelUnavailable as exc:
        pytest.skip(f"{run.spec.id}: {exc}")
    except ModelNotReady as exc:
        error = str(exc)
    else:
        return
    _fail_once(run, "startup", error)  # outside the except: no "during handling" chain in the report


def _generate(run: ModelRun, case: Case, phase: str = "check", *, seed: int | bool | None = True) -> Any:
    """One generation of ``case`` (``seed`` other than True: an audit's fresh seed, not one of its rounds)."""
    key = f"generate:{case.id}"
    if key in run.reported:
        _fail_once(run, key, run.case_result(case).error or "generation failed")
    try:
        return run.generate(case, phase, seed=seed)
    except AdapterError as exc:
        _fail_once(run, key, _why(run, case, exc))
    except HostLibraryMissing as exc:  # a gap of this host, not a fault of the model: skip, naming the fix
        pytest.skip(f"{run.spec.id}: {exc}")


class _Enough(Exception):
    """The timed rounds may stop (raised from pedantic's per-round setup, caught around it)."""


def _time_rounds(run: ModelRun, case: Case, benchmark: Any) -> None:
    """Warmup, then timed rounds until the stopping rule of ``run.policy`` says enough.

    pytest-benchmark times each round (``pedantic``, its statistics and JSON); its ``setup`` hook
    runs before every round, so raising there ends the rounds once the median is precise or a cap
    is reached. With --benchmark-disable or xdist, pedantic calls once and this loop goes on alone.
    """
    result = run.case_result(case)
    run.mark(f"{case.id}:warmup")
    for _ in range(run.spec.manifest.warmup_rounds):
        _generate(run, case, "warmup")
    run.mark(f"{case.id}:rounds")

    timed, seen = result.timed(), len(result.rounds)

    def enough() -> None:  # before every round: the new rounds only are read (rebuilding the list cost O(n) a round)
        nonlocal seen
        timed.extend(r.round_trip for r in result.rounds[seen:] if r.phase == "timed")
        seen = len(result.rounds)
        reason = stop_reason(timed, run.policy)
        if reason is not None:
            result.stopped = reason
            raise _Enough

    with contextlib.suppress(_Enough):
        benchmark.pedantic(_generate, args=(run, case, "timed"), setup=enough, rounds=run.policy.max_rounds, iterations=1)
        while True:
            enough()
            _generate(run, case, "timed")
    run.mark(f"{case.id}:done")


#: a fresh seed answered this many times slower than the repeated one means the repeats were cached
CACHE_FACTOR = 3.0
#: ... and by at least this many seconds (sub-millisecond noise is no cache)
CACHE_MARGIN = 0.01
FRESH_SEEDS = 3


def _cache_problems(run: ModelRun, case: Case) -> list[str]:
    """Audit: repeated calls must cost what fresh ones cost, and fresh seeds must change the output.

    Each fresh seed is paired with a repeat of the case's own seed right after it, so a burst of
    load on the host slows both calls of a pair alike; only every pair's fresh call being far
    slower than its repeat says the repeats were cached.
    """
    if case.seed is None:
        return []
    first = run.case_result(case).generation
    if first is None:
        return []
    pairs = []
    for i in range(1, FRESH_SEEDS + 1):
        fresh = _generate(run, case, seed=case.seed + 7919 * i)
        pairs.append((fresh, _generate(run, case)))
    problems = []
    ratios = [f.total_seconds / max(r.total_seconds, 1e-9) for f, r in pairs]
    seen = ", ".join(f"{f.total_seconds * 1000:.3g} vs {r.total_seconds * 1000:.3g} ms" for f, r in pairs)
    if all(f.total_seconds > CACHE_FACTOR * r.total_seconds + CACHE_MARGIN for f, r in pairs):
        problems.append(
            f"cached answers: each of {FRESH_SEEDS} fresh seeds took {min(ratios):.3g}x to {max(ratios):.3g}x as long as "
            f"seed {case.seed} repeated right after it ({seen}): "
            "the adapter answers repeated requests from a cache, so the timings measure the cache, not the model"
        )
    same = [f for f, _ in pairs if f.output.shape == first.output.shape and np.array_equal(f.output, first.output)]
    # a constant output is the same for every seed too: test_quality names that fault
    varies = first.output.size > 0 and bool(np.nanmax(first.output) != np.nanmin(first.output))
    if len(same) == len(pairs) and varies:
        problems.append(
            f"seeds {case.seed} and {', '.join(str(case.seed + 7919 * i) for i in range(1, FRESH_SEEDS + 1))} gave identical "
            "bytes: the adapter ignores the seed (or answers from a cache keyed without it)"
        )
    return problems


def _why(run: ModelRun, case: Case, exc: AdapterError) -> str:
    """The failure with the model's state (OOM kill, exit code) and last logs; skips if test_budget owns it."""
    # a lost connection may be a kill in progress: let the runtime see the exit (and OOM flag)
    usage = run.settle(3.0) if exc.status is None else run.usage()
    state = ""
    if usage is not None and usage.oom_killed:
        oom = f"the model was OOM-killed at limit {format_bytes(usage.memory_limit_bytes)}"
        if case.id in run.budget_selected and "test_budget" not in _current_test():
            pytest.skip(f"{oom}; test_budget[{case.id}] reports it")  # the resource test owns OOM
        state = f"\n{oom}"
    elif usage is not None and not usage.running:
        state = f"\nthe model exited with code {usage.exit_code}" + (f" ({usage.detail})" if usage.detail else "")
    return f"{exc}{state}\n--- last logs ---\n{run.logs()}"


def _first(run: ModelRun, case: Case) -> Any:
    """The case's first output (kept from test_generate), generating it if needed."""
    result = run.case_result(case)
    if result.generation is None:
        _generate(run, case)
    return result.generation


def _malformed_skip(run: ModelRun, case: Case, output: Any) -> None:
    """A malformed output fails the first test that meets it; its dependents skip naming that test."""
    problems = output_problems(output, run.spec.manifest.case_expect(case))
    if problems:
        _fail_once(run, f"output:{case.id}", "\n".join(problems))


def test_build(vdbench_run: ModelRun, benchmark: Any) -> None:
    """The image builds (content-addressed: an unchanged model is not rebuilt)."""
    if vdbench_run.runtime.name not in ("docker", "slurm"):  # slurm builds here, then pushes to the registry
        pytest.skip(f"the {vdbench_run.runtime.name} runtime builds no image")
    try:
        info = benchmark.pedantic(vdbench_run.ensure_built, rounds=1, iterations=1)
    except ModelNotReady:
        info = None
    if info is None:
        _started(vdbench_run)  # reports the remembered build failure once
        return
    benchmark.extra_info.update(
        {
            "kind": "build",
            "model": vdbench_run.spec.id,
            "image": info.image,
            "image_id": info.image_id,
            "size_bytes": info.size_bytes,
            "build_seconds": info.build_seconds,
            "cached": info.cached,
            **({"registry_ref": info.extra["registry_ref"]} if "registry_ref" in info.extra else {}),
        }
    )


def test_health(vdbench_run: ModelRun, benchmark: Any) -> None:
    """The model becomes ready within timeouts.startup; liveness, readiness and metadata answer."""
    if vdbench_run.started:
        _started(vdbench_run)
    else:
        with contextlib.suppress(ModelNotReady, ModelUnavailable):  # remembered; reported just below
            benchmark.pedantic(vdbench_run.ensure_started, rounds=1, iterations=1)
        _started(vdbench_run)  # reports a remembered startup failure once
    instance = vdbench_run.ensure_started()
    client = vdbench_run.client
    problems: list[str] = []
    live, body = client.live()
    if live != 200:
        problems.append(f"GET {client.live_path} answered {live}: {body}")
    ready, body = client.ready()
    if ready != 200:
        problems.append(f"GET {client.ready_path} answered {ready} after startup: {body}")
    try:
        meta = client.metadata()
    except AdapterError as exc:
        problems.append(str(exc))
    else:
        vdbench_run.metadata = meta
        # only the native adapter reports its entry point; cog/oip-v2 metadata is the server's own
        if client.protocol == "native" and meta.get("adapter") != vdbench_run.spec.manifest.adapter:
            problems.append(f"metadata says adapter {meta.get('adapter')!r}, manifest says {vdbench_run.spec.manifest.adapter!r}")
    benchmark.extra_info.update(
        {
            "kind": "startup",
            "model": vdbench_run.spec.id,
            "startup_seconds": instance.startup_seconds,
            "setup_seconds": body.get("setup_seconds"),
            "runtime": vdbench_run.runtime.name,
        }
    )
    _fail(problems, vdbench_run, logs=True)


def test_requirements(vdbench_run: ModelRun) -> None:
    """get_requirements() is well-formed and fits within the manifest's resources.

    Protocols without a requirements endpoint (cog, oip-v2) check what the manifest declares in
    ``cog.requirements`` / ``oip.requirements``, and skip saying nothing was checked without it.
    """
    _started(vdbench_run)
    try:
        declared = vdbench_run.client.requirements()
    except NotSupported as exc:
        pytest.skip(str(exc))
    except AdapterError as exc:
        pytest.fail(str(exc), pytrace=False)
    problems = requirement_problems(declared, vdbench_run.spec.manifest.resources)
    if problems and "source" in declared:
        problems.insert(0, f"requirements from the {declared['source']}:")
    _fail(problems, vdbench_run)


def test_fit(vdbench_run: ModelRun, vdbench_case: Case, benchmark: Any) -> None:
    """Tabular models train on the case's dataset (training split) within timeouts.fit; timed."""
    _started(vdbench_run)
    key = f"generate:{vdbench_case.id}"
    try:
        seconds = benchmark.pedantic(vdbench_run.fit, args=(vdbench_case,), rounds=1, iterations=1)
    except AdapterError as exc:
        _fail_once(vdbench_run, key, f"{exc}\n--- last logs ---\n{vdbench_run.logs()}")
    except (OSError, ValueError) as exc:
        _fail_once(vdbench_run, key, f"cannot load the case's dataset: {exc}")
    data = vdbench_run.tabular_data(vdbench_case)
    benchmark.extra_info.update(
        {
            "kind": "fit",
            "model": vdbench_run.spec.id,
            "case": vdbench_case.id,
            "fit_seconds": seconds,
            "rows": len(data.train),
            "columns": len(data.columns),
        }
    )


def test_generate(vdbench_run: ModelRun, vdbench_case: Case, benchmark: Any) -> None:
    """Output has the expected shape, dtype and range, with no NaN/inf; latency is benchmarked."""
    _started(vdbench_run)
    m = vdbench_run.spec.manifest
    _time_rounds(vdbench_run, vdbench_case, benchmark)
    result = vdbench_run.case_result(vdbench_case)
    gen = _first(vdbench_run, vdbench_case)
    timed, policy = result.timed(), vdbench_run.policy
    interval = median_interval(timed)
    out = gen.output
    frames = out.shape[0] if m.modality == "video" and out.ndim == 4 else None
    benchmark.extra_info.update(
        {
            "kind": "generate",
            "model": vdbench_run.spec.id,
            "case": vdbench_case.id,
            "seed": vdbench_case.seed,
            "shape": list(out.shape),
            "dtype": out.dtype.name,
            "bytes": gen.nbytes,
            "server_seconds": gen.server_seconds,
            "timed_rounds": len(timed),
            "stopped": result.stopped,
            "median_round_trip": interval.median if interval else None,
            "median_interval": [interval.low, interval.high] if interval else None,
            "median_precision": interval.relative if interval else None,
            "timing_problems": timing_problems(timed, policy),
            "frames_per_second": frames / gen.server_seconds if frames and gen.server_seconds else None,
            # contention: how many other models held resources on this host when this one started
            "concurrent_models": getattr(getattr(vdbench_run.instance, "reservation", None), "concurrent", 0),
        }
    )
    _malformed_skip(vdbench_run, vdbench_case, gen.output)
    _fail(_cache_problems(vdbench_run, vdbench_case), vdbench_run)


def test_determinism(vdbench_run: ModelRun, vdbench_case: Case) -> None:
    """The same prompt and seed give identical output twice (when expect.deterministic)."""
    expect = vdbench_run.spec.manifest.case_expect(vdbench_case)
    if not expect.deterministic:
        pytest.skip("the manifest says expect.deterministic: false")
    if vdbench_case.seed is None:
        pytest.skip("the case has seed: null, so no output is reproducible")
    _started(vdbench_run)
    first = _first(vdbench_run, vdbench_case).output
    _malformed_skip(vdbench_run, vdbench_case, first)
    second = _generate(vdbench_run, vdbench_case).output
    problems = determinism_problems(first, second, expect.determinism_atol, vdbench_case.seed)
    mismatch = vdbench_run.case_result(vdbench_case).round_mismatch
    if mismatch is not None:
        problems.append(
            f"outputs of the timed rounds differ from the checked output: {mismatch} (seed {vdbench_case.seed}); "
            "an adapter that answers repeated calls with cheaper output makes the timings lie"
        )
    _fail(problems, vdbench_run)
    golden = vdbench_run.golden.get(vdbench_case.id)
    if expect.golden == "strict" and golden is not None:
        from pytest_vdbench.checks.fingerprint import output_digest

        digest = output_digest(first)
        if digest != golden["digest"]:
            pytest.fail(
                f"expect.golden: strict: the output of case {vdbench_case.id!r} (seed {vdbench_case.seed}) differs from "
                f"run {golden['run']}'s (digest {golden['digest'][:12]} -> {digest[:12]}); if the change is intended, "
                "set expect.golden: off for one run",
                pytrace=False,
            )


def test_quality(vdbench_run: ModelRun, vdbench_case: Case, request: pytest.FixtureRequest) -> None:
    """Quality metrics of the output lie within expect.quality bounds."""
    expect = vdbench_run.spec.manifest.case_expect(vdbench_case)
    _started(vdbench_run)
    output = _first(vdbench_run, vdbench_case).output
    _malformed_skip(vdbench_run, vdbench_case, output)
    try:
        registry = metric_registry(request.config)
        scores, not_computed = quality_scores(vdbench_run, vdbench_case, output, registry)
    except AdapterError as exc:
        pytest.fail(f"scoring needed another generation, which failed: {_why(vdbench_run, vdbench_case, exc)}", pytrace=False)
    except ValueError as exc:  # e.g. values outside [0, 1] where the manifest sets no expect.range
        pytest.fail(f"quality metrics cannot score this output: {exc}", pytrace=False)
    external = _scorer_problems(vdbench_run, vdbench_case, output, scores)
    not_computed.update(external.notes)
    result = vdbench_run.case_result(vdbench_case)
    result.metrics.update(scores)
    result.not_computed.update(not_computed)
    bounds = {k: b for k, b in expect.quality.items() if k.split(".", 1)[0] not in external.skipped}
    problems = [*external.failures, *bound_problems(scores, bounds, registry, not_computed)]
    floor = scores.get("uniform_column_shapes")
    if floor is not None and not scores["column_shapes"] >= floor + BASELINE_MARGIN:
        problems.append(
            f"column_shapes = {scores['column_shapes']:.4g} does not beat the uniform-random baseline "
            f"({floor:.4g}) by {BASELINE_MARGIN}: the samples carry no more of the data's marginals than noise"
        )
    _fail(problems, vdbench_run)
    if len(bounds) < len(expect.quality):
        unchecked = sorted(set(expect.quality) - set(bounds))
        why = "; ".join(f"{name}: {reason}" for name, reason in sorted(external.skipped.items()))
        pytest.skip(f"bounds on {', '.join(unchecked)} not checked (the other scores pass): metric container {why}")
    if not expect.quality and "uniform_column_shapes" not in scores:
        pytest.skip(f"no expect.quality bounds; scores: {', '.join(f'{k}={v:.3g}' for k, v in sorted(scores.items()))}")


def _log_problems(run: ModelRun, usage: ResourceUsage | None, limit: int | None) -> list[str]:
    """The model's output volume per call (startup included) against expect.budgets.log_bytes."""
    calls = run.calls  # every call: rounds, audits, scorers' prompts, fits (the rounds alone overstated the figure)
    if limit is None or usage is None or usage.log_bytes is None or not calls:
        return []
    per_call = usage.log_bytes / calls
    if per_call <= limit:
        return []
    return [
        f"the model wrote {format_bytes(int(per_call))} of logs per call ({format_bytes(usage.log_bytes)} over {calls} "
        f"calls), over expect.budgets.log_bytes {format_bytes(limit)}: print less, or raise the budget"
    ]


def _scorer_problems(run: ModelRun, case: Case, output: Any, scores: dict[str, float]) -> ScorerOutcome:
    """Ask the run's metric containers (``--vdbench-metrics``) about ``output``; their scores join ``scores``."""
    outcome = score_case(run.scorers, run, case, output) if run.scorers else ScorerOutcome()
    scores.update(outcome.scores)
    return outcome


def test_budget(vdbench_run: ModelRun, vdbench_case: Case) -> None:
    """Within the resource limits and budgets: not OOM-killed, memory, startup and latency."""
    _started(vdbench_run)
    run = vdbench_run
    expect = run.spec.manifest.case_expect(vdbench_case)
    budgets = expect.budgets
    usage = run.usage()
    if usage is not None and usage.oom_killed:
        pytest.fail(
            f"OOM-killed at limit {format_bytes(usage.memory_limit_bytes)} (resources.memory)\n--- last logs ---\n{run.logs()}",
            pytrace=False,
        )
    if run.median_latency(vdbench_case) is None:
        _generate(run, vdbench_case)
        usage = run.usage()  # read again after that call only: each reading asks the engine twice
    _malformed_skip(run, vdbench_case, _first(run, vdbench_case).output)
    problems: list[str] = []
    if usage is not None:
        if usage.oom_killed:
            problems.append(f"OOM-killed at limit {format_bytes(usage.memory_limit_bytes)} (resources.memory)")
        elif not usage.running:
            problems.append(f"the model exited with code {usage.exit_code}")
        if (
            budgets.peak_memory is not None
            and usage.peak_memory_bytes is not None
            and usage.peak_memory_bytes > budgets.peak_memory
        ):
            problems.append(
                f"peak memory {format_bytes(usage.peak_memory_bytes)} exceeds expect.budgets.peak_memory "
                f"{format_bytes(budgets.peak_memory)}"
            )
    latency = run.median_latency(vdbench_case)
    if budgets.generate_seconds is not None and latency is not None and latency > budgets.generate_seconds:
        problems.append(
            f"median generation time {latency:.3f}s exceeds expect.budgets.generate_seconds {budgets.generate_seconds:g}s"
        )
    notes = run.case_result(vdbench_case).timing_notes
    if notes and problems and problems[-1].startswith("median generation time"):
        problems[-1] += f" (the server's own timing was not believed: {notes[0]})"
    problems += _log_problems(run, usage, budgets.log_bytes)
    # this case's own timed rounds: another case's calls between them must not count as its growth
    rss = run.case_result(vdbench_case).timed_rss
    if len(rss) >= 3 and all(b > a for a, b in itertools.pairwise(rss)) and rss[-1] - rss[0] > budgets.memory_growth:
        problems.append(
            f"memory grows on every call: the adapter's peak RSS rose {format_bytes(rss[-1] - rss[0])} over {len(rss)} calls "
            f"({format_bytes(rss[0])} -> {format_bytes(rss[-1])}), over expect.budgets.memory_growth "
            f"{format_bytes(budgets.memory_growth)}: a leak (outputs or caches kept across calls?)"
        )
    fit = run.case_result(vdbench_case).fit_seconds
    if budgets.fit_seconds is not None and fit is not None and fit > budgets.fit_seconds:
        problems.append(f"fit took {fit:.2f}s, over expect.budgets.fit_seconds {budgets.fit_seconds:g}s")
    startup = run.instance.startup_seconds if run.instance is not None else None
    phases = getattr(run.instance, "phases", None)
    what = "startup"
    if phases:  # slurm: the budget is the model's own start, not the time its job waited in the queue
        startup, what = phases["container"], "container start (image on the node to ready; queue wait and pull excluded)"
    if budgets.startup_seconds is not None and startup is not None and startup > budgets.startup_seconds:
        problems.append(f"{what} took {startup:.2f}s, over expect.budgets.startup_seconds {budgets.startup_seconds:g}s")
    _fail(problems, run, logs=bool(problems))


def test_throughput(vdbench_run: ModelRun, vdbench_case: Case) -> None:
    """Opt-in (manifest ``load``): latency p50/p90/p99 and throughput at each concurrency level."""
    run = vdbench_run
    load = run.spec.manifest.load
    assert load is not None  # collected only for manifests with a load section
    _started(run)
    _first(run, vdbench_case)  # fits a tabular model; a broken generation is reported once
    _malformed_skip(run, vdbench_case, _first(run, vdbench_case).output)
    client, limit = run.client, run.spec.manifest.case_expect(vdbench_case).output_limit()

    def call() -> Any:
        run.count_call()
        return client.generate(vdbench_case.prompt, seed=vdbench_case.seed, params=vdbench_case.params, max_bytes=limit)

    levels = []
    for concurrency in load.concurrency:
        run.mark(f"{vdbench_case.id}:load x{concurrency}")
        levels.append(run_level(call, concurrency, load.requests, load.duration))
    run.mark(f"{vdbench_case.id}:load done")
    run.case_result(vdbench_case).load = [level.as_dict() for level in levels]
    problems = [f"concurrency {lv.concurrency}: {len(lv.errors)} request(s) failed: {lv.errors[0]}" for lv in levels if lv.errors]
    best = max(levels, key=lambda lv: lv.throughput)
    floor = run.spec.manifest.case_expect(vdbench_case).budgets.throughput_min
    if floor is not None and best.throughput < floor:
        problems.append(
            f"throughput {best.throughput:.3g} outputs/s (best, at concurrency {best.concurrency}) is below "
            f"expect.budgets.throughput_min {floor:g}"
        )
    if all(not lv.latencies for lv in levels):
        busy = sum(sum(lv.busy.values()) for lv in levels)
        problems.append(f"no request succeeded at any concurrency level (busy answers: {busy})")
    _fail(problems, run, logs=bool(problems))
