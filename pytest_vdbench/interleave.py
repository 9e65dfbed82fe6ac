"""Time one case of several started models in alternation, and judge the change between two of them.

Two separate runs on a shared host disagree by the host's own drift: on the 2-core CI machine the
median of one 10 s window moves to the next by 8-18 % (``bench/bench_compare.py --drift``), more
than the regressions worth catching, so no verdict on two runs' rounds can both ignore A/A pairs
and catch a 30 % slowdown there. Timed in alternation, both sides meet the same drift cycle by
cycle, and ``timing.paired_change`` lets it cancel. This is how ``vdbench ab`` compares a model
with its baseline (another manifest, or the same one at a git ref).

Each cycle times every side once, in a random order (seeded, so a rerun repeats it) that never
starts with the side the last cycle ended on: no round follows its own side's call (a repeated
call is faster: warm caches; a fixed palindrome A B C, C B A gave A and C such repeats and B none,
and A/A pairs 5-7 % apart), positions and predecessors balance over the cycles, and two sides
simply alternate, A B A B.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_vdbench.endpoint import AdapterError
from pytest_vdbench.manifest import Case
from pytest_vdbench.run import ModelRun
from pytest_vdbench.timing import Change, TimingPolicy, paired_change, stop_reason

__all__ = ["CAPS", "Interleaved", "time_interleaved", "verdict"]

#: stop reasons that end every side's rounds, whatever the other sides' precision
CAPS = frozenset({"max_rounds", "max_duration"})


@dataclass(frozen=True)
class Interleaved:
    """One case timed on every side in alternation: ``rounds[i][k]`` is side i's round of cycle k."""

    case: str
    rounds: list[list[float]]
    #: why the cycles stopped: each side's stop reason, or the cap one side reached
    stopped: str

    def change(self, before: int = 0, after: int = 1) -> Change | None:
        """How side ``after``'s median moved from side ``before``'s, from the paired cycles."""
        return paired_change(self.rounds[before], self.rounds[after])


def _case(run: ModelRun, case_id: str) -> Case:
    for case in run.spec.manifest.cases:
        if case.id == case_id:
            return case
    known = ", ".join(c.id for c in run.spec.manifest.cases)
    raise KeyError(f"{run.spec.id} has no case {case_id!r} (cases: {known})")


def _stopped(rounds: Sequence[list[float]], policies: Sequence[TimingPolicy]) -> str | None:
    reasons = [stop_reason(r, p) for r, p in zip(rounds, policies, strict=True)]
    capped = [r for r in reasons if r in CAPS]
    if capped:
        return capped[0]
    if all(reasons):
        return "precise" if all(r == "precise" for r in reasons) else ", ".join(sorted({str(r) for r in reasons}))
    return None


def cycle_order(sides: int, last: int | None, rng: random.Random) -> list[int]:
    """A random order of ``sides`` that does not start with ``last`` (the side called last)."""
    order = list(range(sides))
    rng.shuffle(order)
    if order[0] == last:
        order.append(order.pop(0))  # still random, and the repeat moves to the end
    return order


class SideFailed(Exception):
    """One side's adapter failed while the case was timed: ``side`` is its index in the runs."""

    def __init__(self, side: int, error: AdapterError) -> None:
        super().__init__(str(error))
        self.side, self.error = side, error


def _generate(runs: Sequence[ModelRun], cases: Sequence[Case], i: int, phase: str) -> None:
    try:
        runs[i].generate(cases[i], phase)
    except AdapterError as exc:
        raise SideFailed(i, exc) from exc


def time_interleaved(runs: Sequence[ModelRun], case_id: str, policy: TimingPolicy | None = None, *, seed: int = 0) -> Interleaved:
    """Warm up, then time ``case_id`` on every run in alternating cycles until every side's stopping
    rule (``policy``, else each run's own) says enough, or one side reaches a cap.

    The runs must be started; each case's earlier rounds are forgotten first, so what follows is
    a fresh timing of it. An adapter error ends it as ``SideFailed`` naming the side's index.
    """
    if len(runs) < 2:
        raise ValueError("interleaving needs at least two sides")
    cases = [_case(run, case_id) for run in runs]
    for run, case in zip(runs, cases, strict=True):
        run.cases.pop(case.id, None)
    policies = [policy or run.policy for run in runs]
    for _ in range(max(run.spec.manifest.warmup_rounds for run in runs)):
        for i in range(len(runs)):
            _generate(runs, cases, i, "warmup")
    rng, last = random.Random(seed), None
    while True:
        for i in cycle_order(len(runs), last, rng):
            _generate(runs, cases, i, "timed")
            last = i
        rounds = [run.case_result(case).timed() for run, case in zip(runs, cases, strict=True)]
        stopped = _stopped(rounds, policies)
        if stopped is not None:
            return Interleaved(case_id, rounds, stopped)


def verdict(change: Change | None, threshold: float) -> str:
    """``regression``, ``improvement`` or ``unchanged`` (both conditions: the size and the interval)."""
    if change is None:
        return "unchanged"
    if change.exceeds(threshold):
        return "regression"
    if change.improves(threshold):
        return "improvement"
    return "unchanged"
