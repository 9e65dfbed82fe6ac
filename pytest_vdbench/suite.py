"""The generated conformance tests, collected once per (model, variant) from each manifest.

This module is never imported by test discovery: ``collect.VariantModule`` serves it as the
module object of every model, so each model gets these functions with its own cases.
"""

from __future__ import annotations

import os
from typing import Any, NoReturn

import pytest

from pytest_vdbench.client import AdapterError
from pytest_vdbench.expectations import bound_problems, determinism_problems, output_problems, requirement_problems
from pytest_vdbench.host import format_bytes
from pytest_vdbench.manifest import Case
from pytest_vdbench.quality import quality_scores
from pytest_vdbench.run import ModelNotReady, ModelRun


def _fail(problems: list[str], run: ModelRun, *, logs: bool = False) -> None:
    if problems:
        text = "\n".join(problems)
        if logs and run.logs():
            text += "\n--- last logs ---\n" + run.logs()
        pytest.fail(text, pytrace=False)


def _fail_once(run: ModelRun, key: str, message: str) -> NoReturn:
    """Fail the first test that meets a broken build/startup/generation; skip the tests after it.

    So a model broken in one way fails exactly one test, the one that names the cause, whatever
    subset of tests was selected.
    """
    reporter = run.reported.get(key)
    if reporter is not None:
        pytest.skip(f"not run: {message.splitlines()[0]} (reported by {reporter})")
    run.reported[key] = _current_test()
    pytest.fail(message, pytrace=False)


def _current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]


def _started(run: ModelRun) -> None:
    try:
        run.ensure_started()
    except ModelNotReady as exc:
        _fail_once(run, "startup", str(exc))


def _generate(run: ModelRun, case: Case) -> Any:
    key = f"generate:{case.id}"
    if key in run.reported:
        _fail_once(run, key, run.case_result(case).error or "generation failed")
    try:
        return run.generate(case)
    except AdapterError as exc:
        usage = run.usage()
        state = ""
        if usage is not None and usage.oom_killed:
            state = f"\nthe model was OOM-killed at limit {format_bytes(usage.memory_limit_bytes)}"
        elif usage is not None and not usage.running:
            state = f"\nthe model exited with code {usage.exit_code}"
        _fail_once(run, key, f"{exc}{state}\n--- last logs ---\n{run.logs()}")


def _first(run: ModelRun, case: Case) -> Any:
    """The case's first output (kept from test_generate), generating it if needed."""
    result = run.case_result(case)
    if result.generation is None:
        _generate(run, case)
    return result.generation


def test_build(vdbench_run: ModelRun, benchmark: Any) -> None:
    """The image builds (content-addressed: an unchanged model is not rebuilt)."""
    if vdbench_run.runtime.name != "docker":
        pytest.skip(f"the {vdbench_run.runtime.name} runtime builds no image")
    try:
        info = benchmark.pedantic(vdbench_run.ensure_built, rounds=1, iterations=1)
    except ModelNotReady as exc:
        _fail_once(vdbench_run, "startup", str(exc))
    benchmark.extra_info.update(
        {
            "kind": "build",
            "model": vdbench_run.spec.id,
            "image": info.image,
            "image_id": info.image_id,
            "size_bytes": info.size_bytes,
            "build_seconds": info.build_seconds,
            "cached": info.cached,
        }
    )


def test_health(vdbench_run: ModelRun, benchmark: Any) -> None:
    """The model becomes ready within timeouts.startup; liveness, readiness and metadata answer."""
    if vdbench_run.started:
        _started(vdbench_run)
    else:
        try:
            benchmark.pedantic(vdbench_run.ensure_started, rounds=1, iterations=1)
        except ModelNotReady as exc:
            _fail_once(vdbench_run, "startup", str(exc))
    instance = vdbench_run.ensure_started()
    client = vdbench_run.client
    problems: list[str] = []
    live, body = client.live()
    if live != 200:
        problems.append(f"GET /health/live answered {live}: {body}")
    ready, body = client.ready()
    if ready != 200:
        problems.append(f"GET /health/ready answered {ready} after startup: {body}")
    try:
        meta = client.metadata()
    except AdapterError as exc:
        problems.append(str(exc))
    else:
        vdbench_run.metadata = meta
        if meta.get("adapter") != vdbench_run.spec.manifest.adapter:
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
    """get_requirements() is well-formed and fits within the manifest's resources."""
    _started(vdbench_run)
    try:
        declared = vdbench_run.client.requirements()
    except AdapterError as exc:
        pytest.fail(str(exc), pytrace=False)
    _fail(requirement_problems(declared, vdbench_run.spec.manifest.resources), vdbench_run)


def test_generate(vdbench_run: ModelRun, vdbench_case: Case, benchmark: Any) -> None:
    """Output has the expected shape, dtype and range, with no NaN/inf; latency is benchmarked."""
    _started(vdbench_run)
    m = vdbench_run.spec.manifest
    gen = benchmark.pedantic(
        _generate, args=(vdbench_run, vdbench_case), rounds=m.rounds, warmup_rounds=m.warmup_rounds, iterations=1
    )
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
            "frames_per_second": frames / gen.server_seconds if frames and gen.server_seconds else None,
        }
    )
    _fail(output_problems(_first(vdbench_run, vdbench_case).output, m.case_expect(vdbench_case)), vdbench_run)


def test_determinism(vdbench_run: ModelRun, vdbench_case: Case) -> None:
    """The same prompt and seed give identical output twice (when expect.deterministic)."""
    expect = vdbench_run.spec.manifest.case_expect(vdbench_case)
    if not expect.deterministic:
        pytest.skip("the manifest says expect.deterministic: false")
    if vdbench_case.seed is None:
        pytest.skip("the case has seed: null, so no output is reproducible")
    _started(vdbench_run)
    first = _first(vdbench_run, vdbench_case).output
    second = _generate(vdbench_run, vdbench_case).output
    _fail(determinism_problems(first, second, expect.determinism_atol, vdbench_case.seed), vdbench_run)


def test_quality(vdbench_run: ModelRun, vdbench_case: Case) -> None:
    """Quality metrics of the output lie within expect.quality bounds."""
    expect = vdbench_run.spec.manifest.case_expect(vdbench_case)
    _started(vdbench_run)
    output = _first(vdbench_run, vdbench_case).output
    problems = output_problems(output, expect)
    if problems:
        pytest.skip(f"quality not scored: the output is malformed ({problems[0]}); test_generate reports it")
    try:
        scores = quality_scores(vdbench_run, vdbench_case, output)
    except AdapterError as exc:
        pytest.fail(f"scoring needed another generation, which failed: {exc}", pytrace=False)
    vdbench_run.case_result(vdbench_case).metrics.update(scores)
    if not expect.quality:
        pytest.skip(f"no expect.quality bounds; scores: {', '.join(f'{k}={v:.3g}' for k, v in sorted(scores.items()))}")
    _fail(bound_problems(scores, expect.quality), vdbench_run)


def test_budget(vdbench_run: ModelRun, vdbench_case: Case) -> None:
    """Within the resource limits and budgets: not OOM-killed, memory, startup and latency."""
    _started(vdbench_run)
    run = vdbench_run
    expect = run.spec.manifest.case_expect(vdbench_case)
    budgets = expect.budgets
    if run.median_latency(vdbench_case) is None:
        _generate(run, vdbench_case)
    usage = run.usage()
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
    startup = run.instance.startup_seconds if run.instance is not None else None
    if budgets.startup_seconds is not None and startup is not None and startup > budgets.startup_seconds:
        problems.append(f"startup took {startup:.2f}s, over expect.budgets.startup_seconds {budgets.startup_seconds:g}s")
    _fail(problems, run, logs=bool(problems))
