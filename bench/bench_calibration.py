"""Calibration (#19): each built-in video metric against the VBench dimension of the same meaning.

1. Synthetic videos with known flicker (brightness alternation of amplitude A) and known motion (a
   texture panned by V pixels per frame): the built-in ``flicker``, ``smoothness`` and ``motion``
   next to the ground truth and to VBench's own value from the vbench metric container
   (containers/vbench, VBench 0.1.5's ``evaluate``), where VBench can compute it on this machine.
2. The project's own model outputs: ``pytest --vdbench --vdbench-metrics=vbench`` over the video
   models (default: refvideo; ``--models`` adds more, each builds its image), read from report.json.

Prints value pairs and Spearman rank correlations (a markdown table, pasted into the README).
Needs Docker and the vdbench/torch-cpu:bookworm base. Run: ``python bench/bench_calibration.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FRAMES, SIZE = 16, 64
#: built-in metric -> (VBench dimension of the same meaning, ground truth the synthetic set knows)
PAIRS: dict[str, tuple[str, str | None]] = {
    "flicker": ("temporal_flickering", "steadiness"),
    "smoothness": ("motion_smoothness", None),  # no ground truth: interpolation quality is what it defines
    "motion": ("dynamic_degree", "speed"),
}


def texture(seed: int = 0) -> np.ndarray[Any, Any]:
    """A smooth periodic colour texture [3, SIZE, SIZE] in [0.1, 0.9] (pans wrap around seamlessly)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE * 2 * np.pi
    rng = np.random.default_rng(seed)
    layers = [
        sum(np.sin(k * x + rng.uniform(0, 6)) * np.cos(j * y + rng.uniform(0, 6)) for k, j in ((1, 2), (3, 1), (2, 3)))
        for _ in range(3)
    ]
    out = np.stack(layers)
    scaled: np.ndarray[Any, Any] = 0.1 + 0.8 * (out - out.min()) / (out.max() - out.min())
    return scaled


def synthetic() -> list[tuple[str, np.ndarray[Any, Any], float, float]]:
    """(name, float32 [F, 3, H, W] video, true steadiness 1 - mean|diff|, true speed px/frame)."""
    base = texture()
    videos: list[tuple[str, np.ndarray[Any, Any], float, float]] = []
    for amp in (0.0, 0.01, 0.03, 0.1, 0.3):  # brightness alternation: x * (1 - amp) on odd frames
        frames = np.stack([base * (1 - amp * (t % 2)) for t in range(FRAMES)])
        videos.append((f"flicker A={amp:g}", frames, 1 - amp * float(base.mean()), 0.0))
    for speed in (1, 2, 3, 4):  # whole-pixel pans (np.roll): the true flow is exactly `speed`
        frames = np.stack([np.roll(base, t * speed, axis=2) for t in range(FRAMES)])
        videos.append((f"pan V={speed}", frames, 1 - float(np.abs(np.diff(frames, axis=0)).mean()), float(speed)))
    noise = np.random.default_rng(1).uniform(0, 1, (FRAMES, 3, SIZE, SIZE))
    videos.append(("noise", noise, 1 - float(np.abs(np.diff(noise, axis=0)).mean()), float("nan")))
    return [(n, v.astype(np.float32), s, m) for n, v, s, m in videos]


def spearman(a: list[Any], b: list[Any]) -> float:
    """Spearman's rho (average ranks for ties); nan under 3 finite pairs or a constant side."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None and np.isfinite(x) and np.isfinite(y)]
    if len(pairs) < 3:
        return float("nan")

    def ranks(values: list[float]) -> np.ndarray[Any, Any]:
        order = np.argsort(values, kind="stable")
        out = np.empty(len(values))
        out[order] = np.arange(len(values), dtype=float)
        for v in set(values):  # ties share their mean rank
            idx = [i for i, w in enumerate(values) if w == v]
            out[idx] = out[idx].mean()
        return out

    ra, rb = ranks([p[0] for p in pairs]), ranks([p[1] for p in pairs])
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def vbench_scores(videos: list[np.ndarray[Any, Any]]) -> list[dict[str, Any]]:
    """Each video through the vbench metric container, started by the harness's Docker runtime."""
    from pytest_vdbench.manifest import load_manifest
    from pytest_vdbench.protocols.native import AdapterClient
    from pytest_vdbench.runtime.docker import DockerRuntime

    spec = load_manifest(ROOT / "model_suites" / "metrics" / "vbench.yaml", ROOT)[0]
    with tempfile.TemporaryDirectory() as tmp:
        runtime = DockerRuntime(None, Path(tmp))
        try:
            instance = runtime.start(spec)
            client = AdapterClient(instance.endpoint, timeout=spec.manifest.timeouts.score)
            return [client.score(v, "", {"id": f"synthetic-{i}"}) for i, v in enumerate(videos)]
        finally:
            runtime.close()


def model_pairs(models: list[str]) -> list[dict[str, Any]]:
    """The suite's own outputs: one report.json row per model, from a --vdbench-metrics=vbench run."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pytest", "--vdbench", "--vdbench-metrics=vbench", "-k", "quality", "-q"]
        cmd += [a for m in models for a in ("--vdbench-model", m)] + [f"--vdbench-report={tmp}", "-p", "no:cacheprovider"]
        subprocess.run(cmd, cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
        rows: list[dict[str, Any]] = json.loads((Path(tmp) / "report.json").read_text())["models"]
        return rows


def fmt(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.4f}"


def table(title: str, names: list[str], columns: dict[str, list[Any]]) -> list[str]:
    out = [f"### {title}", "", "| video | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    out += ["| " + " | ".join([n, *(fmt(col[i]) for col in columns.values())]) + " |" for i, n in enumerate(names)]
    return out


def summary_row(
    name: str, dim: str, truth: str | None, syn: dict[str, list[Any]], mod: dict[str, list[Any]], why: str | None
) -> str:
    """One line of the summary: rank correlations with VBench (synthetic, models) and with the ground truth."""
    ours, theirs = syn[name], syn[f"vbench.{dim}"]
    ours_m, theirs_m = mod.get(name, []), mod.get(f"vbench.{dim}", [])
    computed = all(t is not None for t in theirs)
    rho_syn = fmt(spearman(ours, theirs)) if computed else f"VBench: {why}"
    rho_mod = "n/a"
    if theirs_m and all(t is not None for t in theirs_m):
        rho_mod = f"{fmt(spearman(ours_m, theirs_m))} ({len(ours_m)} videos)"
    diffs = [abs(a - b) for a, b in zip([*ours, *ours_m], [*theirs, *theirs_m], strict=True) if b is not None]
    diff = f"{max(diffs):.2g}" if computed and diffs else "n/a"
    gt = f"{fmt(spearman(ours, syn[f'true {truth}']))} ({truth})" if truth else "n/a"
    return f"| `{name}` | `{dim}` | {rho_syn} | {rho_mod} | {gt} | {diff} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="refvideo", help="video models to score (comma-separated; default: refvideo)")
    parser.add_argument(
        "--report", type=Path, help="read the models' pairs from this report.json of a --vdbench-metrics=vbench run"
    )
    args = parser.parse_args()
    from pytest_vdbench.checks.metrics.video import video_report

    videos = synthetic()
    vb = vbench_scores([v for _, v, _, _ in videos])
    ours = [video_report(v) for _, v, _, _ in videos]
    syn: dict[str, list[Any]] = {"true steadiness": [s for *_, s, _ in videos], "true speed": [m for *_, m in videos]}
    if args.report is not None:
        rows = [r for r in json.loads(args.report.read_text())["models"] if r.get("quality_by_case")]
    else:
        rows = model_pairs([m.strip() for m in args.models.split(",") if m.strip()])
    cases = [(r, c) for r in rows for c in sorted(r["quality_by_case"])]
    mod: dict[str, list[Any]] = {}
    summary = [
        "| built-in | VBench dimension | rank corr. vs VBench (synthetic) | rank corr. vs VBench (models) "
        "| rank corr. vs ground truth | max abs diff |",
        "|---|---|---|---|---|---|",
    ]
    for name, (dim, truth) in PAIRS.items():
        syn[name], syn[f"vbench.{dim}"] = [o[name] for o in ours], [s[dim]["value"] for s in vb]
        for key in (name, f"vbench.{dim}"):
            mod[key] = [r["quality_by_case"][c].get(key) for r, c in cases]
        why = next((s[dim].get("error") for s in vb if s[dim]["value"] is None), None)
        summary.append(summary_row(name, dim, truth, syn, mod, why))
    lines = ["## Calibration", "", *summary, ""]
    lines += [*table("Synthetic videos (16 frames, 64x64)", [n for n, *_ in videos], syn), ""]
    lines += table("The project's own models", [f"{r['id']}[{c}]" for r, c in cases], mod)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
