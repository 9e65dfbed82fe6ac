"""The bad-manifest corpus (tests/bad_manifests/): each file breaks the control manifest in one place.

Every one must be a clean one-line ``file:line: key: message`` error, the message its
``# expect:`` line names, from ``vdbench validate`` (run in a subprocess that answers manifest by
manifest: each answer has a deadline, so a hang is a failure naming the manifest, never a stuck
run) and from collection; never a traceback. Faults that cannot live in git (symlink loops, a FIFO,
a 100,000-case file) are made here in ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import ROOT
from pytest_vdbench.checks.metrics import builtin_registry
from pytest_vdbench.runtime.cogyaml import cog_yaml_problems

CORPUS = Path(__file__).parent / "bad_manifests"
CONTROL = CORPUS / "control" / "base.yaml"
FILES = sorted(p for p in CORPUS.rglob("*.yaml") if p.parent.name != "control")
CLASSES = ("numbers", "json", "duplicates", "aliases", "yaml", "paths", "keys")
#: generous: the target is well under a second; a busy 2-core CI machine gets slack, a hang does not
DEADLINE = 15.0

#: answers one manifest path per stdin line with one JSON line: `vdbench validate PATH` in-process
WORKER = """
import contextlib, io, json, sys, time
from pytest_vdbench.tools.cli import main
root = sys.argv[1]
for line in sys.stdin:
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(["validate", line.strip(), "--root", root])
        except BaseException as exc:
            import traceback
            traceback.print_exc(file=err)
            rc = -1
    print(json.dumps({"rc": rc, "out": out.getvalue(), "err": err.getvalue(),
                      "seconds": time.perf_counter() - start}), flush=True)
"""


def expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect: "), f"{path}: the first line must be '# expect: <message>'"
    return first.removeprefix("# expect: ")


def test_the_corpus_has_a_hundred_one_fault_manifests_in_every_class() -> None:
    assert len(FILES) >= 100
    by_class = {c: [p for p in FILES if p.parent.name == c] for c in CLASSES}
    assert all(by_class.values()), {c: len(v) for c, v in by_class.items()}
    assert {p.parent.name for p in FILES} == set(CLASSES)
    for path in FILES:
        assert expected(path)


def test_the_control_manifest_is_clean() -> None:
    """Without it a corpus file could fail for a fault the control already had."""
    from pytest_vdbench.manifest.validate import validate_paths

    report = validate_paths([CONTROL], ROOT, builtin_registry(), cog_check=cog_yaml_problems)
    assert report.problems == []


class Validator:
    """A subprocess running `vdbench validate` once per manifest, each answer under a deadline."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        env.pop("VDBENCH_ALLOW_PATH", None)  # the corpus is confined to the project on its own
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(ROOT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        assert self.proc.stdout is not None
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)

    def validate(self, path: Path, deadline: float) -> dict[str, object]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        if not self.selector.select(timeout=deadline):
            self.proc.kill()
            pytest.fail(f"{path}: vdbench validate gave no answer within {deadline:g}s (a hang)")
        answer: dict[str, object] = json.loads(self.proc.stdout.readline())
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.selector.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def validator() -> Iterator[Validator]:
    worker = Validator()
    worker.validate(CONTROL, deadline=120)  # the first answer pays for the imports
    yield worker
    worker.close()


def test_every_bad_manifest_is_one_clean_line_from_vdbench_validate(validator: Validator) -> None:
    failures, slowest = [], (0.0, "")
    for path in FILES:
        rel = path.relative_to(ROOT).as_posix()
        answer = validator.validate(path, DEADLINE)
        out, err = str(answer["out"]), str(answer["err"])
        lines = out.splitlines()
        slowest = max(slowest, (float(str(answer["seconds"])), rel))
        want = expected(path)
        clean = (
            answer["rc"] == 1
            and "Traceback" not in out + err
            and len(lines) == 1
            and lines[0].startswith(f"{rel}:")
            and want in lines[0]
            and err.strip().startswith("1 error(s), 0 warning(s)")
        )
        if not clean:
            failures.append(f"{rel}: want {want!r}\n  rc {answer['rc']}, stdout {out!r}, stderr {err[-500:]!r}")
    print(f"slowest: {slowest[1]} in {slowest[0]:.3f}s")
    assert not failures, "\n".join(failures)


def _collection_errors(path: Path) -> list[str]:
    """What collection reports for ``path``: load_specs' schema lines, else the file's check_specs."""
    from pytest_vdbench.manifest import ManifestError, load_manifest
    from pytest_vdbench.manifest.validate import check_specs

    try:
        specs = load_manifest(path, ROOT)
    except ManifestError as exc:
        return exc.problems
    found = check_specs(specs, builtin_registry(), cog_check=cog_yaml_problems, collection=True)
    return [p.format(ROOT) for p in found if p.severity == "error"]


@pytest.mark.parametrize("path", FILES, ids=[p.relative_to(CORPUS).as_posix() for p in FILES])
def test_every_bad_manifest_is_one_line_at_collection(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VDBENCH_ALLOW_PATH", raising=False)
    errors = _collection_errors(path)
    assert len(errors) == 1, errors
    assert expected(path) in errors[0] and errors[0].count("\n") == 0
    assert ":" in errors[0].split(": ", 1)[0]  # file:line first


def test_collection_fails_each_bad_manifest_in_one_line_and_names_it(pytester: pytest.Pytester) -> None:
    suite = pytester.mkdir("suite")
    for name in ("json/options_date.yaml", "numbers/range_low_nan.yaml", "aliases/bomb_in_params.yaml"):
        (suite / Path(name).name).write_text(
            (CORPUS / name).read_text().replace("../../adapters", str(CORPUS.parent / "adapters"))
        )
    start = time.monotonic()
    result = pytester.runpytest_subprocess("--vdbench", "--vdbench-suite", str(suite), "-p", "no:cacheprovider")
    assert time.monotonic() - start < 60  # a hang would be caught here, not a speed target
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=3)  # one test per manifest, each failing with its one line
    result.stdout.fnmatch_lines(
        [
            "suite/bomb_in_params.yaml:*: cases.0.params.f.0: aliases expand to more than 200,000 values*",
            "suite/options_date.yaml:7: options.since: datetime.date(2024, 1, 1) (date) cannot be sent as JSON*",
            "suite/range_low_nan.yaml:*: expect.range.0: Input should be a finite number*",
        ]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


# --- faults made at test time -------------------------------------------------------------------


def _one_problem(paths: list[Path], root: Path) -> str:
    from pytest_vdbench.manifest.validate import validate_paths

    report = validate_paths(paths, root, builtin_registry(), cog_check=cog_yaml_problems)
    lines = [p.format(root) for p in report.problems]
    assert len(lines) == 1, lines
    return lines[0]


def test_two_manifests_linked_to_each_other_are_one_line_each(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").symlink_to("b.yaml")
    (tmp_path / "b.yaml").symlink_to("a.yaml")
    from pytest_vdbench.manifest.validate import validate_paths

    report = validate_paths([tmp_path], tmp_path, builtin_registry(), cog_check=cog_yaml_problems)
    lines = [p.format(tmp_path) for p in report.problems]
    assert lines == [f"{n}.yaml:1: (file): cannot read manifest: it is a symlink loop (a link that points back at itself "
                     "through other links)" for n in "ab"]  # fmt: skip


def test_a_symlinked_duplicate_manifest_is_read_once(tmp_path: Path) -> None:
    from pytest_vdbench.manifest.validate import validate_paths

    (tmp_path / "real.yaml").write_text(CONTROL.read_text().replace("../../adapters", str(CORPUS.parent / "adapters")))
    (tmp_path / "alias.yaml").symlink_to("real.yaml")
    report = validate_paths([tmp_path], tmp_path, builtin_registry(), [CORPUS.parent / "adapters"], cog_check=cog_yaml_problems)
    assert report.files == [tmp_path / "real.yaml"] and report.problems == []


def test_a_symlink_loop_as_context_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VDBENCH_ALLOW_PATH", raising=False)
    (tmp_path / "ctx").symlink_to("ctx2")
    (tmp_path / "ctx2").symlink_to("ctx")
    (tmp_path / "m.yaml").write_text(CONTROL.read_text().replace("../../adapters", "./ctx"))
    line = _one_problem([tmp_path / "m.yaml"], tmp_path)
    assert line.startswith("m.yaml:8: image.context: build context") and "does not exist" in line


def test_a_hundred_thousand_cases_are_one_line_at_once(tmp_path: Path) -> None:
    text = CONTROL.read_text()
    cases = "cases:\n" + "".join(f"- {{id: c{i}, prompt: p, seed: 1}}\n" for i in range(100_000))
    (tmp_path / "m.yaml").write_text(text[: text.index("cases:")] + cases + text[text.index("expect:") :])
    assert _one_problem([tmp_path / "m.yaml"], tmp_path) == "m.yaml:1: (top level): larger than 1m; split the model's cases"


def test_ten_thousand_and_one_cases_are_refused_and_ten_thousand_checked_for_repeats(tmp_path: Path) -> None:
    text = CONTROL.read_text().replace("../../adapters", str(CORPUS.parent / "adapters"))
    head, tail = text[: text.index("cases:")], text[text.index("expect:") :]
    (tmp_path / "many.yaml").write_text(head + "cases:\n" + "".join(f"- {{id: c{i}}}\n" for i in range(10_001)) + tail)
    assert "cases: List should have at most 10000 items" in _one_problem([tmp_path / "many.yaml"], tmp_path)
    ids = [f"c{i}" for i in range(9_999)] + ["c5"]
    (tmp_path / "many.yaml").write_text(head + "cases:\n" + "".join(f"- {{id: {i}}}\n" for i in ids) + tail)
    assert "case ids must be unique, repeated: ['c5']" in _one_problem([tmp_path / "many.yaml"], tmp_path)
