"""Interleaved A/B timing (pytest_vdbench.interleave, timing.paired_change) and ``vdbench ab``."""

from __future__ import annotations

import itertools
import math
import random
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from helpers import containers, docker_or_skip, toy_manifest
from pytest_vdbench.interleave import cycle_order, time_interleaved, verdict
from pytest_vdbench.manifest import load_manifest
from pytest_vdbench.run import ModelRun
from pytest_vdbench.runtime.host import HostInfo
from pytest_vdbench.timing import TimingPolicy, median_change, paired_change
from pytest_vdbench.tools.ab import AbError, _both_fit
from pytest_vdbench.tools.cli import main


def drifting(n: int, scale: float, seed: int) -> tuple[list[float], list[float]]:
    """Two sides timed in alternation on a host whose speed swings 2x in slow stretches."""
    rng = random.Random(seed)
    host = [1.0 + 0.5 * (1 + math.sin(k / 7)) for k in range(n)]  # 1.0 .. 2.0, common to both sides
    a = [0.05 * h * rng.lognormvariate(0, 0.03) for h in host]
    b = [0.05 * scale * h * rng.lognormvariate(0, 0.03) for h in host]
    return a, b


def test_paired_change_cancels_the_drift_both_sides_shared() -> None:
    a, same = drifting(80, 1.0, 1)
    _, slower = drifting(80, 1.3, 2)
    aa, ab = paired_change(a, same), paired_change(a, slower)
    assert aa is not None and ab is not None
    assert verdict(aa, 0.1) == "unchanged" and aa.high - aa.low < 0.05  # the drift is gone from the interval
    assert verdict(ab, 0.1) == "regression" and ab.low > 1.2
    assert verdict(paired_change(slower, a), 0.1) == "improvement"
    # the same rounds judged as two separate runs keep the 2x drift in their interval: the change hides
    unpaired = median_change(a, slower)
    assert unpaired is not None and unpaired.high - unpaired.low > 4 * (ab.high - ab.low)
    assert paired_change([], same) is None and paired_change(a, same) == aa  # seeded
    assert paired_change(a[:10], same) == paired_change(a[:10], same[:10])  # cut to the shorter


class FakeRun:
    """What time_interleaved touches of a ModelRun; records the call order, each call ``seconds[side]`` long."""

    def __init__(self, side: str, seconds: float, calls: list[str], warmup: int = 1) -> None:
        case = type("C", (), {"id": "fox"})()
        manifest = type("M", (), {"cases": [case], "warmup_rounds": warmup})()
        self.spec = type("S", (), {"manifest": manifest, "id": side})()
        self.side, self.seconds, self.calls = side, seconds, calls
        self.policy = TimingPolicy(min_rounds=3, min_duration=0.0, max_rounds=8)
        self.cases: dict[str, list[float]] = {"fox": [9.9]}  # an earlier timing, to be forgotten
        self.rounds: list[float] = []

    def generate(self, case: Any, phase: str = "check") -> None:
        self.calls.append(f"{self.side}:{phase}")
        if phase == "timed":
            self.rounds.append(self.seconds)

    def case_result(self, case: Any) -> Any:
        rounds = self.cases.setdefault("fox", self.rounds)
        return type("R", (), {"timed": lambda _self: list(rounds)})()


def test_cycle_order_never_repeats_the_last_side_and_balances_positions() -> None:
    rng, last, firsts, sequence = random.Random(0), None, [0, 0, 0], []
    for _ in range(600):
        order = cycle_order(3, last, rng)
        assert sorted(order) == [0, 1, 2] and order[0] != last
        firsts[order[0]] += 1
        sequence += order
        last = order[-1]
    assert all(170 < f < 230 for f in firsts), firsts  # each side first in about a third of the cycles
    assert all(x != y for x, y in itertools.pairwise(sequence))


def test_two_sides_alternate_and_stop_when_every_side_may() -> None:
    calls: list[str] = []
    a, b = FakeRun("a", 0.1, calls), FakeRun("b", 0.1, calls)
    timed = time_interleaved([cast(ModelRun, a), cast(ModelRun, b)], "fox")
    assert calls[:2] == ["a:warmup", "b:warmup"]
    assert calls[2:] == [f"{side}:timed" for side in calls[2][0] + calls[3][0]] * 6  # a b a b ... or b a b a ...
    # six equal rounds are the fewest whose median interval reaches 95 %: then both sides may stop
    assert timed.rounds == [[0.1] * 6, [0.1] * 6] and len(calls) == 2 + 12 and timed.stopped == "precise"
    capped = time_interleaved([cast(ModelRun, FakeRun("a", 0.1, [])), cast(ModelRun, FakeRun("b", 0.1, []))], "fox",
                              TimingPolicy(min_rounds=50, min_duration=0.0, max_rounds=5))  # fmt: skip
    assert len(capped.rounds[0]) == 5 and capped.stopped == "max_rounds"
    with pytest.raises(KeyError, match="has no case 'owl' \\(cases: fox\\)"):
        time_interleaved([cast(ModelRun, a), cast(ModelRun, b)], "owl")
    with pytest.raises(ValueError, match="at least two sides"):
        time_interleaved([cast(ModelRun, a)], "fox")


def project(tmp_path: Path, **options: Any) -> Path:
    """A git project with one toy manifest sleeping ``delay`` per call, committed."""
    suite = tmp_path / "model_suites"
    suite.mkdir()
    write(suite / "toy.yaml", **options)
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(tmp_path), *cmd], check=True)
    return suite / "toy.yaml"


def write(path: Path, **options: Any) -> None:
    doc = toy_manifest("toy", timing={"max_duration": 4}, timeouts={"startup": "60s", "generate": "10s"})
    doc["options"].update(options)
    path.write_text(yaml.safe_dump(doc))


def test_ab_in_process_flags_a_real_slowdown_and_not_the_same_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = project(tmp_path, delay=0.02)
    same = tmp_path / "model_suites" / "same.yaml"
    write(same, delay=0.02)
    assert main(["ab", str(same), str(manifest), "--runtime", "process", "--max-duration", "3"]) == 0
    out = capsys.readouterr().out
    assert "toy: timed" in out and "fox:" in out and "UNCHANGED" in out, out
    write(manifest, delay=0.02, slowdown=0.3)  # the working tree against the commit: 30 % slower
    assert main(["ab", str(manifest), "--base-ref", "HEAD", "--runtime", "process", "--max-duration", "3"]) == 1
    out = capsys.readouterr().out
    assert "against HEAD" in out and "REGRESSION" in out, out


def test_ab_usage_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = project(tmp_path, delay=0.0)
    monkeypatch.chdir(tmp_path)
    assert main(["ab", "owl", "--base-ref", "HEAD", "--runtime", "process"]) == 2
    assert "owl: neither a manifest file nor a model under ./model_suites/" in capsys.readouterr().out
    write(tmp_path / "model_suites" / "fresh.yaml")  # a model the change adds: no baseline
    assert main(["ab", "model_suites/fresh.yaml", "--base-ref", "HEAD", "--runtime", "process"]) == 0
    assert "model_suites/fresh.yaml is not in HEAD: a new model, nothing to compare with" in capsys.readouterr().out
    assert main(["ab", str(manifest), "--runtime", "process"]) == 2
    assert "give the baseline as BASE (a manifest) or as --base-ref REF" in capsys.readouterr().out
    assert main(["ab", str(manifest), "--base-ref", "no-such-ref", "--runtime", "process"]) == 2
    assert "--base-ref no-such-ref: git archive failed" in capsys.readouterr().out
    assert main(["ab", str(manifest), str(manifest), "--variant", "big", "--runtime", "process"]) == 2
    assert "no variant 'big' (variants: default)" in capsys.readouterr().out
    (spec,) = load_manifest(manifest, tmp_path)
    assert spec.variant == "default"


def test_ab_finds_a_model_by_its_id(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    project(tmp_path, delay=0.01)
    monkeypatch.chdir(tmp_path)  # as the workflow runs it: vdbench ab NAME --base-ref origin/main
    assert main(["ab", "toy", "--base-ref", "HEAD", "--runtime", "process", "--max-duration", "2", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert '"base": "HEAD"' in out and '"model": "toy"' in out and '"verdict": "unchanged"' in out, out


def test_ab_times_every_variant_skips_what_this_host_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = project(tmp_path, delay=0.01)
    doc = yaml.safe_load(manifest.read_text())
    doc["variants"] = {"tiny": {}, "big": {"requires": {"gpu": True}}}
    manifest.write_text(yaml.safe_dump(doc))
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "v"], check=True)
    doc["variants"]["wide"] = {}
    manifest.write_text(yaml.safe_dump(doc))
    cpu_only = HostInfo(cpus=2, memory_total=8 << 30, gpu_note="no GPU")
    monkeypatch.setattr("pytest_vdbench.runtime.host.probe_host", lambda: cpu_only)
    assert main(["ab", str(manifest), "--base-ref", "HEAD", "--runtime", "process", "--max-duration", "2"]) == 0
    out = capsys.readouterr().out
    assert "toy-tiny: timed" in out and "UNCHANGED" in out, out
    assert "toy-big: skipped: needs 1 GPU(s); this host has none (no GPU)" in out, out
    assert "toy-wide: a new variant: not in HEAD" in out, out


@pytest.mark.docker
def test_ab_in_containers_flags_the_slowed_image_and_leaves_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docker_or_skip()
    manifest = project(tmp_path, delay=0.02)
    write(manifest, delay=0.02, slowdown=0.3)
    assert main(["ab", str(manifest), "--base-ref", "HEAD", "--max-duration", "3"]) == 1
    out = capsys.readouterr().out
    assert "toy: timed" in out and "REGRESSION" in out, out
    assert containers("toy") == []


def test_ab_refuses_sides_that_cannot_run_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = project(tmp_path)
    doc = yaml.safe_load(manifest.read_text())
    doc["resources"] = {"cpus": 2, "memory": "512m"}  # a 3-CPU host fits one side, not both
    manifest.write_text(yaml.safe_dump(doc))
    (spec,) = load_manifest(manifest, tmp_path)
    host = HostInfo(cpus=3, memory_total=8 << 30)
    with pytest.raises(AbError, match=r"toy: both sides run at once and do not fit: 2 \+ 2 CPUs > this host's 3"):
        _both_fit(spec, spec, host)
    _both_fit(spec, spec, HostInfo(cpus=4, memory_total=8 << 30))  # fits: no error


def test_ab_reports_an_adapter_failing_while_timed_as_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = project(tmp_path, delay=0.01)
    write(manifest, delay=0.01, fault="flaky")  # the change breaks every second call: a verdict, not a traceback
    assert main(["ab", str(manifest), "--base-ref", "HEAD", "--runtime", "process", "--max-duration", "2"]) == 1
    out = capsys.readouterr().out
    assert "toy: failed: the model toy:" in out and "Traceback" not in out.split("adapter traceback")[0], out
